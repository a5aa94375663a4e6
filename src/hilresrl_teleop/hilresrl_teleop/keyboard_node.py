"""
keyboard: a person's keys at a terminal, for marking success and steering episodes by hand.

Run it in a terminal of its own (ros2 run hilresrl_teleop keyboard): s marks success (a
std_msgs/Bool on keyboard/success, an episode manager reward source), f ends the episode as a
failure, r asks for a reset (ends it as aborted), n starts the next episode, e latches the
e-stop and x releases it.
"""

import queue
import sys
import termios
import threading
import time
import tty
from typing import Callable, List, Tuple

from hilresrl_common.node_runner import ConfigurationError, run_node
from hilresrl_common.qos import COMMAND_QOS
from hilresrl_msgs.msg import EpisodeOutcome
from hilresrl_msgs.srv import EndEpisode, StartEpisode
from rclpy.node import Node
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

# A key pressed just after start-up may come before discovery has found the service it calls
# or the episode manager listening for success: it waits this long for them.
DISCOVERY_WAIT_S = 3.0

HELP = ('keys: s success | f failure | r reset (abort) | n next episode | e e-stop | '
        'x release e-stop | h help')


class KeyboardNode(Node):
    """Single key presses at the terminal -> reward signal and episode/e-stop service calls."""

    def __init__(self, **kwargs):
        super().__init__('keyboard', **kwargs)
        if not sys.stdin.isatty():
            raise ConfigurationError('the keyboard node reads key presses from its terminal: '
                                     'run it in a terminal of its own (ros2 run hilresrl_teleop '
                                     'keyboard), not in the background')
        # One key at a time, no Enter needed. TCSANOW keeps keys typed before this point, and
        # the terminal is switched before the publisher exists, so that whoever sees the node
        # on the graph can type at once.
        self._terminal = termios.tcgetattr(sys.stdin)
        tty.setcbreak(sys.stdin.fileno(), termios.TCSANOW)
        self._keys: 'queue.Queue[str]' = queue.Queue()
        # Actions waiting for their service or subscriber: (deadline, ready, act, what).
        self._pending: List[Tuple[float, Callable[[], bool], Callable[[], None], str]] = []
        self._end = self.create_client(EndEpisode, 'end_episode')
        self._start = self.create_client(StartEpisode, 'start_episode')
        self._estop = self.create_client(Trigger, 'estop')
        self._release = self.create_client(Trigger, 'release_estop')
        self._success = self.create_publisher(Bool, 'keyboard/success', COMMAND_QOS)
        threading.Thread(target=self._read_keys, daemon=True).start()
        self.create_timer(0.05, self._on_tick)
        self.get_logger().info(HELP)

    def _read_keys(self) -> None:
        while True:
            key = sys.stdin.read(1)
            if not key:
                return
            self._keys.put(key.lower())

    def _on_tick(self) -> None:
        while not self._keys.empty():
            self._handle(self._keys.get())
        self._send_pending()

    def _handle(self, key: str) -> None:
        if key == 's':
            self._when_ready(lambda: self._success.get_subscription_count() > 0,
                             self._mark_success, 'subscriber on keyboard/success')
        elif key in ('f', 'r'):
            outcome = EpisodeOutcome.FAILURE if key == 'f' else EpisodeOutcome.ABORT
            request = EndEpisode.Request(outcome=EpisodeOutcome(value=outcome),
                                         reason='keyboard: ' + ('failure' if key == 'f'
                                                                else 'reset requested'))
            self._call(self._end, request, 'end_episode')
        elif key == 'n':
            self._call(self._start, StartEpisode.Request(seed=-1), 'start_episode')
        elif key == 'e':
            self._call(self._estop, Trigger.Request(), 'estop')
        elif key == 'x':
            self._call(self._release, Trigger.Request(), 'release_estop')
        elif key in ('h', '?'):
            self.get_logger().info(HELP)

    def _mark_success(self) -> None:
        self._success.publish(Bool(data=True))
        self.get_logger().info('success marked')

    def _call(self, client, request, name: str) -> None:
        def send():
            future = client.call_async(request)
            future.add_done_callback(lambda done: self._report(done, name))
        self._when_ready(client.service_is_ready, send, f'{name} service')

    def _when_ready(self, ready: Callable[[], bool], act: Callable[[], None], what: str) -> None:
        self._pending.append((time.monotonic() + DISCOVERY_WAIT_S, ready, act, what))
        self._send_pending()

    def _send_pending(self) -> None:
        waiting = []
        for deadline, ready, act, what in self._pending:
            if ready():
                act()
            elif time.monotonic() < deadline:
                waiting.append((deadline, ready, act, what))
            else:
                self.get_logger().error(f'no {what} after {DISCOVERY_WAIT_S:.0f} s: is the cell '
                                        'running?')
        self._pending = waiting

    def _report(self, future, name: str) -> None:
        response = future.result()
        ok = response is not None and response.success
        text = getattr(response, 'message', '') if response is not None else 'no response'
        log = self.get_logger().info if ok else self.get_logger().warning
        log(f'{name}: {"done" if ok else "refused"}{": " + text if text else ""}')

    def destroy_node(self):
        """Give the terminal back its line editing, then destroy the node."""
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._terminal)
        return super().destroy_node()


def main(args=None):
    """Run the keyboard node until shutdown."""
    return run_node(KeyboardNode, args)


if __name__ == '__main__':
    main()
