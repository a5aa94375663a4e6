"""
Demonstrations of a simulated task by its scripted expert, with noise on the executed actions.

The noise widens the states the demonstrations visit while the labels stay the expert's clean
actions, so a policy cloned from them learns to recover from its own small errors. With cameras
they also hold what a pixel cell's residual sees, as the headless cell senses it. No ROS here.
"""

import pathlib
from typing import Callable, Dict, Optional, Sequence

from hilresrl_common.demonstrations import Demonstrations, observed_arrays
from hilresrl_sim.tasks import make_task
import numpy as np


def camera_input(camera: str) -> str:
    """Return the residual node's name of a simulator camera's images (sim_cell's topic)."""
    return f'image/camera/{camera}/image_raw'


class _Sensors:
    """What the simulated cell's sensors give, by the residual node's names."""

    def __init__(self, task_name: str, seed: int, cameras: Sequence[str], image_size: int):
        # (imported here: the headless cell's operator model imports this module)
        from hilresrl_sim.headless_cell import HeadlessCell, PROPRIOCEPTION, SensorInputs
        pairs = tuple((camera_input(camera), camera) for camera in cameras)
        # The headless cell's sensing, so that demonstrations hold what its pixel runs see.
        self.cell = HeadlessCell(task_name, base_policy=None, seed=seed,
                                 sensors=SensorInputs(PROPRIOCEPTION, pairs, image_size))

    def read(self) -> Dict[str, np.ndarray]:
        """Return each proprioceptive array and each camera's image (H x W x 3 uint8) now."""
        return self.cell.sensor_arrays()


def episode_seed(seed: int, episode: int) -> int:
    """Return the reset seed of demonstration episode ``episode`` of a collection ``seed``."""
    return int(np.random.default_rng([seed, episode]).integers(2 ** 31))


def collect_demonstrations(task_name: str, episodes: int, noise_std: float, seed: int,
                           max_steps: Optional[int] = None,
                           progress: Optional[Callable[[str], None]] = None,
                           cameras: Sequence[str] = (), image_size: int = 128
                           ) -> Demonstrations:
    """
    Run the scripted expert for ``episodes`` episodes, adding noise to what it executes.

    Each episode starts from its own seed and draws its noise from its own generator, both
    derived from ``seed`` and the episode number: the first K episodes of a collection equal a
    collection of K. An episode ends at success or after ``max_steps`` (default: the task's
    time limit). ``progress`` receives one line per episode. With simulator ``cameras`` each
    step also holds what a pixel cell's residual can see: the joint states, the end-effector
    pose, the wrist wrench and those cameras' images (``image_size`` square), by the names the
    residual node gives them (camera_input), and the same episodes as without.
    """
    if episodes < 0:
        raise ValueError(f'episodes must be at least 0, got {episodes}')
    if noise_std < 0:
        raise ValueError(f'noise_std must be at least 0, got {noise_std}')
    observations, actions, expert_actions, episode_index, episode_success = [], [], [], [], []
    sensors = _Sensors(task_name, seed, cameras, image_size) if cameras else None
    sensed = []
    with (make_task(task_name, seed=seed) if sensors is None else sensors.cell.task) as task:
        limit = task.max_episode_steps if max_steps is None else int(max_steps)
        for episode in range(episodes):
            reset_seed = episode_seed(seed, episode)
            task.reset(seed=reset_seed)
            noise = np.random.default_rng([seed, episode, 1])
            succeeded = False
            steps = 0
            while steps < limit and not succeeded:
                state = task.task_state()
                if sensors is not None:
                    sensed.append(sensors.read())
                expert = task.expert_action()
                executed = np.clip(expert + noise.normal(0.0, noise_std, expert.shape),
                                   -1.0, 1.0).astype(np.float32)
                task.step(executed)
                observations.append(state)
                actions.append(executed)
                expert_actions.append(expert)
                episode_index.append(episode)
                steps += 1
                succeeded = task.success()
            episode_success.append(succeeded)
            if progress is not None:
                progress(f'demonstration {episode + 1}/{episodes} (seed {reset_seed}): '
                         f'{"success" if succeeded else "failure"} in {steps} steps')
        state_dim = task.state_dim
        action_dim = task.action_dim
        instruction = task.instruction
    return Demonstrations(
        np.reshape(np.asarray(observations, dtype=np.float32), (-1, state_dim)),
        np.reshape(np.asarray(actions, dtype=np.float32), (-1, action_dim)),
        np.reshape(np.asarray(expert_actions, dtype=np.float32), (-1, action_dim)),
        np.asarray(episode_index, dtype=np.int64), np.asarray(episode_success, dtype=bool),
        task=task_name, noise_std=float(noise_std), seed=int(seed),
        observed=observed_arrays(sensed), instruction=instruction)


def record_with_sensors(state_file, out_file, cameras: Sequence[str], image_size: int,
                        progress: Optional[Callable[[str], None]] = None) -> pathlib.Path:
    """
    Record the episodes of a demonstrations file again, with cameras; return the file written.

    The same task, seeds, noise and episodes (collect_demonstrations gives the same episodes
    with cameras as without): a base policy's demonstrations, for a learner that sees images.
    ValueError: the episodes came out otherwise (they would not be the same demonstrations).
    """
    given = Demonstrations.load(state_file)
    # A failed episode ran to the step limit it was recorded with; successful ones end anyway.
    lengths = np.bincount(given.episode_index, minlength=given.episodes)
    failed = lengths[~given.episode_success]
    demos = collect_demonstrations(given.task, given.episodes, given.noise_std, given.seed,
                                   max_steps=int(failed.max()) if failed.size else None,
                                   progress=progress, cameras=cameras, image_size=image_size)
    if not (np.array_equal(demos.episode_index, given.episode_index)
            and np.array_equal(demos.actions, given.actions)):
        raise ValueError(f'recording the demonstrations of {state_file} again gave other '
                         'episodes: not writing them')
    return demos.save(out_file)


def main(argv=None) -> int:
    """Collect demonstrations from the command line (hilresrl demos --help)."""
    import argparse
    parser = argparse.ArgumentParser(
        prog='hilresrl demos',
        description='Collect demonstrations of a simulated task from its scripted expert, with '
                    'Gaussian noise on the executed actions, into an .npz file.')
    parser.add_argument('--task', default='pick-place-v3', help='task name (default: %(default)s)')
    parser.add_argument('--episodes', type=int, default=10, help='episodes (default: %(default)s)')
    parser.add_argument('--noise', type=float, default=0.3,
                        help='standard deviation of the action noise (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='seed (default: %(default)s)')
    parser.add_argument('--cameras', nargs='*', default=[],
                        help='simulator cameras whose images each step holds, with the joint '
                             'states, end-effector pose and wrist wrench (for a learner with '
                             'camera_inputs image/camera/<camera>/image_raw; default: none)')
    parser.add_argument('--image-size', type=int, default=128,
                        help='side of the camera images in pixels (default: %(default)s)')
    parser.add_argument('--out', required=True, help='.npz file to write')
    options = parser.parse_args(argv)
    demos = collect_demonstrations(
        options.task, options.episodes, options.noise, options.seed,
        progress=lambda line: print(line, flush=True), cameras=options.cameras,
        image_size=options.image_size)
    path = demos.save(options.out)
    print(f'{demos.episodes} episodes, {len(demos.actions)} steps, expert success '
          f'{100 * demos.success_rate:.0f}% -> {path}')
    return 0
