"""
The intervention arbiter without ROS: what each proposal and each watchdog tick comes to.

It keeps what the inputs said (device, end-effector pose, episode, mode, e-stop) and runs the
arbitration, the safety filter and the watchdog; the node converts messages and publishes.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from hilresrl_common.corrections import CorrectionDescriber
import numpy as np

from .arbiter_parameters import ArbiterSettings
from .arbitration import ArbitrationResult, InterventionArbiter
from .safety import check_proposal, EStop, SafetyFilter, Watchdog, WatchdogStatus
from .spacemouse import DeviceReading, SpaceMouseMapper

NO_STATUS = WatchdogStatus([], [], [])


@dataclass(frozen=True)
class StepOutcome:
    """
    What one proposal comes to.

    ``command``: what to send (None: nothing; while paused the watchdog tick holds the robot).
    ``hold_reason``: why the command is a hold ('': it is not); ``rejected``: why the proposal
    or its command was refused; ``stale_pose``: why the pose was too old to check it against.
    ``decision``: the arbitration of the step, None where a hold came first. ``handover``: the
    detail of the intervention segment that started or ended (decision.started says which).
    ``correction``: the talk-and-tweak words of the segment so far, to publish now: on the
    person's steps and on the step that ends it (None: none).
    ``limits``: the safety limits that changed the command. ``device_lost``, ``device_back``:
    what to log when the device went silent on this step, or came back ('': neither).
    """

    command: Optional[np.ndarray] = None
    hold_reason: str = ''
    rejected: str = ''
    stale_pose: str = ''
    decision: Optional[ArbitrationResult] = None
    handover: str = ''
    correction: Optional[str] = None
    limits: Tuple[str, ...] = ()
    device_lost: str = ''
    device_back: str = ''

    @property
    def held(self) -> bool:
        """Whether the command holds the robot instead of executing the proposal."""
        return bool(self.hold_reason)


class ArbiterCore:
    """Proposal + device -> arbitration -> safety filter, with the watchdog and the e-stop."""

    def __init__(self, settings: ArbiterSettings, now_s: float):
        """Start at now_s (monotonic clock): a pose gets the watchdog's timeout to arrive."""
        dim = len(settings.action_names)
        self.settings = settings
        self.mapper = SpaceMouseMapper(settings.spacemouse, dim)
        self.arbiter = InterventionArbiter(dim, settings.per_axis, settings.quiet_period_s,
                                           settings.gripper_axis)
        self.safety = SafetyFilter(settings.safety)
        timeout_s = settings.watchdog_timeout_s
        self.watchdog = Watchdog(timeout_s, ('proposal', 'ee_pose')) if timeout_s > 0 else None
        self.estop = EStop()
        try:  # talk-and-tweak needs Cartesian axes; joint-space actions have no words here
            self.corrections: Optional[CorrectionDescriber] = CorrectionDescriber(
                settings.action_names, settings.linear_speed_scale_mps,
                settings.angular_speed_scale_rps, settings.control_period_s)
        except ValueError:
            self.corrections = None
        command = settings.command
        self._needs_orientation = command.interface != 'servo_twist' or command.frame == 'tool'
        self._tool_frame = command.frame == 'tool'
        self.paused = False
        self.interventions_allowed = True  # training: a person may take over
        self.latest_stamp_ns = 0
        self.ee_position: Optional[np.ndarray] = None
        self._ee_orientation: Optional[np.ndarray] = None
        self._started_s = now_s
        self._ee_pose_s: Optional[float] = None  # when the last valid pose arrived
        self._device_seen_s: Dict[str, float] = {}  # device topic -> its last valid sample
        self._device_stale = False
        self._episode_id = 0
        self.robot_id = ''
        self.episode_running = False
        self._episodes_managed = False  # an episode manager has spoken: arm inside episodes only
        self._armed = False

    @property
    def episode_id(self) -> int:
        """Return the running episode's id (0 between episodes)."""
        return self._episode_id if self.episode_running else 0

    # --- inputs --------------------------------------------------------------------------
    def device_twist(self, now_s: float, linear: Sequence[float],
                     angular: Sequence[float]) -> str:
        """Take the device's channels; return why the sample was refused ('': taken)."""
        return self._device('spacenav/twist', now_s,
                            lambda: self.mapper.update_twist(linear, angular))

    def device_buttons(self, now_s: float, buttons: Sequence[int]) -> str:
        """Take the device's buttons; return why they were refused ('': taken)."""
        return self._device('spacenav/joy', now_s, lambda: self.mapper.update_buttons(buttons))

    def _device(self, topic: str, now_s: float, update) -> str:
        try:
            update()
        except ValueError as error:  # the sample is dropped: the person's command goes to 0
            self.mapper.clear()
            return str(error)
        self._device_seen_s[topic] = now_s
        return ''

    def end_effector_pose(self, now_s: float, pose: np.ndarray, stamp_ns: int) -> str:
        """Take the pose (x y z, quaternion x y z w); return why it was refused ('': taken)."""
        if not np.all(np.isfinite(pose)):  # treated as no pose: the last one goes stale
            return 'non-finite value'
        if self._needs_orientation and not np.linalg.norm(pose[3:]) > 1e-6:
            return 'orientation is not a rotation (zero quaternion)'
        self._ee_pose_s = now_s
        self.ee_position, self._ee_orientation = pose[:3], pose[3:]
        self.latest_stamp_ns = max(self.latest_stamp_ns, stamp_ns)
        if self.watchdog is not None:
            self.watchdog.feed('ee_pose', now_s)
        return ''

    def episode_started(self, episode_id: int, robot_id: str) -> str:
        """
        Take an episode's start: the arbitration starts afresh, the first command from rest.

        Return the detail of the intervention segment this ends ('': none was running), as an
        episode that ended mid-correction leaves one.
        """
        self._episode_id, self.robot_id = episode_id, robot_id
        self.episode_running = self._episodes_managed = True
        self.safety.reset()
        segment_id = self.arbiter.segment_id
        if not self.arbiter.reset():
            return ''
        if self.corrections is not None:
            self.corrections.start()
        return f'segment {segment_id}: episode start'

    def episode_ended(self) -> None:
        """Take an episode's end."""
        self.episode_running = self._armed = False
        self._episodes_managed = True
        # Between episodes a cell may go quiet (a lockstep simulator idles until its reset, a
        # learner that lags holds the next episode back): no alarm for that; the next proposal
        # of an episode arms the watchdog again.

    # --- one control step ----------------------------------------------------------------
    def step(self, now_s: float, stamp_ns: int, base_action: Sequence[float],
             composed_action: Sequence[float], residual: Sequence[float]) -> StepOutcome:
        """Return what to do with one proposal (now_s: monotonic clock, stamp: its own)."""
        if self.watchdog is not None:
            self.watchdog.feed('proposal', now_s)
        # The last proposal of an episode can arrive after its end event (another topic):
        # where episodes are managed, only a proposal inside one arms the watchdog.
        self._armed = self.episode_running or not self._episodes_managed
        self.latest_stamp_ns = max(self.latest_stamp_ns, stamp_ns)
        if self.estop.active:
            return StepOutcome(self.safety.hold(), f'e-stop: {self.estop.reason}')
        if self.paused:
            return StepOutcome()  # the watchdog tick holds the robot while paused
        problem = check_proposal(base_action, composed_action, residual,
                                 len(self.settings.action_names), self.settings.action_bound)
        if problem:
            return StepOutcome(self.safety.hold(), f'rejected: {problem}', rejected=problem)
        stale_pose = self._stale_pose(now_s)
        if stale_pose:  # never checked against an old pose: the arm may have moved since
            return StepOutcome(self.safety.hold(), stale_pose, stale_pose=stale_pose)
        lost, back = self._device_change(now_s)
        device_fresh = not self._device_stale
        timed_out = not device_fresh and self.arbiter.active
        reading = (self.mapper.reading() if device_fresh
                   else DeviceReading.idle(len(self.settings.action_names)))
        decision = self.arbiter.arbitrate(stamp_ns * 1e-9, np.asarray(composed_action, float),
                                          reading, self.interventions_allowed and device_fresh)
        reference = base_action if len(base_action) else composed_action  # no base: composed
        correction = self._describe(decision, reference)
        handover = ''
        if decision.started or decision.ended:
            handover = f'segment {decision.segment_id}'
            if decision.ended and timed_out:
                handover += (f': device timeout (nothing from the {self.settings.device_name} '
                             f'for {self.settings.device_timeout_s:g} s)')
            elif decision.ended and correction:
                handover += f': {correction}'
        if timed_out:  # the person's last command is no reference for the policy's first
            self.safety.hold()
        verdict = self.safety.filter(decision.executed, self.ee_position,
                                     self._ee_orientation if self._tool_frame else None)
        outcome = {'decision': decision, 'handover': handover, 'correction': correction,
                   'device_lost': lost, 'device_back': back}
        if verdict.rejected:
            return StepOutcome(self.safety.hold(), f'rejected: {verdict.reason}',
                               rejected=verdict.reason, **outcome)
        return StepOutcome(verdict.command, limits=tuple(verdict.limits_applied), **outcome)

    def _stale_pose(self, now_s: float) -> str:
        """Return why the end-effector pose is too old to check a command against ('' if not)."""
        timeout_s = self.settings.watchdog_timeout_s
        if timeout_s <= 0:
            return ''
        if self._ee_pose_s is None:  # as the watchdog: a pose gets the timeout to connect
            if now_s - self._started_s > timeout_s:
                return f'no end-effector pose after {timeout_s:g} s'
            return ''
        age_s = now_s - self._ee_pose_s
        return f'stale end-effector pose ({age_s:.2f} s old)' if age_s > timeout_s else ''

    def _device_change(self, now_s: float) -> Tuple[str, str]:
        """Return what to say when the device went silent now, or came back ('': neither)."""
        timeout_s, name = self.settings.device_timeout_s, self.settings.device_name
        if timeout_s <= 0:
            return '', ''
        stale = sorted(topic for topic, seen_s in self._device_seen_s.items()
                       if now_s - seen_s > timeout_s)
        lost = back = ''
        if stale and not self._device_stale:
            self.mapper.clear()  # as if let go: no stale deflection or button drives anything
            lost = (f'{name}: nothing on {", ".join(stale)} for {timeout_s:g} s: its command '
                    'is zero, the policy commands')
        elif not stale and self._device_stale:
            back = f'{name} is back'
        self._device_stale = bool(stale)
        return lost, back

    def _describe(self, decision: ArbitrationResult,
                  base_action: Sequence[float]) -> Optional[str]:
        """Talk-and-tweak: the person's correction so far, in words (None: not on this step)."""
        if self.corrections is None:
            return None
        if decision.started:
            self.corrections.start()
        if decision.intervened:
            # What the person changed: only the axes in their hands (the executed action has
            # the policy's values on the others); the quiet steps are the policy's.
            self.corrections.add(decision.executed, np.asarray(base_action))
            return self.corrections.command()
        return self.corrections.finish() if decision.ended else None

    # --- the watchdog tick, holds and the e-stop -----------------------------------------
    def tick(self, now_s: float) -> Tuple[WatchdogStatus, str]:
        """Return the watchdog's status and why the robot must hold now ('': it need not)."""
        if not self._armed or self.watchdog is None:
            return NO_STATUS, ''  # nothing commanded yet: there is no motion to stop
        status = self.watchdog.check(now_s)
        if self.estop.active:
            return status, f'e-stop: {self.estop.reason}'
        if self.paused:
            return status, 'paused'
        return status, '' if status.ok else 'watchdog: no ' + ', '.join(status.stale)

    def hold(self) -> np.ndarray:
        """Return the hold command; the next command is limited from rest."""
        return self.safety.hold()

    def release_estop(self) -> bool:
        """Release the e-stop; return whether it was latched."""
        released = self.estop.release()
        if released:
            self.safety.reset()
        return released
