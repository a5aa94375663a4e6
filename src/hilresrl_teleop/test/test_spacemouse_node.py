"""spacenav node over DDS: a stand-in spacenavd's events out as the driver's twist and Joy."""

import os
import queue
import socket
import threading

from geometry_msgs.msg import Twist
from hilresrl_teleop.intervention_arbiter_node import DEVICE_QOS
from hilresrl_teleop.spacemouse_node import SpaceMouseNode
from hilresrl_teleop.spacenav_protocol import ButtonEvent, encode_event, MotionEvent
import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy

RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                      reliability=ReliabilityPolicy.RELIABLE)
# What /rosout is published with: late joiners still get the lines logged before they came.
ROSOUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
ERROR = 40
# Values that hold between events, so that what a message carries does not depend on timing.
HOLD = {'zero_when_static': False, 'static_trans_deadband': 0.0, 'static_rot_deadband': 0.0}


class FakeSpacenavd:
    """A stand-in spacenavd: a UNIX-socket server in a thread; connections land in a queue."""

    def __init__(self, path: str):
        self.path = path
        self.connections: 'queue.Queue[socket.socket]' = queue.Queue()
        self._accepted = []
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(4)
        self._server.settimeout(0.05)  # how soon the thread sees stop(), not a synchronisation
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._accepted.append(connection)
            self.connections.put(connection)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
        self._server.close()
        for connection in self._accepted:
            connection.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def start_daemon():
    daemons = []

    def start(path) -> FakeSpacenavd:
        daemons.append(FakeSpacenavd(str(path)))
        return daemons[-1]

    yield start
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def start_node(ros_context, probe):

    def start(socket_path, **overrides) -> SpaceMouseNode:
        values = {'socket_path': str(socket_path), 'backend': 'socket',
                  'publish_rate_hz': 50.0, 'retry_period_s': 0.2, **overrides}
        node = SpaceMouseNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()])
        probe.spin(node)
        return node

    return start


class Reader:
    """The probe's side: what the node publishes and logs."""

    def __init__(self, probe):
        self.probe = probe
        self.twists, self.joys, self.best_effort_twists, self.logs = [], [], [], []
        node = probe.node
        node.create_subscription(Twist, 'spacenav/twist', self.twists.append, RELIABLE)
        node.create_subscription(Joy, 'spacenav/joy', self.joys.append, RELIABLE)
        node.create_subscription(Twist, 'spacenav/twist', self.best_effort_twists.append,
                                 DEVICE_QOS)
        node.create_subscription(Log, '/rosout', self._on_log, ROSOUT_QOS)

    def _on_log(self, message: Log) -> None:
        if message.name == 'spacenav':
            self.logs.append(message)

    def connection(self, daemon: FakeSpacenavd) -> socket.socket:
        self.probe.wait_for(lambda: not daemon.connections.empty(), 10.0,
                            'the node to connect to the daemon')
        return daemon.connections.get_nowait()

    def twist(self, linear, angular, message: str) -> None:
        def arrived():
            return any((t.linear.x, t.linear.y, t.linear.z) == tuple(linear)
                       and (t.angular.x, t.angular.y, t.angular.z) == tuple(angular)
                       for t in self.twists)
        self.probe.wait_for(arrived, 10.0, message)

    def joy(self, axes, buttons, message: str) -> None:
        def arrived():
            return any(list(j.axes) == pytest.approx(axes) and list(j.buttons) == buttons
                       for j in self.joys)
        self.probe.wait_for(arrived, 10.0, message)

    def logged(self, text: str, message: str) -> None:
        self.probe.wait_for(lambda: any(text in log.msg for log in self.logs), 10.0, message)

    def errors(self):
        return [log.msg for log in self.logs if log.level == ERROR]


