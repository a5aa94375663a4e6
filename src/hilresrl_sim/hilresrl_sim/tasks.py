"""
Tasks of the simulated cell: Meta-World v3 and gym-hil PandaPickCube behind one interface.

A ``SimTask`` takes normalized actions (x, y, z, gripper in [-1, 1]) and gives the task state,
joint state, end-effector pose, camera images and the simulator's success signal. No ROS here.
"""

import abc
import math
import os
from typing import Dict, Optional, Sequence, Tuple

from hilresrl_sim.experts import make_expert, PANDA_PICK_CUBE
import numpy as np

ACTION_NAMES = ('x', 'y', 'z', 'gripper')
# What SimTask.progress() measures: what remains to do, each lower as the task advances.
PROGRESS_NAMES = ('reward_to_go', 'hand_to_object_m', 'object_to_goal_m')

# Time limits in steps, measured with the scripted expert over 300 episodes a task (seeds
# 10000-10299, at most 500 steps): 1.2 times the number of steps within which 97% of its
# successful episodes succeeded, rounded up to 10 steps. The margin leaves room for a slower,
# less direct learned policy or operator; the limit costs the expert at most 1.4 points of the
# success it reaches in 500 steps. Below 95% even then: box-close (92%), peg-insert-side
# (90%), soccer (87%), stick-pull (92%) and sweep-into (91%).
_METAWORLD_MAX_EPISODE_STEPS = {
    'assembly-v3': 120, 'basketball-v3': 140, 'bin-picking-v3': 250, 'box-close-v3': 170,
    'button-press-topdown-v3': 90, 'button-press-topdown-wall-v3': 80, 'button-press-v3': 80,
    'button-press-wall-v3': 90, 'coffee-button-v3': 60, 'coffee-pull-v3': 110,
    'coffee-push-v3': 70, 'dial-turn-v3': 100, 'disassemble-v3': 280, 'door-close-v3': 100,
    'door-lock-v3': 160, 'door-open-v3': 140, 'door-unlock-v3': 80, 'drawer-close-v3': 100,
    'drawer-open-v3': 120, 'faucet-close-v3': 90, 'faucet-open-v3': 80, 'hammer-v3': 100,
    'hand-insert-v3': 90, 'handle-press-side-v3': 70, 'handle-press-v3': 60,
    'handle-pull-side-v3': 140, 'handle-pull-v3': 160, 'lever-pull-v3': 120,
    'peg-insert-side-v3': 260, 'peg-unplug-side-v3': 200, 'pick-out-of-hole-v3': 160,
    'pick-place-v3': 80, 'pick-place-wall-v3': 140, 'plate-slide-back-side-v3': 70,
    'plate-slide-back-v3': 110, 'plate-slide-side-v3': 70, 'plate-slide-v3': 70,
    'push-back-v3': 430, 'push-v3': 90, 'push-wall-v3': 110, 'reach-v3': 90, 'reach-wall-v3': 80,
    'shelf-place-v3': 310, 'soccer-v3': 150, 'stick-pull-v3': 290, 'stick-push-v3': 100,
    'sweep-into-v3': 80, 'sweep-v3': 130, 'window-close-v3': 110, 'window-open-v3': 120,
}
_METAWORLD_MAX_REWARD = 10.0  # its shaped rewards run from 0 to 10, 10 at success
_METAWORLD_DEFAULT_MAX_EPISODE_STEPS = 500  # Meta-World's own horizon, for tasks added later
# PandaPickCube, measured the same way: the expert succeeded in all 300 episodes, 97% of
# them within 26 steps.
_PANDA_MAX_EPISODE_STEPS = 40

_INSTRUCTIONS = {
    'assembly-v3': 'pick up the nut and place it over the peg',
    'basketball-v3': 'pick up the ball and drop it into the hoop',
    'button-press-topdown-v3': 'press the button from the top',
    'door-open-v3': 'open the door',
    'drawer-close-v3': 'close the drawer',
    'drawer-open-v3': 'open the drawer',
    'peg-insert-side-v3': 'pick up the peg and insert it sideways into the hole',
    'pick-place-v3': 'pick up the puck and place it at the goal',
    'push-v3': 'push the puck to the goal',
    'reach-v3': 'move the gripper to the goal',
    'window-open-v3': 'slide the window open',
    PANDA_PICK_CUBE: 'pick up the cube and lift it',
}

