"""
Demonstrations of a simulated task by its scripted expert, with noise on the executed actions.

The noise widens the states the demonstrations visit while the labels stay the expert's clean
actions, so a policy cloned from them learns to recover from its own small errors. No ROS here.
"""

from typing import Callable, Optional

from hilresrl_common.demonstrations import Demonstrations
from hilresrl_sim.tasks import make_task
import numpy as np


def episode_seed(seed: int, episode: int) -> int:
    """Return the reset seed of demonstration episode ``episode`` of a collection ``seed``."""
    return int(np.random.default_rng([seed, episode]).integers(2 ** 31))


def collect_demonstrations(task_name: str, episodes: int, noise_std: float, seed: int,
                           max_steps: Optional[int] = None,
                           progress: Optional[Callable[[str], None]] = None
                           ) -> Demonstrations:
    """
    Run the scripted expert for ``episodes`` episodes, adding noise to what it executes.

    Each episode starts from its own seed and draws its noise from its own generator, both
    derived from ``seed`` and the episode number: the first K episodes of a collection equal a
    collection of K. An episode ends at success or after ``max_steps`` (default: the task's
    time limit). ``progress`` receives one line per episode.
    """
    if episodes < 0:
        raise ValueError(f'episodes must be at least 0, got {episodes}')
    if noise_std < 0:
        raise ValueError(f'noise_std must be at least 0, got {noise_std}')
    observations, actions, expert_actions, episode_index, episode_success = [], [], [], [], []
    with make_task(task_name, seed=seed) as task:
        limit = task.max_episode_steps if max_steps is None else int(max_steps)
        for episode in range(episodes):
            reset_seed = episode_seed(seed, episode)
            task.reset(seed=reset_seed)
            noise = np.random.default_rng([seed, episode, 1])
            succeeded = False
            steps = 0
            while steps < limit and not succeeded:
                state = task.task_state()
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
    return Demonstrations(
        np.reshape(np.asarray(observations, dtype=np.float32), (-1, state_dim)),
        np.reshape(np.asarray(actions, dtype=np.float32), (-1, action_dim)),
        np.reshape(np.asarray(expert_actions, dtype=np.float32), (-1, action_dim)),
        np.asarray(episode_index, dtype=np.int64), np.asarray(episode_success, dtype=bool),
        task=task_name, noise_std=float(noise_std), seed=int(seed))


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
    parser.add_argument('--out', required=True, help='.npz file to write')
    options = parser.parse_args(argv)
    demos = collect_demonstrations(
        options.task, options.episodes, options.noise, options.seed,
        progress=lambda line: print(line, flush=True))
    path = demos.save(options.out)
    print(f'{demos.episodes} episodes, {len(demos.actions)} steps, expert success '
          f'{100 * demos.success_rate:.0f}% -> {path}')
    return 0
