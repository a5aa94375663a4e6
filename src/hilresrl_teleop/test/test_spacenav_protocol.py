"""spacenav_protocol: spacenavd's packets from a stand-in daemon; the spacenav driver's rules."""

import os
import queue
import socket
import threading
import time

from hilresrl_teleop import spacenav_protocol
from hilresrl_teleop.spacenav_protocol import (ButtonEvent, DeviceLink, DeviceState,
                                               encode_event, LibspnavEventSource, MotionEvent,
                                               open_event_source, Publication,
                                               SocketEventSource, SpacenavError,
                                               SpacenavSettings)
import numpy as np
import pytest

DEADLINE_S = 10.0


class FakeSpacenavd:
    """A stand-in spacenavd: a UNIX-socket server in a thread that sends the daemon's packets."""

    def __init__(self, path):
        self.path = str(path)
        self.connections: 'queue.Queue[socket.socket]' = queue.Queue()
        self._accepted = []
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
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

    def client(self) -> socket.socket:
        """Return the next client connection, waiting for it up to the deadline."""
        return self.connections.get(timeout=DEADLINE_S)

    def stop(self) -> None:
        """Stop listening, close every connection and remove the socket file."""
        self._stop.set()
        self._thread.join(DEADLINE_S)
        self._server.close()
        for connection in self._accepted:
            connection.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def daemon(tmp_path):
    fake = FakeSpacenavd(tmp_path / 'spnav.sock')
    yield fake
    fake.stop()


def motion(x, y, z, rx, ry, rz, period_ms=8) -> MotionEvent:
    return MotionEvent(np.array([x, y, z]), np.array([rx, ry, rz]), period_ms)


def poll_until(source, count: int):
    """Poll a source until `count` events have come, failing at the deadline."""
    events = []
    deadline = time.monotonic() + DEADLINE_S
    while len(events) < count:
        assert time.monotonic() < deadline, f'only {len(events)} of {count} events came'
        events += source.poll(timeout_s=0.1)
    return events


def assert_motion(event, translation, rotation, period_ms):
    assert isinstance(event, MotionEvent)
    np.testing.assert_array_equal(event.translation, translation)
    np.testing.assert_array_equal(event.rotation, rotation)
    assert event.period_ms == period_ms


# --- the socket protocol -------------------------------------------------------------------
def test_packets_split_anywhere_decode_into_events(daemon):
    source = SocketEventSource(daemon.path)
    peer = daemon.client()
    stream = b''.join(encode_event(event) for event in (
        motion(-350, 120, 7, 0, -1, 350, period_ms=16), ButtonEvent(1, True),
        ButtonEvent(1, False), ButtonEvent(12, True)))
    assert len(stream) == 4 * 32  # packets of 8 int32

    peer.sendall(stream[:13])
    assert source.poll(timeout_s=DEADLINE_S) == []  # 13 bytes: no whole packet yet
    peer.sendall(stream[13:45])  # the rest of the motion and 13 bytes of the press
    first = poll_until(source, 1)
    for start in range(45, len(stream), 7):  # then 7 bytes at a time
        peer.sendall(stream[start:start + 7])
        first += source.poll()
    events = first + poll_until(source, 4 - len(first))

    assert_motion(events[0], [-350, 120, 7], [0, -1, 350], 16)
    assert events[1:] == [ButtonEvent(1, True), ButtonEvent(1, False), ButtonEvent(12, True)]
    assert source.poll() == []
    source.close()


def test_device_and_configuration_packets_are_skipped(daemon):
    source = SocketEventSource(daemon.path)
    peer = daemon.client()
    device_added = spacenav_protocol.PACKET.pack(3, 0, 1, 0x208, 0x46d, 0xc626, 0, 0)
    peer.sendall(device_added + encode_event(ButtonEvent(0, True)))
    assert poll_until(source, 1) == [ButtonEvent(0, True)]
    source.close()