# A new goal of a chained sub-task is at least this far from the one reached (the goal range
# of pick-place-v3 is 0.2 x 0.1 x 0.25 m).
_RETARGET_MIN_DISTANCE_M = 0.1
_EXAMPLE_TASKS = 'pick-place-v3, peg-insert-side-v3, assembly-v3, ...'


class SimTask(abc.ABC):
    """
    One simulated task: normalized actions in; state, images and success out.

    ``action_dim`` axes in [-1, 1]: x, y, z translation of the end effector in the world frame
    (``translation_step_m`` metres a step at 1) and the gripper (+1 closes, -1 opens).
    """

    action_dim = len(ACTION_NAMES)
    action_names = ACTION_NAMES
    # The body a wrist force/torque sensor sits on: the gripper is it and the bodies below it.
    wrist_body = ''

    def __init__(self, name: str, model, data, *, state_dim: int, control_period_s: float,
                 max_episode_steps: int, joint_names: Sequence[str],
                 cameras: Sequence[str], image_size: int):
        # Imported once make_task has set the OpenGL backend, which mujoco reads at import.
        import mujoco
        self.name = name
        self.state_dim = state_dim
        self.control_period_s = control_period_s
        self.max_episode_steps = max_episode_steps
        self.instruction = _INSTRUCTIONS.get(name, _instruction_from_name(name))
        self.joint_names = tuple(joint_names)
        self.cameras = tuple(cameras)
        self._model = model
        self._data = data
        self._expert = make_expert(name)
        self._qpos_index = np.array([model.jnt_qposadr[model.joint(joint).id]
                                     for joint in self.joint_names])
        self._qvel_index = np.array([model.jnt_dofadr[model.joint(joint).id]
                                     for joint in self.joint_names])
        self._renderer = None
        self._mujoco = mujoco
        wrist = model.body(self.wrist_body).id
        self._gripper_bodies = {body for body in range(model.nbody)
                                if _descends_from(model, body, wrist)}
        known_cameras = [model.camera(index).name for index in range(model.ncam)]
        unknown = [camera for camera in self.cameras if camera not in known_cameras]
        if unknown:
            raise ValueError(f'task {name} has no camera {", ".join(map(repr, unknown))}; '
                             f'its cameras: {", ".join(known_cameras)}')
        if self.cameras:
            if image_size < 1:
                raise ValueError(f'image_size must be positive, got {image_size}')
            # The offscreen buffer must hold the image. One sample a pixel, no shadows and no
            # reflections: a control loop renders every step, and a 128-pixel frame took 6 ms
            # so instead of 85 ms (CPU-rendered EGL).
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, image_size)
            model.vis.global_.offheight = max(model.vis.global_.offheight, image_size)
            model.vis.quality.offsamples = 0
            self._renderer = mujoco.Renderer(model, height=image_size, width=image_size)
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False

    @property
    @abc.abstractmethod
    def translation_step_m(self) -> float:
        """Metres the end effector moves in one step at action +1 on a translation axis."""

    @abc.abstractmethod
    def reset(self, seed: Optional[int] = None) -> None:
        """
        Start an episode with a new random object placement.

        With a seed the placement is that seed's (as for a task made with it), and later
        resets without a seed continue from it.
        """

    def retarget(self, rng: np.random.Generator) -> np.ndarray:
        """
        Move the goal to a new random place in mid-episode and return it (chained sub-tasks).

        The scene stays as it is (the object where it was put, in the hand or not); the next
        success is the object at the new goal. Only tasks with a movable goal support it.
        """
        raise NotImplementedError(f'task {self.name} cannot move its goal in mid-episode '
                                  '(Meta-World tasks with a goal can)')

    def step(self, action: np.ndarray) -> None:
        """Apply one normalized action for one control period (values clipped to [-1, 1])."""
        values = np.asarray(action, dtype=np.float64)
        if values.shape != (self.action_dim,):
            raise ValueError(f'an action has {self.action_dim} values '
                             f'({", ".join(self.action_names)}), got shape {values.shape}')
        if not np.all(np.isfinite(values)):
            raise ValueError(f'action {values.tolist()} is not finite')
        self._apply(np.clip(values, -1.0, 1.0))

    @abc.abstractmethod
    def task_state(self) -> np.ndarray:
        """Return the state a state-based policy sees: float32, shape (state_dim,)."""

    @abc.abstractmethod
    def success(self) -> bool:
        """Return the simulator's own success signal for the current state."""

    @abc.abstractmethod
    def progress(self) -> np.ndarray:
        """
        Return what remains to do, as a person watching the scene judges it (PROGRESS_NAMES).

        float32, shape (3,), each lower as the task advances: the simulator's shaped reward
        still to earn (0 to 1), the hand's distance to the object and the object's distance to
        its goal (m). Only roughly monotone, and no success signal: a way to see "getting
        there" and "losing it".
        """

    @abc.abstractmethod
    def ee_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return the end-effector position (xyz, metres) and orientation (quaternion xyzw)."""

    def joint_state(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return positions and velocities of ``joint_names`` (rad or m, rad/s or m/s)."""
        return (self._data.qpos[self._qpos_index].copy(),
                self._data.qvel[self._qvel_index].copy())

    def wrench(self) -> np.ndarray:
        """
        Return what a wrist force/torque sensor reads: force (N) and torque (N m), world frame.

        The contact forces that everything else exerts on the gripper, torques about the wrist
        body's origin; gravity and the gripper's own inertia are left out, as a sensor that was
        zeroed with the gripper hanging free leaves them out.
        """
        model, data = self._model, self._data
        wrist = data.body(self.wrist_body).xpos
        force, torque = np.zeros(3), np.zeros(3)
        contact_force = np.zeros(6)
        for index in range(data.ncon):
            contact = data.contact[index]
            first = model.geom_bodyid[contact.geom1] in self._gripper_bodies
            second = model.geom_bodyid[contact.geom2] in self._gripper_bodies
            if first == second:  # the gripper on itself, or nothing of it
                continue
            self._mujoco.mj_contactForce(model, data, index, contact_force)
            # In the contact frame, the force geom1 exerts on geom2; its rows are world axes.
            on_second = contact.frame.reshape(3, 3).T @ contact_force[:3]
            on_gripper = on_second if second else -on_second
            force += on_gripper
            torque += np.cross(contact.pos - wrist, on_gripper)
        return np.concatenate([force, torque])

    def images(self) -> Dict[str, np.ndarray]:
        """Render each camera: name -> H x W x 3 uint8 (empty without cameras)."""
        if self._renderer is None:
            return {}
        frames = {}
        for camera in self.cameras:
            self._renderer.update_scene(self._data, camera=camera)
            frames[camera] = self._renderer.render()
        return frames

    def expert_action(self) -> np.ndarray:
        """Return the scripted expert's action for the current task state."""
        return self._expert(self.task_state())

    def close(self) -> None:
        """Release the renderer and the simulator (safe to call twice)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._close_simulator()

    def __enter__(self) -> 'SimTask':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @abc.abstractmethod
    def _apply(self, action: np.ndarray) -> None:
        """Step the simulator with a checked, clipped action."""

    @abc.abstractmethod
    def _close_simulator(self) -> None:
        """Close the wrapped environment."""


class _MetaWorldTask(SimTask):
    """A Meta-World v3 task, goal observable: its 39-value observation is the task state."""

    wrist_body = 'hand'  # the Sawyer's hand, its claws below it

    def __init__(self, name: str, seed: int, cameras: Sequence[str], image_size: int):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
        self._env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f'{name}-goal-observable'](seed=seed)
        # Meta-World fixes one placement per task unless told otherwise; draw placements from
        # the env's own seeded generator, so a seed reproduces one.
        self._env._freeze_rand_vec = False
        self._env.seeded_rand_vec = True
        # The episode's time limit is the cell's to enforce; Meta-World would raise at 500.
        self._env.max_path_length = 2 ** 62
        model = self._env.model
        joints = [model.joint(index).name for index in range(model.njnt)
                  if model.jnt_type[index] != 0]  # not the free joints of objects
        arm_and_gripper = [joint for joint in joints
                           if joint.startswith('right_j') or joint in ('r_close', 'l_close')]
        try:
            super().__init__(
                name, model, self._env.data, state_dim=self._env.observation_space.shape[0],
                control_period_s=float(self._env.dt),
                max_episode_steps=_METAWORLD_MAX_EPISODE_STEPS.get(
                    name, _METAWORLD_DEFAULT_MAX_EPISODE_STEPS),
                joint_names=arm_and_gripper, cameras=cameras, image_size=image_size)
        except BaseException:
            self._env.close()
            raise
        self._state = None
        self._success = False
        self._progress = np.zeros(len(PROGRESS_NAMES), np.float32)
        self.reset(seed)

    @property
    def translation_step_m(self) -> float:
        return float(self._env.action_scale)

    def reset(self, seed: Optional[int] = None) -> None:
        if seed is not None:
            self._env.seed(int(seed))
        observation, _ = self._env.reset()
        self._state = observation.astype(np.float32)
        self._success = False
        self._progress = self._evaluate_progress(self._state)

    def retarget(self, rng: np.random.Generator) -> np.ndarray:
        # Anywhere in the task's own goal range, far enough from the goal just reached that
        # the next sub-task means moving the object.
        space = self._env._random_reset_space
        low, high = space.low[-3:], space.high[-3:]
        current = np.array(self._env._target_pos, dtype=np.float64)
        for _ in range(100):
            goal = rng.uniform(low, high)
            if np.linalg.norm(goal - current) >= _RETARGET_MIN_DISTANCE_M:
                break
        self._env._target_pos = goal
        self._env.model.site('goal').pos = goal
        self._state[-3:] = goal  # the goal as the next observation gives it
        self._success = False
        self._progress = self._evaluate_progress(self._state)
        return goal

    def _apply(self, action: np.ndarray) -> None:
        observation, reward, _, _, info = self._env.step(action)
        self._state = observation.astype(np.float32)
        self._success = bool(info['success'])
        self._progress = self._progress_from(reward, info)

    def _evaluate_progress(self, state: np.ndarray) -> np.ndarray:
        # The scene as it stands, the gripper relaxed (the shaped reward weighs the command).
        reward, info = self._env.evaluate_state(state.astype(np.float64),
                                                np.zeros(self.action_dim))
        return self._progress_from(reward, info)

    def _progress_from(self, reward: float, info: dict) -> np.ndarray:
        # The task state's first object (4:7) is each task's main object.
        hand_to_object_m = np.linalg.norm(self._env.tcp_center - self._state[4:7])
        return np.array([1.0 - np.clip(reward / _METAWORLD_MAX_REWARD, 0.0, 1.0),
                         hand_to_object_m, info['obj_to_target']], np.float32)

    def task_state(self) -> np.ndarray:
        return self._state.copy()

    def success(self) -> bool:
        return self._success

    def progress(self) -> np.ndarray:
        return self._progress.copy()

    def ee_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        # The hand body: its position is the one in the task state (task_state[:3]).
        hand = self._data.body('hand')
        return np.array(hand.xpos, dtype=np.float64), _xyzw(hand.xquat)

    def _close_simulator(self) -> None:
        self._env.close()


class _PandaPickCubeTask(SimTask):
    """gym-hil's PandaPickCube: a Franka Panda with a 2F-85 gripper lifts a cube."""

    wrist_body = 'attachment'  # the flange the 2F-85 is mounted on

    # gym-hil adds the translation to a mocap target that the arm's operational-space
    # controller follows: 2 cm a step (0.2 m/s at 10 Hz) tracks it closely.
    _TRANSLATION_STEP_M = 0.02

    def __init__(self, seed: int, cameras: Sequence[str], image_size: int):
        from gym_hil.envs.panda_pick_gym_env import PandaPickCubeGymEnv
        self._env = PandaPickCubeGymEnv(random_block_position=True, image_obs=False)
        model = self._env.model
        try:
            super().__init__(
                PANDA_PICK_CUBE, model, self._env.data, state_dim=21,
                control_period_s=self._env._n_substeps * float(model.opt.timestep),
                max_episode_steps=_PANDA_MAX_EPISODE_STEPS,
                joint_names=[f'joint{index}' for index in range(1, 8)] + [
                    'left_driver_joint', 'right_driver_joint'],
                cameras=cameras, image_size=image_size)
        except BaseException:
            self._env.close()  # gym-hil made a renderer (an OpenGL context) already
            raise
        self._rng = np.random.default_rng(seed)
        self._observation = None
        self._success = False
        self.reset(seed)

    @property
    def translation_step_m(self) -> float:
        return self._TRANSLATION_STEP_M

    def reset(self, seed: Optional[int] = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(int(seed))
        # gym-hil draws the block position from numpy's global generator: seed it from ours
        # for this one draw, and give the rest of the process its generator back untouched.
        placement_seed = int(self._rng.integers(2 ** 32))
        global_state = np.random.get_state()
        try:
            np.random.seed(placement_seed)
            self._observation, _ = self._env.reset(seed=placement_seed)
        finally:
            np.random.set_state(global_state)
        self._success = False

    def _apply(self, action: np.ndarray) -> None:
        raw = np.zeros(7)
        raw[:3] = action[:3] * self._TRANSLATION_STEP_M
        raw[6] = action[3]  # added to the gripper command in [0, 1]: +1 closes it at once
        self._observation, _, _, _, info = self._env.step(raw)
        self._success = bool(info['succeed'])

    def task_state(self) -> np.ndarray:
        return np.concatenate([self._observation['agent_pos'],
                               self._observation['environment_state']]).astype(np.float32)

    def success(self) -> bool:
        return self._success

    def progress(self) -> np.ndarray:
        # gym-hil's dense reward (its reward_type "dense", in [0, 1]): the pinch point near the
        # block, then the block lifted towards the success height. Computed here, as the env is
        # made with the sparse reward whose success the cell reports.
        env = self._env
        block = np.asarray(env._data.sensor('block_pos').data, np.float64)
        pinch = np.asarray(env._data.sensor('2f85/pinch_pos').data, np.float64)
        hand_to_object_m = float(np.linalg.norm(block - pinch))
        lift = np.clip((block[2] - env._z_init) / (env._z_success - env._z_init), 0.0, 1.0)
        reward = 0.3 * math.exp(-20.0 * hand_to_object_m) + 0.7 * lift
        return np.array([1.0 - reward, hand_to_object_m, max(env._z_success - block[2], 0.0)],
                        np.float32)

    def ee_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        return (np.array(self._data.sensor('2f85/pinch_pos').data, dtype=np.float64),
                _xyzw(self._data.sensor('2f85/pinch_quat').data))

    def _close_simulator(self) -> None:
        self._env.close()


def make_task(name: str, seed: int = 0, cameras: Sequence[str] = (),
              image_size: int = 128) -> SimTask:
    """
    Create a task by name, reset with ``seed``.

    ``name`` is a Meta-World v3 task (``pick-place-v3``, ...) or ``PandaPickCube``;
    ``cameras`` names the cameras that ``images()`` renders, ``image_size`` pixels square.
    """
    # mujoco picks its OpenGL backend when first imported: headless unless the user chose.
    os.environ.setdefault('MUJOCO_GL', 'egl')
    if name == PANDA_PICK_CUBE:
        return _PandaPickCubeTask(seed, cameras, image_size)
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    if name in ALL_V3_ENVIRONMENTS:
        return _MetaWorldTask(name, seed, cameras, image_size)
    raise ValueError(f'unknown task {name!r}: use a Meta-World v3 task ({_EXAMPLE_TASKS} '
                     f'{len(ALL_V3_ENVIRONMENTS)} in all) or {PANDA_PICK_CUBE}')


def _instruction_from_name(name: str) -> str:
    words = name[:-len('-v3')] if name.endswith('-v3') else name
    return f'do the {words.replace("-", " ")} task'


def _descends_from(model, body: int, ancestor: int) -> bool:
    """Return whether ``body`` is ``ancestor`` or below it in the model's tree."""
    while body != 0:
        if body == ancestor:
            return True
        body = model.body_parentid[body]
    return ancestor == 0


def _xyzw(quaternion_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = (float(value) for value in quaternion_wxyz)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    return np.array([x, y, z, w]) / norm
