"""
SpaceMouse readings (spacenav twist channels and buttons) turned into the cell's action space.

Plain Python and numpy (no ROS): the node converts messages and calls SpaceMouseMapper.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

CHANNEL_NAMES = ('linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z')
# A device channel beyond this is a broken device or a forged message, not a person (the
# spacenav driver's channels are near 1 at full deflection, times its scale parameters).
MAX_CHANNEL_VALUE = 100.0
# The most buttons a device may have (SpaceMice have 2 to 48): a Joy with more is refused before
# it is copied, and the spacenavd reader ignores higher button numbers.
MAX_BUTTONS = 64


def toggle_gripper_state(state: float) -> float:
    """Return the gripper state after one toggle: close (+1) unless closed, then open (-1)."""
    return -1.0 if state > 0.0 else 1.0


@dataclass(frozen=True)
class SpaceMouseConfig:
    """
    How the device drives the action axes.

    ``channels[i]`` names the device channel that drives action axis i ('' for none) and
    ``scales[i]`` multiplies it (a negative scale flips the direction). Button indices refer to
    the Joy buttons list; -1 means no button.
    """

    deadband: float = 0.1
    channels: Tuple[str, ...] = ('linear.x', 'linear.y', 'linear.z', '')
    scales: Tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    gripper_axis: Optional[int] = 3
    gripper_button: int = 0
    success_button: int = 1
    takeover_button: int = -1

    def __post_init__(self):
        if not 0.0 <= self.deadband < 1.0:
            raise ValueError(f'deadband must be in [0, 1), got {self.deadband}')
        if len(self.scales) != len(self.channels):
            raise ValueError(f'{len(self.channels)} channels but {len(self.scales)} scales')
        mapped = [channel for channel in self.channels if channel]
        for channel in mapped:
            if channel not in CHANNEL_NAMES:
                raise ValueError(f"unknown channel '{channel}': use one of "
                                 + ', '.join(CHANNEL_NAMES) + " or ''")
        if len(set(mapped)) != len(mapped):
            raise ValueError('a device channel drives at most one action axis')
        for channel, scale in zip(self.channels, self.scales):
            if channel and (scale == 0.0 or not np.isfinite(scale)):
                raise ValueError(f"scale of '{channel}' must be finite and nonzero, got {scale}")


@dataclass(frozen=True)
class DeviceReading:
    """
    What the person commands on one control step.

    ``action`` (action_dim,) holds the mapped channels and, on the gripper axis, the mapper's
    gripper state. ``active_axes`` marks channels outside the deadband, and the gripper axis on
    the reading in which its button toggled. ``gripper_toggled`` and ``success_pressed`` are
    edges: exactly one reading reports each press. ``button_held`` is true while the gripper or
    takeover button is down.
    """

    action: np.ndarray
    active_axes: np.ndarray
    takeover_held: bool = False
    gripper_toggled: bool = False
    success_pressed: bool = False
    button_held: bool = False

    @property
    def any_active(self) -> bool:
        """Whether any axis is active."""
        return bool(np.any(self.active_axes))

    @classmethod
    def idle(cls, action_dim: int) -> 'DeviceReading':
        """Return the reading of a device nobody touches (also what a stale device reads)."""
        return cls(np.zeros(action_dim), np.zeros(action_dim, dtype=bool))


class SpaceMouseMapper:
    """Keep the latest device state and map it into the action space."""

    def __init__(self, config: SpaceMouseConfig, action_dim: int):
        if len(config.channels) != action_dim:
            raise ValueError(f'{len(config.channels)} channels configured for an action of '
                             f'{action_dim} axes')
        if config.gripper_axis is not None:
            if not 0 <= config.gripper_axis < action_dim:
                raise ValueError(f'gripper axis {config.gripper_axis} is outside the action')
            if config.channels[config.gripper_axis]:
                raise ValueError('the gripper axis is driven by the gripper button, not a channel')
        self.config = config
        self.action_dim = action_dim
        self._axis_channels = [CHANNEL_NAMES.index(channel) if channel else -1
                               for channel in config.channels]
        self._scales = np.asarray(config.scales, dtype=float)
        self._channel_values = np.zeros(len(CHANNEL_NAMES))
        self._buttons: Tuple[int, ...] = ()
        self._last_buttons: Tuple[int, ...] = ()
        self._gripper_state = -1.0
        # Edges are latched until a reading reports them: the Joy topic may publish a press and
        # its release between two control steps.
        self._gripper_toggled = False
        self._success_pressed = False

    @property
    def gripper_state(self) -> float:
        """Gripper command the person holds: +1 closed, -1 open (0 if told so)."""
        return self._gripper_state

    def set_gripper_state(self, gripper_command: float) -> None:
        """Start the gripper state from a command, e.g. the last executed one (its sign)."""
        self._gripper_state = float(np.sign(gripper_command))

    def update_twist(self, linear: Sequence[float], angular: Sequence[float]) -> None:
        """Store the latest channel values (spacenav/twist: linear xyz, angular xyz)."""
        values = np.concatenate([np.asarray(linear, dtype=float).reshape(-1),
                                 np.asarray(angular, dtype=float).reshape(-1)])
        if values.shape != (len(CHANNEL_NAMES),):
            raise ValueError(f'expected 3 linear and 3 angular values, got {len(linear)} and '
                             f'{len(angular)}')
        if not np.all(np.isfinite(values)):
            raise ValueError('non-finite SpaceMouse channel value')
        if np.any(np.abs(values) > MAX_CHANNEL_VALUE):
            raise ValueError(f'SpaceMouse channel value {np.max(np.abs(values)):g} beyond '
                             f'{MAX_CHANNEL_VALUE:g}')
        self._channel_values = values

    def update_buttons(self, buttons: Sequence[int]) -> None:
        """
        Store the latest buttons (spacenav/joy) and latch the presses since the last ones.

        More than MAX_BUTTONS buttons raise ValueError and leave the state as it was.
        """
        if len(buttons) > MAX_BUTTONS:
            raise ValueError(f'{len(buttons)} buttons, more than the {MAX_BUTTONS} a device has')
        buttons = tuple(int(button) for button in buttons)
        if self._rising_edge(buttons, self.config.gripper_button):
            self._gripper_state = toggle_gripper_state(self._gripper_state)
            self._gripper_toggled = True
        if self._rising_edge(buttons, self.config.success_button):
            self._success_pressed = True
        self._buttons = buttons
        self._last_buttons = buttons

    def clear(self) -> None:
        """
        Forget channels, held buttons and unreported presses, as if the device were let go.

        For a device gone silent. A button still down when messages resume is not a new press,
        so a stale device never toggles the gripper when it comes back.
        """
        self._channel_values = np.zeros(len(CHANNEL_NAMES))
        self._buttons = ()
        self._gripper_toggled = False
        self._success_pressed = False

    def reading(self) -> DeviceReading:
        """Return the person's command now; presses are reported by this reading only."""
        action = np.zeros(self.action_dim)
        active_axes = np.zeros(self.action_dim, dtype=bool)
        for axis, channel in enumerate(self._axis_channels):
            if channel >= 0:
                value = self._outside_deadband(self._channel_values[channel])
                active_axes[axis] = value != 0.0
                action[axis] = np.clip(value * self._scales[axis], -1.0, 1.0)
        gripper_axis = self.config.gripper_axis
        if gripper_axis is not None:
            action[gripper_axis] = self._gripper_state
            active_axes[gripper_axis] = self._gripper_toggled
        reading = DeviceReading(
            action=action, active_axes=active_axes,
            takeover_held=self._held(self._buttons, self.config.takeover_button),
            gripper_toggled=self._gripper_toggled, success_pressed=self._success_pressed,
            button_held=(self._held(self._buttons, self.config.gripper_button)
                         or self._held(self._buttons, self.config.takeover_button)))
        self._gripper_toggled = False
        self._success_pressed = False
        return reading

    def channels_for_action(self, action: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the (linear xyz, angular xyz) channel values that command ``action``.

        Fed back through update_twist, they reproduce the action on every mapped axis (clipped to
        [-1, 1]). Any nonzero value lands just outside the deadband, since the mapping starts at 0
        on its edge; exactly 0 gives a centred channel, which reads as an inactive axis, and so
        does a value so tiny (below about 1e-16) that the channel rounds onto the edge. A value
        beyond what |scale| reaches gives a channel beyond 1. Unmapped channels and the gripper
        axis (a button) are left at 0.
        """
        action = np.asarray(action, dtype=float)
        if action.shape != (self.action_dim,):
            raise ValueError(f'expected {self.action_dim} values, got shape {action.shape}')
        deadband = self.config.deadband
        values = np.zeros(len(CHANNEL_NAMES))
        for axis, channel in enumerate(self._axis_channels):
            if channel >= 0:
                rescaled = np.clip(action[axis], -1.0, 1.0) / self._scales[axis]
                if rescaled != 0.0:
                    values[channel] = np.sign(rescaled) * (
                        deadband + abs(rescaled) * (1.0 - deadband))
        return values[:3], values[3:]

    def _outside_deadband(self, value: float) -> float:
        # Rescaled to start at 0 on the deadband edge, so the command has no jump there.
        deadband = self.config.deadband
        if abs(value) <= deadband:
            return 0.0
        return float(np.sign(value) * (abs(value) - deadband) / (1.0 - deadband))

    def _rising_edge(self, buttons: Tuple[int, ...], index: int) -> bool:
        return self._held(buttons, index) and not self._held(self._last_buttons, index)

    @staticmethod
    def _held(buttons: Tuple[int, ...], index: int) -> bool:
        return 0 <= index < len(buttons) and buttons[index] != 0