def test_a_missing_daemon_says_what_to_install(tmp_path):
    path = tmp_path / 'spnav.sock'
    with pytest.raises(SpacenavError) as missing:
        SocketEventSource(str(path))
    assert str(missing.value) == (f'no spacenavd at {path}: install and start spacenavd '
                                  '(Debian: apt install spacenavd), or plug in the device')
    # a socket file left behind by a daemon that stopped reads the same
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with pytest.raises(SpacenavError, match='^no spacenavd at .*apt install spacenavd'):
        SocketEventSource(str(path))


def test_a_closed_connection_delivers_what_came_before_then_fails(daemon):
    source = SocketEventSource(daemon.path)
    peer = daemon.client()
    peer.sendall(encode_event(ButtonEvent(0, True)))
    peer.close()
    events = []
    deadline = time.monotonic() + DEADLINE_S
    with pytest.raises(SpacenavError, match=f'spacenavd at {daemon.path} closed the connection'):
        while time.monotonic() < deadline:
            events += source.poll(timeout_s=0.1)
    assert events == [ButtonEvent(0, True)]
    source.close()
    with pytest.raises(SpacenavError, match='closed'):
        source.poll()


def test_the_link_reports_once_retries_quietly_and_reconnects(tmp_path):
    path = tmp_path / 'spnav.sock'
    now = [100.0]
    link = DeviceLink(lambda: open_event_source('socket', str(path)), retry_period_s=0.5,
                      clock=lambda: now[0])

    events, notices = link.poll()
    assert (events, link.connected, link.attempts) == ([], False, 1)
    assert [(n.level, n.text) for n in notices] == [('error', (
        f'no spacenavd at {path}: install and start spacenavd (Debian: apt install spacenavd), '
        'or plug in the device (retrying every 0.5 s)'))]
    now[0] += 0.4
    assert link.poll() == ([], []) and link.attempts == 1  # not due yet
    for _ in range(3):
        now[0] += 0.5
        assert link.poll() == ([], []) and link.attempts > 1  # tried again, said nothing

    daemon = FakeSpacenavd(path)
    try:
        now[0] += 0.5
        events, notices = link.poll()
        assert link.connected and notices[0].level == 'info'
        assert notices[0].text == f'connected to spacenavd at {path} (socket)'
        first = daemon.client()
        first.sendall(encode_event(ButtonEvent(2, True)))
        assert poll_until(link_source(link), 1) == [ButtonEvent(2, True)]

        first.close()  # the daemon drops the connection: reported once, reopened at once
        deadline = time.monotonic() + DEADLINE_S
        while link.connected:
            assert time.monotonic() < deadline
            events, notices = link.poll(timeout_s=0.1)
        assert [(n.level, n.text) for n in notices] == [
            ('error', f'spacenavd at {path} closed the connection: reconnecting')]
        events, notices = link.poll()
        assert link.connected and [n.level for n in notices] == ['info']
        daemon.client().sendall(encode_event(motion(1, 2, 3, 4, 5, 6)))
        assert_motion(poll_until(link_source(link), 1)[0], [1, 2, 3], [4, 5, 6], 8)
    finally:
        link.close()
        daemon.stop()


def link_source(link):
    """Adapt a link to poll_until, asserting that it says nothing meanwhile."""
    class Source:
        @staticmethod
        def poll(timeout_s):
            events, notices = link.poll(timeout_s)
            assert notices == []
            return events
    return Source()


# --- backends ------------------------------------------------------------------------------
def test_libspnav_missing_names_the_package(monkeypatch):
    monkeypatch.setattr(spacenav_protocol, 'libspnav_path', lambda: None)
    with pytest.raises(SpacenavError, match=r'libspnav is not installed.*apt install libspnav0'):
        LibspnavEventSource()
    with pytest.raises(SpacenavError, match='libspnav0'):
        open_event_source('libspnav')


def test_backends_by_name(daemon, tmp_path):
    auto = open_event_source('auto', daemon.path)  # any path but the default: the socket
    assert isinstance(auto, SocketEventSource)
    auto.close()
    with pytest.raises(SpacenavError, match='^no spacenavd at'):
        open_event_source('auto', str(tmp_path / 'nothing.sock'))
    with pytest.raises(ValueError, match="unknown backend 'usb'"):
        open_event_source('usb')


