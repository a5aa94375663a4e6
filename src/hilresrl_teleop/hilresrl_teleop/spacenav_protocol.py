"""
SpaceMouse events read from the spacenavd daemon, and the ROS spacenav driver's outputs from them.

Plain Python and numpy (no ROS): spacemouse_node publishes what DeviceState computes here.
"""

import ctypes
import ctypes.util
from dataclasses import dataclass
import functools
import os
import select
import socket
import struct
import time
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .spacemouse import MAX_BUTTONS

DEFAULT_SOCKET_PATH = '/var/run/spnav.sock'
BACKENDS = ('auto', 'socket', 'libspnav')

# spacenavd's UNIX-socket protocol (version 0, which every daemon speaks and a client gets until
# it asks for another): the daemon writes packets of 8 native-endian int32. Word 0 is the event
# type; a motion packet carries x, y, z, rx, ry, rz in words 1-6 and the milliseconds since the
# previous motion event in word 7; press and release packets carry the button number in word 1.
PACKET = struct.Struct('=8i')
UEV_MOTION, UEV_PRESS, UEV_RELEASE = 0, 1, 2

# libspnav's spnav_poll_event() returns the event type (0: none) and fills a union of int
# fields: for motion, type, x, y, z, rx, ry, rz, period; for buttons, type, press, bnum.
SPNAV_EVENT_MOTION, SPNAV_EVENT_BUTTON = 1, 2
_LIBSPNAV_EVENT_INTS = 16  # room to spare: the union is 40 bytes on 64-bit libspnav

# The ROS spacenav driver polls libspnav every millisecond, and its static_count_threshold counts
# those polls: here the time between two polls is converted into that many of the driver's polls.
DRIVER_POLL_PERIOD_S = 0.001

# The driver's axis mapping, from spacenavd's (x, y, z, rx, ry, rz) to its normalised
# (linear x, y, z, angular x, y, z): linear = (z, -x, y), angular = (rz, -rx, ry), each over
# full_scale. Twist and offset/rot_offset are those times linear_scale/angular_scale; the Joy
# axes are the normalised values themselves, unscaled.
_AXIS_SOURCES = (2, 0, 1, 5, 3, 4)
_AXIS_SIGNS = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])


class SpacenavError(RuntimeError):
    """No connection to spacenavd, or it was lost; the message says what to install or start."""


@dataclass(frozen=True, eq=False)
class MotionEvent:
    """The puck's displacement: raw daemon units, translation and rotation each (3,) x y z."""

    translation: np.ndarray
    rotation: np.ndarray
    period_ms: int = 0


@dataclass(frozen=True)
class ButtonEvent:
    """A button (numbered from 0) went down (pressed) or up."""

    button: int
    pressed: bool


Event = Union[MotionEvent, ButtonEvent]


def decode_packet(words: Sequence[int]) -> Optional[Event]:
    """Return the event of one daemon packet (8 ints), or None for a kind the driver ignores."""
    kind = words[0]
    if kind == UEV_MOTION:
        return MotionEvent(np.array(words[1:4], dtype=np.int64),
                           np.array(words[4:7], dtype=np.int64), int(words[7]))
    if kind in (UEV_PRESS, UEV_RELEASE):
        return ButtonEvent(int(words[1]), kind == UEV_PRESS)
    return None  # device and configuration notices (protocol v1 clients only)


def encode_event(event: Event) -> bytes:
    """Return the daemon's packet for an event (what a stand-in daemon sends)."""
    if isinstance(event, MotionEvent):
        return PACKET.pack(UEV_MOTION, *(int(v) for v in event.translation),
                           *(int(v) for v in event.rotation), int(event.period_ms))
    return PACKET.pack(UEV_PRESS if event.pressed else UEV_RELEASE, int(event.button),
                       0, 0, 0, 0, 0, 0)


def _missing_daemon(path: str) -> SpacenavError:
    return SpacenavError(f'no spacenavd at {path}: install and start spacenavd (Debian: apt '
                         'install spacenavd), or plug in the device')


