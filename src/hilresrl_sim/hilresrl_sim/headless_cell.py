"""
The simulated cell's control loop without ROS, for benchmarks and tuning on many cores.

Each step runs the same cores as the nodes, in the order the messages flow: base policy ->
residual -> composition; the simulated person's hand -> SpaceMouse mapping -> arbitration ->
safety filter -> simulator. Only the transport is missing, so what it measures is what the
ROS graph does, minus message latency.

By default the residual sees the simulator's task state, as in the profiles sim and
sim_panda. With ``sensors`` (the profiles sim_pixels and sim_panda_pixels) it sees what a real
cell's sensors give instead: proprioception and the wrist wrench as one vector, in the order
the residual node's policy_inputs name them, and each camera's frame; the base policy and the
simulated person still read the task state.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hilresrl_common.parameters import defaults
from hilresrl_common.residual_contract import compose, RESIDUAL_SCALE, residual_scale_vector
from hilresrl_policy.adapters import BasePolicy
from hilresrl_teleop.arbiter_parameters import arbiter_settings
from hilresrl_teleop.arbiter_parameters import PARAMETERS as ARBITER_PARAMETERS
from hilresrl_teleop.arbitration import InterventionArbiter
from hilresrl_teleop.safety import SafetyFilter
from hilresrl_teleop.spacemouse import SpaceMouseMapper
import numpy as np

from .experts import make_expert
from .operator_model import expert_pace, GripperButton, OperatorConfig, SimulatedOperator
from .tasks import make_task

# The arbiter node's settings when nothing is given (no workspace box: the simulator keeps the
# hand in its own); a benchmark overrides what its cell profile sets.
ARBITER_DEFAULTS = defaults(ARBITER_PARAMETERS)

# residual(observation, base_action, explore) -> residual in [-1, 1]; in a cell with cameras a
# fourth argument, each camera's frame (channels x height x width uint8) by camera input name
ResidualFunction = Callable[..., np.ndarray]
# latent(observation, explore) -> the latent a generative base policy acts from
LatentFunction = Callable[[np.ndarray, bool], np.ndarray]


@dataclass
class Step:
    """One control step, as the episode manager would record it."""

    observation: np.ndarray
    base_action: np.ndarray
    residual: np.ndarray
    executed_action: np.ndarray
    human_action: Optional[np.ndarray]
    reward: float
    next_observation: np.ndarray
    terminated: bool
    truncated: bool
    latent: Optional[np.ndarray] = None  # the latent the base action came from, if steered
    # With cameras: each camera's frame at s_t and s_t+1, by camera input name.
    frames: Optional[Dict[str, np.ndarray]] = None
    next_frames: Optional[Dict[str, np.ndarray]] = None


# The residual node's names for what a joint state, pose and wrench message contribute
# (hilresrl_common.conversions.source_arrays), and their sizes in the simulated cell.
PROPRIOCEPTION = ('ee_pose', 'joint_positions', 'joint_velocities', 'wrench')


@dataclass(frozen=True)
class SensorInputs:
    """
    What the residual sees instead of the task state: sensors a real cell has.

    ``inputs``: of PROPRIOCEPTION, in the residual's order (ee_pose is x, y, z, qx, qy, qz,
    qw; wrench is force then torque). ``cameras``: (camera input name, simulator camera)
    pairs, e.g. ('image/camera/corner/image_raw', 'corner'); frames ``image_size`` square.
    """

    inputs: Tuple[str, ...]
    cameras: Tuple[Tuple[str, str], ...] = ()
    image_size: int = 128

    def __post_init__(self):
        object.__setattr__(self, 'inputs', tuple(self.inputs))
        object.__setattr__(self, 'cameras', tuple(tuple(pair) for pair in self.cameras))
        unknown = [name for name in self.inputs if name not in PROPRIOCEPTION]
        if unknown:
            raise ValueError(f'sensor inputs {unknown}: the simulated cell gives '
                             f'{", ".join(PROPRIOCEPTION)}')


@dataclass
class EpisodeResult:
    """What one episode amounted to."""

    success: bool
    steps: int
    intervention_steps: int  # steps within an intervention segment, quiet periods included
    transitions: List[Step] = field(default_factory=list)
    subtasks_done: int = 0  # sub-tasks reached, of a chained episode
    human_steps: int = 0  # steps that executed the person's action on some axis: human cost


class HeadlessCell:
    """Run episodes of a simulated task through the suite's cores, with no ROS in between."""

    def __init__(self, task_name: str, base_policy: BasePolicy,
                 operator: Optional[OperatorConfig] = None,
                 residual_scale: Sequence[float] = tuple(RESIDUAL_SCALE.default),
                 quiet_period_s: Optional[float] = None,
                 control_period_s: Optional[float] = None,
                 max_episode_steps: Optional[int] = None, seed: int = 0,
                 sensors: Optional[SensorInputs] = None):
        self.sensors = sensors
        self.task = (make_task(task_name, seed, [camera for _, camera in sensors.cameras],
                               sensors.image_size) if sensors is not None and sensors.cameras
                     else make_task(task_name, seed))
        self.base_policy = base_policy
        dim = self.task.action_dim
        self.residual_scale = residual_scale_vector(residual_scale, dim)
        # The arbiter node's defaults, for this task's action axes.
        arbiter = arbiter_settings(dict(ARBITER_DEFAULTS, action_names=list(
            self.task.action_names)))
        self.control_period_s = (arbiter.control_period_s if control_period_s is None
                                 else control_period_s)
        self.max_episode_steps = max_episode_steps or self.task.max_episode_steps
        self.operator = (SimulatedOperator(operator, make_expert(task_name), seed,
                                           expert_pace(self.task, operator, seed))
                         if operator is not None else None)
        self.mapper = SpaceMouseMapper(arbiter.spacemouse, dim)
        self.gripper_button = GripperButton()
        self.arbiter = InterventionArbiter(
            dim, arbiter.per_axis,
            arbiter.quiet_period_s if quiet_period_s is None else quiet_period_s,
            arbiter.spacemouse.gripper_axis)
        self.safety = SafetyFilter(arbiter.safety)

    def run_episode(self, seed: int, residual: Optional[ResidualFunction] = None,
                    explore: bool = False, allow_intervention: bool = True,
                    keep_transitions: bool = False,
                    latent: Optional[LatentFunction] = None,
                    subtasks: int = 1) -> EpisodeResult:
        """
        Run one episode from a seeded reset and return its result.

        With ``latent``, the base policy acts from the latent it returns (act_with_latent), as
        the base policy node does in actor_mode latent and dual. With ``subtasks`` > 1 the
        episode chains them: each success moves the goal (SimTask.retarget) and the next one
        begins where the last ended, each with the task's step limit; the episode succeeds when
        all are done. For learning, each sub-task is an episode of its own: the transition that
        completes one has reward 1 and is terminal (the cell goes on from there, as a real cell
        does when the next goal is given).
        """
        goals = np.random.default_rng([seed, 4242])
        subtask_start = 0
        task = self.task
        task.reset(seed)
        self.base_policy.reset(task.instruction)
        if self.operator is not None:
            self.operator.reset()
        # An episode that ended mid-correction must not start the next one under the person.
        self.arbiter.reset()
        self.mapper.clear()
        self.gripper_button.release()
        self.safety.reset()
        result = EpisodeResult(False, 0, 0)
        observation = task.task_state()
        seen, frames = self.sensed(observation)
        last_proposal: Optional[np.ndarray] = None
        last_human: Optional[np.ndarray] = None
        for step in range(self.max_episode_steps * subtasks):
            if step - subtask_start >= self.max_episode_steps:
                break  # this sub-task ran out of time
            now_s = step * self.control_period_s
            hand = None
            if self.operator is not None and allow_intervention:
                hand = self.operator.step(observation, last_proposal, task.ee_pose()[0],
                                          task.progress()).action
            linear, angular = (self.mapper.channels_for_action(hand) if hand is not None
                               else (np.zeros(3), np.zeros(3)))
            self.mapper.update_twist(linear, angular)
            believed = last_human[3] if last_human is not None else (
                np.sign(last_proposal[3]) if last_proposal is not None else None)
            pressed = hand is not None and self.gripper_button.press(
                self.operator.gripper_range.closed(hand[3]), believed)
            if hand is None:
                self.gripper_button.release()
            self.mapper.update_buttons([int(pressed), 0])

            chosen = latent(observation, explore) if latent is not None else None
            base = (self.base_policy.act({'task_state': observation})[0] if chosen is None
                    else self.base_policy.act_with_latent({'task_state': observation},
                                                          chosen)[0])
            if residual is None:
                correction = np.zeros_like(base)
            elif frames is None:
                correction = residual(seen, base, explore)
            else:
                correction = residual(seen, base, explore, frames)
            proposal = compose(base, correction, self.residual_scale)
            decision = self.arbiter.arbitrate(now_s, proposal.astype(np.float64),
                                              self.mapper.reading(), allow_intervention)
            verdict = self.safety.filter(decision.executed, task.ee_pose()[0])
            executed = (verdict.command if not verdict.rejected
                        else self.safety.hold_command())
            task.step(executed)
            last_proposal = proposal
            last_human = decision.human_action if decision.active else None
            persons = decision.human_action is not None and bool(np.any(decision.intervened_axes))
            success = task.success()
            subtask_done = success
            next_observation = task.task_state()  # (before a next goal replaces the goal)
            next_seen, next_frames = self.sensed(next_observation)
            if success and result.subtasks_done + 1 < subtasks:
                result.subtasks_done += 1
                task.retarget(goals)
                success = False
            truncated = not subtask_done and step + 1 - subtask_start >= self.max_episode_steps
            if subtask_done:
                subtask_start = step + 1
            result.steps += 1
            result.intervention_steps += int(decision.active)
            result.human_steps += int(persons)
            if keep_transitions:
                result.transitions.append(Step(
                    seen, base, correction, np.asarray(executed, np.float32),
                    decision.human_action if decision.active else None, float(subtask_done),
                    next_seen, subtask_done, truncated, chosen, frames, next_frames))
            if subtask_done and not success:  # the next goal changed what the state holds
                observation = task.task_state()
                seen, frames = self.sensed(observation)
            else:
                observation, seen, frames = next_observation, next_seen, next_frames
            if success:
                result.success = True
                result.subtasks_done += 1
                break
        return result

    def sensed(self, task_state: Optional[np.ndarray] = None
               ) -> Tuple[np.ndarray, Optional[Dict[str, np.ndarray]]]:
        """
        Return what the residual sees now: a vector and, with cameras, each camera's frame.

        Without ``sensors``, the task state (``task_state`` if given) and no frames.
        """
        if self.sensors is None:
            return (self.task.task_state() if task_state is None else task_state), None
        arrays = self.sensor_arrays()
        vector = np.concatenate([arrays[name] for name in self.sensors.inputs])
        if not self.sensors.cameras:
            return vector, None
        # As the encoder takes them (channels first): the cell renders at the inputs' size.
        return vector, {name: np.ascontiguousarray(arrays[name].transpose(2, 0, 1))
                        for name, _ in self.sensors.cameras}

    def sensor_arrays(self) -> Dict[str, np.ndarray]:
        """
        Return every sensor reading now, by the names the residual node gives them.

        Each of PROPRIOCEPTION (float32, flat) and each camera input's image (height x width x
        3 uint8, as a camera sends it) of the cameras ``sensors`` name.
        """
        task = self.task
        positions, velocities = task.joint_state()
        arrays = {'ee_pose': np.concatenate(task.ee_pose()), 'joint_positions': positions,
                  'joint_velocities': velocities, 'wrench': task.wrench()}
        arrays = {name: np.asarray(value, np.float32).ravel() for name, value in arrays.items()}
        if self.sensors is not None and self.sensors.cameras:
            rendered = task.images()
            arrays.update((name, rendered[camera]) for name, camera in self.sensors.cameras)
        return arrays

    def close(self) -> None:
        """Close the simulator."""
        self.task.close()