@pytest.mark.skipif(spacenav_protocol.libspnav_path() is None,
                    reason='libspnav is not installed (Debian: libspnav0)')
def test_libspnav_reads_the_same_events(daemon, monkeypatch):
    monkeypatch.setenv('SPNAV_SOCKET', daemon.path)
    try:
        source = LibspnavEventSource(daemon.path)
    except SpacenavError as error:
        if 'not at' in str(error):
            pytest.skip('this libspnav (before 1.0) reaches only the default socket')
        raise
    try:
        peer = daemon.client()
        peer.sendall(encode_event(motion(5, -6, 7, -8, 9, -10, period_ms=4))
                     + encode_event(ButtonEvent(1, True)))
        events = poll_until(source, 2)
        assert_motion(events[0], [5, -6, 7], [-8, 9, -10], 4)
        assert events[1] == ButtonEvent(1, True)
    finally:
        source.close()


# --- the driver's rules --------------------------------------------------------------------
def expected_normed(x, y, z, rx, ry, rz, full_scale=512.0):
    """Return the driver's axes: linear (z, -x, y), angular (rz, -rx, ry), over full_scale."""
    return [z / full_scale, -x / full_scale, y / full_scale,
            rz / full_scale, -rx / full_scale, ry / full_scale]


def test_axes_are_mapped_normalised_and_scaled_as_the_driver_does():
    settings = SpacenavSettings(linear_scale=(1.0, 2.0, 3.0), angular_scale=(0.5, 1.0, 2.0))
    state = DeviceState(settings)
    publications = state.poll([motion(100, -200, 300, 10, -20, 30)], elapsed_s=0.01)
    normed = expected_normed(100, -200, 300, 10, -20, 30)
    assert normed == [300 / 512, -100 / 512, -200 / 512, 30 / 512, -10 / 512, -20 / 512]
    linear = (normed[0] * 1.0, normed[1] * 2.0, normed[2] * 3.0)
    angular = (normed[3] * 0.5, normed[4] * 1.0, normed[5] * 2.0)
    assert publications == [Publication(True, (linear, angular, normed, []))]
    assert state.outputs() == (linear, angular, normed, [])  # Joy axes are not scaled

    state = DeviceState(SpacenavSettings(full_scale=350.0))
    state.poll([motion(350, 0, -350, 0, 175, 0)], elapsed_s=0.01)
    assert state.outputs().axes == [-1.0, -1.0, 0.0, 0.0, 0.0, 0.5]


def test_buttons_grow_to_the_highest_seen_and_each_event_publishes():
    state = DeviceState()
    publications = state.poll([ButtonEvent(1, True), ButtonEvent(1, False),
                               ButtonEvent(3, True), ButtonEvent(-1, True)], elapsed_s=0.01)
    assert [p.outputs.buttons for p in publications] == [[0, 1], [0, 0], [0, 0, 0, 1],
                                                         [0, 0, 0, 1]]
    assert [p.twist for p in publications] == [False] * 4  # the last: the poll's own Joy
    # once live, every poll publishes the Joy, and a pending motion goes out before a button
    assert state.poll([], elapsed_s=0.01) == [Publication(False, state.outputs())]
    publications = state.poll([motion(0, 0, 64, 0, 0, 0), ButtonEvent(0, True),
                               motion(0, 0, 128, 0, 0, 0)], elapsed_s=0.01)
    assert [(p.twist, p.outputs.axes[0], p.outputs.buttons) for p in publications] == [
        (True, 0.125, [1, 0, 0, 1]), (True, 0.25, [1, 0, 0, 1])]


def test_button_numbers_beyond_a_real_device_are_ignored_and_counted(daemon):
    # A daemon naming button 2^31 - 1 (or 64, or 1000) must not grow the Joy's button list.
    source = SocketEventSource(daemon.path)
    peer = daemon.client()
    peer.sendall(b''.join(encode_event(event) for event in (
        ButtonEvent(2 ** 31 - 1, True), ButtonEvent(spacenav_protocol.MAX_BUTTONS, True),
        ButtonEvent(1000, False), ButtonEvent(2, True))))
    events = poll_until(source, 4)
    source.close()
    assert events[0] == ButtonEvent(2 ** 31 - 1, True)  # decoded as sent
    assert spacenav_protocol.MAX_BUTTONS == 64
    state = DeviceState()
    publications = state.poll(events, elapsed_s=0.01)
    assert state.ignored_buttons == 3
    assert [p.outputs.buttons for p in publications] == [[0, 0, 1], [0, 0, 1]]
    assert len(state.outputs().buttons) == 3
    state.apply(ButtonEvent(63, True))  # the highest allowed still counts
    assert len(state.outputs().buttons) == 64 and state.ignored_buttons == 3