class SocketEventSource:
    """A connection to spacenavd's UNIX socket, decoding its packets; needs no library."""

    def __init__(self, path: str = DEFAULT_SOCKET_PATH, connect_timeout_s: float = 1.0):
        self.path = path
        self.description = f'spacenavd at {path} (socket)'
        self._buffer = bytearray()
        self._closed_by_peer = False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout_s)
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as error:
            # A socket file nobody listens on is what a stopped daemon leaves behind.
            sock.close()
            raise _missing_daemon(path) from error
        except PermissionError as error:
            sock.close()
            raise SpacenavError(f'no permission to connect to spacenavd at {path}: run the node '
                                'as a user allowed to, or change the socket mode') from error
        except OSError as error:
            sock.close()
            raise SpacenavError(f'cannot connect to spacenavd at {path}: {error}') from error
        sock.setblocking(False)
        self._sock: Optional[socket.socket] = sock

    def fileno(self) -> int:
        """Return the socket's file descriptor (-1 once closed), for select()."""
        return self._sock.fileno() if self._sock is not None else -1

    def poll(self, timeout_s: float = 0.0) -> List[Event]:
        """
        Return the events that have arrived, waiting up to timeout_s for the first.

        A packet split across reads is kept until its last byte comes. Raises SpacenavError when
        the daemon has closed the connection (after returning the events it sent before that).
        """
        if self._sock is None:
            raise SpacenavError(f'{self.description}: the connection is closed')
        if self._closed_by_peer:
            raise SpacenavError(f'spacenavd at {self.path} closed the connection')
        if len(self._buffer) < PACKET.size and timeout_s > 0.0:
            select.select([self._sock], [], [], timeout_s)
        while True:
            try:
                chunk = self._sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                raise SpacenavError(f'lost spacenavd at {self.path}: {error}') from error
            if not chunk:
                self._closed_by_peer = True
                break
            self._buffer += chunk
        events = self._take_events()
        if self._closed_by_peer and not events:
            raise SpacenavError(f'spacenavd at {self.path} closed the connection')
        return events

    def _take_events(self) -> List[Event]:
        whole = len(self._buffer) - len(self._buffer) % PACKET.size
        packets = PACKET.iter_unpack(bytes(self._buffer[:whole]))
        events = [decode_packet(words) for words in packets]
        del self._buffer[:whole]
        return [event for event in events if event is not None]

    def close(self) -> None:
        """Close the connection (again: nothing)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@functools.lru_cache(maxsize=None)
def libspnav_path() -> Optional[str]:
    """Return the name under which libspnav loads, or None when it is not installed."""
    return ctypes.util.find_library('spnav')


class LibspnavEventSource:
    """The same events read through libspnav (spnav_open, spnav_poll_event, spnav_close)."""

    # libspnav keeps its one connection per process in globals of its own.
    _in_use = False

    def __init__(self, socket_path: str = DEFAULT_SOCKET_PATH):
        name = libspnav_path()
        if name is None:
            raise SpacenavError('libspnav is not installed: install it (Debian: apt install '
                                "libspnav0), or use backend 'socket', which needs only spacenavd")
        if LibspnavEventSource._in_use:
            raise SpacenavError('libspnav is already connected in this process (it allows one '
                                'connection)')
        self.path = socket_path
        self.description = f'spacenavd at {socket_path} (libspnav)'
        lib = ctypes.CDLL(name)
        lib.spnav_open.restype = ctypes.c_int
        lib.spnav_fd.restype = ctypes.c_int
        lib.spnav_poll_event.restype = ctypes.c_int
        lib.spnav_poll_event.argtypes = [ctypes.c_void_p]
        if not self._open(lib, socket_path):
            raise _missing_daemon(socket_path)
        self._lib = lib
        LibspnavEventSource._in_use = True
        self._event = (ctypes.c_int * _LIBSPNAV_EVENT_INTS)()
        # A second handle on libspnav's socket, to tell a closed connection from a quiet one:
        # spnav_poll_event() answers 0 to both.
        self._peer: Optional[socket.socket] = socket.fromfd(lib.spnav_fd(), socket.AF_UNIX,
                                                            socket.SOCK_STREAM)
        peer = self._peer_path()
        if peer:
            self.description = f'spacenavd at {peer} (libspnav)'
        if (socket_path != DEFAULT_SOCKET_PATH and peer
                and os.path.realpath(peer) != os.path.realpath(socket_path)):
            # libspnav falls back to the socket it finds itself, and before 1.0 knows no other.
            self.close()
            raise SpacenavError(f'libspnav reached spacenavd at {peer}, not at {socket_path}: '
                                "use backend 'socket' for a socket of your choice")

    @staticmethod
    def _open(lib, socket_path: str) -> bool:
        # The default lets libspnav search as it does ($SPNAV_SOCKET, /etc/spnavrc, the
        # default); another path goes first through $SPNAV_SOCKET (libspnav 1.0 and later).
        if socket_path == DEFAULT_SOCKET_PATH:
            return lib.spnav_open() != -1
        previous = os.environ.get('SPNAV_SOCKET')
        os.environ['SPNAV_SOCKET'] = socket_path
        try:
            return lib.spnav_open() != -1
        finally:
            if previous is None:
                del os.environ['SPNAV_SOCKET']
            else:
                os.environ['SPNAV_SOCKET'] = previous

    def _peer_path(self) -> str:
        try:
            peer = self._peer.getpeername()
        except OSError:
            return ''
        return peer if isinstance(peer, str) else ''

    def poll(self, timeout_s: float = 0.0) -> List[Event]:
        """Return the events that have arrived, waiting up to timeout_s for the first."""
        if self._peer is None:
            raise SpacenavError(f'{self.description}: the connection is closed')
        if timeout_s > 0.0:
            select.select([self._peer], [], [], timeout_s)
        events: List[Event] = []
        while True:
            kind = self._lib.spnav_poll_event(ctypes.byref(self._event))
            if kind == 0:
                break
            words = list(self._event)
            if kind == SPNAV_EVENT_MOTION:
                events.append(MotionEvent(np.array(words[1:4], dtype=np.int64),
                                          np.array(words[4:7], dtype=np.int64),
                                          words[7] & 0xffffffff))
            elif kind == SPNAV_EVENT_BUTTON:
                events.append(ButtonEvent(words[2], bool(words[1])))
        if not events and self._peer_closed():
            raise SpacenavError(f'spacenavd at {self.path} closed the connection')
        return events

    def _peer_closed(self) -> bool:
        try:
            return self._peer.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b''
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def close(self) -> None:
        """Close the connection (again: nothing)."""
        if self._peer is not None:
            self._peer.close()
            self._peer = None
            self._lib.spnav_close()
            LibspnavEventSource._in_use = False


EventSource = Union[SocketEventSource, LibspnavEventSource]


def open_event_source(backend: str = 'auto',
                      socket_path: str = DEFAULT_SOCKET_PATH) -> EventSource:
    """
    Connect to spacenavd through the backend named: 'socket', 'libspnav' or 'auto'.

    'auto' takes libspnav when it is installed and connects, else the socket; with a socket_path
    other than the default it takes the socket, which reaches any path (libspnav before 1.0
    reaches only the default). Raises SpacenavError saying what to install or start.
    """
    if backend == 'socket':
        return SocketEventSource(socket_path)
    if backend == 'libspnav':
        return LibspnavEventSource(socket_path)
    if backend == 'auto':
        if socket_path == DEFAULT_SOCKET_PATH and libspnav_path() is not None:
            try:
                return LibspnavEventSource(socket_path)
            except SpacenavError:
                pass
        return SocketEventSource(socket_path)
    raise ValueError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class LinkNotice:
    """A change of the link worth one log line: level is 'info', 'warning' or 'error'."""

    level: str
    text: str


class DeviceLink:
    """
    Keep an event source open: open it when due, reopen it when lost, report each change once.

    poll() never raises for a missing or lost daemon. The first failure to connect is reported
    once, with the error's advice; further attempts, one every retry_period_s, stay silent until
    one succeeds. A lost connection is reported once and reopened at the next poll. ``attempts``
    counts the attempts to open so far.
    """

    def __init__(self, open_source: Callable[[], EventSource], retry_period_s: float,
                 clock: Callable[[], float] = time.monotonic):
        if not retry_period_s > 0.0:
            raise ValueError(f'retry_period_s must be positive, got {retry_period_s}')
        self._open_source = open_source
        self.retry_period_s = retry_period_s
        self._clock = clock
        self._source: Optional[EventSource] = None
        self._next_attempt = clock()
        self._outage_reported = False
        self.attempts = 0

    @property
    def connected(self) -> bool:
        """Whether a source is open."""
        return self._source is not None

    def poll(self, timeout_s: float = 0.0) -> Tuple[List[Event], List[LinkNotice]]:
        """Return the events read and the notices of what changed since the last poll."""
        notices: List[LinkNotice] = []
        if self._source is None:
            if self._clock() < self._next_attempt:
                return [], notices
            self.attempts += 1
            try:
                self._source = self._open_source()
            except SpacenavError as error:
                self._next_attempt = self._clock() + self.retry_period_s
                if not self._outage_reported:
                    self._outage_reported = True
                    notices.append(LinkNotice('error', f'{error} (retrying every '
                                                       f'{self.retry_period_s:g} s)'))
                return [], notices
            self._outage_reported = False
            notices.append(LinkNotice('info', f'connected to {self._source.description}'))
        try:
            return self._source.poll(timeout_s), notices
        except SpacenavError as error:
            self.close()
            self._outage_reported = True
            self._next_attempt = self._clock()
            notices.append(LinkNotice('error', f'{error}: reconnecting'))
            return [], notices

    def close(self) -> None:
        """Close the source, if open."""
        if self._source is not None:
            self._source.close()
            self._source = None


@dataclass(frozen=True)
class SpacenavSettings:
    """
    The ROS spacenav driver's parameters, with its defaults and meanings.

    full_scale: raw daemon units that normalise to 1. linear_scale, angular_scale: (x, y, z)
    factors of the twist (not of the Joy axes). static_count_threshold: polls of the driver's
    1 ms loop (so milliseconds) without motion before the device counts as static; then, and
    again every threshold + 1 polls, the twist is published again, with the translation set to 0
    if zero_when_static or every normalised translation is below static_trans_deadband, and
    likewise the rotation with static_rot_deadband.
    """

    full_scale: float = 512.0
    linear_scale: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    angular_scale: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    static_count_threshold: int = 30
    zero_when_static: bool = True
    static_trans_deadband: float = 0.1
    static_rot_deadband: float = 0.1

    def __post_init__(self):
        if not (np.isfinite(self.full_scale) and self.full_scale >= 1e-10):
            raise ValueError(f'full_scale must be at least 1e-10, got {self.full_scale}')
        for name in ('linear_scale', 'angular_scale'):
            values = getattr(self, name)
            if len(values) != 3 or not np.all(np.isfinite(values)):
                raise ValueError(f'{name} must be 3 finite values (x, y, z), got {values}')
        if self.static_count_threshold < 0:
            raise ValueError('static_count_threshold must be 0 or more, got '
                             f'{self.static_count_threshold}')
        for name in ('static_trans_deadband', 'static_rot_deadband'):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f'{name} must be 0 or more, got {getattr(self, name)}')


class DeviceOutputs(NamedTuple):
    """The driver's outputs: twist linear xyz, twist angular xyz, Joy axes (6), Joy buttons."""

    linear: Tuple[float, float, float]
    angular: Tuple[float, float, float]
    axes: List[float]
    buttons: List[int]


