"""
The learner's updates in a thread of their own, one round at a time, taking turns with the node.

Torch leaves Python's lock while it computes, so the node's executor takes in transitions,
answers services and publishes its status while an update runs. The learners are not shared
while a round runs: whatever else touches them (storing a step, taking weights, a checkpoint)
does it inside ``turn()``, which waits for the round under way and holds the next one back until
it is done, so that a busy learner cannot starve the node. No ROS here.
"""

from contextlib import contextmanager
import threading
from typing import Callable, Iterator, Optional


class UpdateThread:
    """Calls ``train_round`` (True: it worked; False: nothing due) until stopped."""

    def __init__(self, train_round: Callable[[], bool], idle_wait_s: float = 0.01,
                 name: str = 'learner updates'):
        self._train_round = train_round
        self._idle_wait_s = idle_wait_s
        # Held by a round, or by a turn of the node's (which may nest: a reentrant lock).
        self._learners = threading.RLock()
        self._turns = threading.Condition()
        self._turns_waiting = 0
        self._wake = threading.Event()
        self._stopping = False
        self.error: Optional[BaseException] = None  # what ended the thread, if it failed
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start updating."""
        self._thread.start()

    def wake(self) -> None:
        """Look for due work now (new data came in), not after the idle wait."""
        self._wake.set()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the learners: wait for the round under way; the next waits for this."""
        with self._turns:
            self._turns_waiting += 1
        try:
            with self._learners:
                yield
        finally:
            with self._turns:
                self._turns_waiting -= 1
                self._turns.notify_all()

    def stop(self, timeout_s: Optional[float] = None) -> bool:
        """Stop after the round under way; wait up to ``timeout_s`` for it. False: still busy."""
        with self._turns:
            self._stopping = True
            self._turns.notify_all()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Return whether the thread is updating (not stopped, not failed)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._turns:
                # Callers first: a turn asked for during a round comes before the next one.
                self._turns.wait_for(lambda: self._stopping or not self._turns_waiting)
                if self._stopping:
                    return
            with self._learners:
                try:
                    worked = self._train_round()
                except BaseException as error:  # reported to the node, which fails the run
                    self.error = error
                    return
            if not worked:
                self._wake.wait(self._idle_wait_s)
                self._wake.clear()