def test_nothing_goes_out_before_the_first_event_or_static_count():
    state = DeviceState()  # static_count_threshold 30: static on the 31st poll without motion
    assert state.poll([], elapsed_s=0.030) == []
    zeros = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), [0.0] * 6, [])
    assert state.poll([], elapsed_s=0.001) == [Publication(True, zeros)]
    assert state.poll([], elapsed_s=0.001) == [Publication(False, zeros)]  # now live


def test_zero_when_static_zeroes_after_the_threshold_and_republishes():
    state = DeviceState(SpacenavSettings(static_count_threshold=30))
    state.poll([motion(0, 0, 256, 0, 0, 0)], elapsed_s=0.01)
    for _ in range(3):  # 10, 20, 30 polls: not yet static
        (publication,) = state.poll([], elapsed_s=0.010)
        assert not publication.twist and publication.outputs.axes[0] == 0.5
    (publication,) = state.poll([], elapsed_s=0.010)  # 40 > 30: static, 9 polls counted on
    assert publication == Publication(True, ((0.0,) * 3, (0.0,) * 3, [0.0] * 6, []))
    assert [p.twist for p in state.poll([], elapsed_s=0.021)] == [False]  # 30
    assert [p.twist for p in state.poll([], elapsed_s=0.001)] == [True]  # 31: the heartbeat
    # a poll with motion starts the count again
    state.poll([motion(0, 0, 256, 0, 0, 0)], elapsed_s=0.001)
    assert [p.twist for p in state.poll([], elapsed_s=0.030)] == [False]


def test_without_zero_when_static_only_parts_within_the_deadbands_are_zeroed():
    settings = SpacenavSettings(full_scale=100.0, zero_when_static=False,
                                static_trans_deadband=0.1, static_rot_deadband=0.2,
                                static_count_threshold=0)
    state = DeviceState(settings)
    # translation all below 0.1, rotation with one part not below 0.2 (0.2 itself: kept)
    state.poll([motion(-9, 5, 9, 0, 20, -19)], elapsed_s=0.001)
    (publication,) = state.poll([], elapsed_s=0.001)
    assert publication.twist
    assert publication.outputs.linear == (0.0, 0.0, 0.0)
    assert publication.outputs.angular == (-19 / 100, -0 / 100, 20 / 100)
    # rotation below 0.2 too, translation one part at 0.1: the other way round
    state.poll([motion(0, 0, 10, 0, 19, 0)], elapsed_s=0.001)
    (publication,) = state.poll([], elapsed_s=0.001)
    assert publication.outputs.linear == (0.1, -0.0, 0.0)
    assert publication.outputs.angular == (0.0, 0.0, 0.0)


def test_release_lets_go_of_every_button_and_starts_afresh():
    state = DeviceState()
    state.poll([motion(0, 0, 512, 0, 0, 0), ButtonEvent(2, True)], elapsed_s=0.01)
    assert state.release() == ((0.0,) * 3, (0.0,) * 3, [0.0] * 6, [0, 0, 0])
    assert state.outputs() == ((0.0,) * 3, (0.0,) * 3, [0.0] * 6, [])
    assert state.poll([], elapsed_s=0.01) == []


@pytest.mark.parametrize('settings, message', [
    ({'full_scale': 0.0}, 'full_scale'), ({'static_count_threshold': -1}, 'static_count'),
    ({'static_rot_deadband': -0.1}, 'static_rot_deadband'),
    ({'linear_scale': (1.0, 1.0)}, 'linear_scale')])
def test_invalid_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        SpacenavSettings(**settings)
