"""The learner's update thread: rounds until stopped, turns for the node, failures reported."""

import threading
import time

from hilresrl_learner.update_thread import UpdateThread
import pytest


def _wait(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, 'condition not met in time'
        time.sleep(0.001)


class Rounds:
    """A train_round that always has work and records who held the learners when."""

    def __init__(self, round_s=0.005):
        self.round_s, self.count, self.inside = round_s, 0, False
        self.overlaps = 0

    def __call__(self):
        self.overlaps += self.inside
        self.inside = True
        time.sleep(self.round_s)  # stands for an update, which leaves Python's lock
        self.inside, self.count = False, self.count + 1
        return True


def test_rounds_run_until_stopped_and_not_after():
    rounds = Rounds()
    updates = UpdateThread(rounds)
    updates.start()
    _wait(lambda: rounds.count >= 5)
    assert updates.stop(timeout_s=10.0) and not updates.running
    done = rounds.count
    time.sleep(0.05)
    assert rounds.count == done and updates.error is None


def test_a_turn_never_overlaps_a_round_and_is_not_starved_by_a_busy_learner():
    rounds = Rounds(round_s=0.002)
    updates = UpdateThread(rounds)
    updates.start()
    _wait(lambda: rounds.count >= 3)
    waits = []
    for _ in range(200):
        asked = time.monotonic()
        with updates.turn():
            waits.append(time.monotonic() - asked)
            assert not rounds.inside
            before = rounds.count
            with updates.turn():  # turns nest (a broadcast inside a service)
                pass
            assert rounds.count == before  # held: no round ran inside the turn
    assert updates.stop(timeout_s=10.0)
    # Each turn waited for at most the round under way (not for a run of rounds); the rounds
    # went on between the turns.
    assert max(waits) < 1.0 and rounds.count > 3 and rounds.overlaps == 0


def test_an_idle_thread_starts_a_round_when_woken_not_after_its_idle_wait():
    due = threading.Event()
    ran = threading.Event()
    idle_rounds = []

    def train_round():
        if not due.is_set():
            idle_rounds.append(1)
            return False
        due.clear()
        ran.set()
        return True

    updates = UpdateThread(train_round, idle_wait_s=60.0)
    updates.start()
    _wait(lambda: idle_rounds)  # found nothing due: it waits a minute unless woken
    due.set()
    updates.wake()
    assert ran.wait(10.0)
    assert updates.stop(timeout_s=10.0)


def test_a_failing_round_ends_the_thread_and_is_kept_for_the_node():
    def train_round():
        raise FloatingPointError('loss is nan')

    updates = UpdateThread(train_round)
    updates.start()
    _wait(lambda: not updates.running)
    assert isinstance(updates.error, FloatingPointError)
    with updates.turn():  # the learners stay usable for the checkpoint on the way out
        pass
    with pytest.raises(FloatingPointError):
        raise updates.error