def test_events_come_out_as_the_drivers_twist_and_joy(start_daemon, start_node, probe,
                                                      tmp_path):
    reader = Reader(probe)
    daemon = start_daemon(tmp_path / 'spnav.sock')
    start_node(daemon.path, **{'linear_scale/x': 2.0, 'angular_scale/z': -1.0}, **HOLD)
    peer = reader.connection(daemon)
    reader.logged(f'connected to spacenavd at {daemon.path} (socket)', 'the connection log')

    # before any event the driver publishes zeros once the device counts as static
    reader.twist((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 'the static twist')
    # spacenavd x, y, z, rx, ry, rz -> linear (z, -x, y), angular (rz, -rx, ry), / 512
    peer.sendall(encode_event(MotionEvent(np.array([-256, 128, 64]), np.array([0, 512, -128]),
                                          8)))
    normed = [0.125, 0.5, 0.25, -0.25, 0.0, 1.0]
    reader.twist((0.25, 0.5, 0.25), (-0.25, 0.0, -1.0), 'the twist of the motion')
    peer.sendall(encode_event(ButtonEvent(1, True)))
    reader.joy(normed, [0, 1], 'the Joy of the press')
    peer.sendall(encode_event(ButtonEvent(1, False)))
    reader.joy(normed, [0, 0], 'the Joy of the release')
    probe.wait_for(lambda: reader.best_effort_twists, 10.0, "the arbiter's QoS to match")
    assert reader.errors() == []


def test_without_a_daemon_it_says_so_once_then_connects_when_one_starts(
        start_daemon, start_node, probe, tmp_path):
    reader = Reader(probe)
    path = tmp_path / 'spnav.sock'
    node = start_node(path, **HOLD)
    probe.wait_for(lambda: node.link.attempts >= 4, 10.0, 'four attempts to connect')

    daemon = start_daemon(path)
    peer = reader.connection(daemon)
    # /rosout is reliable and in order: every line before this one has arrived with it
    reader.logged(f'connected to spacenavd at {path} (socket)', 'the connection log')
    assert reader.errors() == [f'no spacenavd at {path}: install and start spacenavd (Debian: '
                               'apt install spacenavd), or plug in the device (retrying every '
                               '0.2 s)']

    peer.sendall(encode_event(MotionEvent(np.array([0, 0, 512]), np.array([0, 0, 0]), 8))
                 + encode_event(ButtonEvent(0, True)))
    reader.joy([1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1], 'the Joy of the new connection')

    # the daemon drops the connection: one line, the device let go, and a new connection
    connected_logs = len(reader.logs)
    peer.close()
    reader.connection(daemon)
    reader.logged('closed the connection: reconnecting', 'the lost connection log')
    reader.joy([0.0] * 6, [0], 'the device let go')
    probe.wait_for(lambda: sum('connected to spacenavd' in log.msg
                               for log in reader.logs[connected_logs:]) == 1, 10.0,
                   'the reconnection log')
    assert reader.errors()[1:] == [f'spacenavd at {path} closed the connection: reconnecting']
    assert node.link.connected


def test_a_button_number_beyond_any_device_is_ignored_and_the_node_goes_on(
        start_daemon, start_node, probe, tmp_path):
    reader = Reader(probe)
    daemon = start_daemon(tmp_path / 'spnav.sock')
    start_node(daemon.path, **HOLD)
    peer = reader.connection(daemon)
    # A faulty or hostile daemon names button 2^31 - 1: the driver would grow its list to it.
    peer.sendall(encode_event(ButtonEvent(2 ** 31 - 1, True)) + encode_event(ButtonEvent(64, True))
                 + encode_event(ButtonEvent(2, True)))
    reader.joy([0.0] * 6, [0, 0, 1], 'the Joy of the one real button')
    reader.logged('ignored 2 button event(s) numbered outside 0-63', 'the warning')
    peer.sendall(encode_event(MotionEvent(np.array([0, 0, 512]), np.array([0, 0, 0]), 8)))
    reader.twist((1.0, 0.0, 0.0), (0.0, 0.0, 0.0), 'a twist after it')
    assert max(len(joy.buttons) for joy in reader.joys) == 3
    assert reader.errors() == []