class Publication(NamedTuple):
    """One publication of the driver: the twist (and offsets) when due, then always the Joy."""

    twist: bool
    outputs: DeviceOutputs


class DeviceState:
    """
    The ROS spacenav driver's state and its publishing rules, one poll at a time.

    The driver drains libspnav's queue every millisecond. A motion event (spacenavd's x, y, z,
    rx, ry, rz) replaces the normalised axes, linear (z, -x, y) and angular (rz, -rx, ry), each
    over full_scale, and makes the twist due; a button event sets that button (the list grows to
    hold it, up to MAX_BUTTONS; higher and negative numbers are ignored and counted in
    ``ignored_buttons``) and publishes at once. Once it has published anything,
    the driver publishes the Joy on every poll. Here one poll() drains whatever arrived since the
    previous one, elapsed_s earlier: the twist goes out once with the latest motion, and polls
    without motion count as elapsed_s / 1 ms of the driver's polls toward static_count_threshold.
    """

    def __init__(self, settings: Optional[SpacenavSettings] = None):
        self.settings = settings if settings is not None else SpacenavSettings()
        self.ignored_buttons = 0  # button events out of range, since the start
        self.reset()

    def reset(self) -> None:
        """Return to the state of a driver just started: nothing read, nothing published."""
        self._normed = np.zeros(6)
        self._buttons: List[int] = []
        self._motion_due = False
        self._joy_live = False  # the driver's joy_stale, which it never clears once set
        self._static_polls = 0

    def release(self) -> DeviceOutputs:
        """
        Let go of the device (its connection is lost) and return what to publish for that.

        Zero axes and every known button up, so that no reader keeps acting on the last
        deflection; then the state of a driver just started.
        """
        buttons = [0] * len(self._buttons)
        self.reset()
        return DeviceOutputs((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), [0.0] * 6, buttons)

    def apply(self, event: Event) -> bool:
        """Take one event; return True when the driver would publish right away (a button)."""
        if isinstance(event, MotionEvent):
            raw = np.concatenate([np.asarray(event.translation, dtype=float).reshape(3),
                                  np.asarray(event.rotation, dtype=float).reshape(3)])
            self._normed = raw[list(_AXIS_SOURCES)] * _AXIS_SIGNS / self.settings.full_scale
            self._motion_due = True
            return False
        if not 0 <= event.button < MAX_BUTTONS:
            # The driver ignores negative numbers; here too any beyond a real device's buttons.
            self.ignored_buttons += 1
            return False
        if event.button >= len(self._buttons):
            self._buttons.extend([0] * (event.button + 1 - len(self._buttons)))
        self._buttons[event.button] = int(event.pressed)
        self._joy_live = True
        return True

    def poll(self, events: Sequence[Event], elapsed_s: float) -> List[Publication]:
        """
        Take the events since the previous poll, elapsed_s ago; return what to publish.

        In order: one publication per button event (with the twist before it if motion is
        due), then one for the poll itself once anything has been published.
        """
        publications: List[Publication] = []
        moved = False
        for event in events:
            moved |= isinstance(event, MotionEvent)
            if self.apply(event):
                if self._motion_due:
                    self._static_polls = 0
                publications.append(self._publication())
        if moved:
            self._static_polls = 0
        else:
            self._count_static_polls(max(1, round(elapsed_s / DRIVER_POLL_PERIOD_S)))
        if self._motion_due or self._joy_live:
            publications.append(self._publication())
        return publications

    def _count_static_polls(self, polls: int) -> None:
        # The driver counts polls without an event and, on the one past the threshold, applies
        # the static rules and starts counting again from 0.
        period = self.settings.static_count_threshold + 1
        total = self._static_polls + polls
        if total >= period:
            settings = self.settings
            normed = self._normed
            if settings.zero_when_static or np.all(np.abs(normed[:3])
                                                   < settings.static_trans_deadband):
                normed[:3] = 0.0
            if settings.zero_when_static or np.all(np.abs(normed[3:])
                                                   < settings.static_rot_deadband):
                normed[3:] = 0.0
            self._motion_due = True
        self._static_polls = total % period

    def _publication(self) -> Publication:
        twist = self._motion_due
        if twist:
            self._motion_due = False
            self._joy_live = True
        return Publication(twist, self.outputs())

    def outputs(self) -> DeviceOutputs:
        """Return (twist linear xyz, twist angular xyz, Joy axes, Joy buttons) as they are now."""
        linear = self._normed[:3] * np.asarray(self.settings.linear_scale, dtype=float)
        angular = self._normed[3:] * np.asarray(self.settings.angular_scale, dtype=float)
        return DeviceOutputs(tuple(float(v) for v in linear), tuple(float(v) for v in angular),
                             [float(v) for v in self._normed], list(self._buttons))
