"""
How fast the task's expert gets a task done: what a person at the cell knows of "on time".

A person who has done the task a few times knows how far along it should be by now, and steps in
when the robot is too far behind to finish in time, even while it still creeps forward (a puck
pushed ever more slowly, a peg circling its hole). ``ExpertPace`` learns that from the scripted
expert: it plays a few episodes with the person's hand noise and keeps, for every step, the
most progress still to make (SimTask.progress's reward_to_go) that any successful episode had
left then: the slowest way the task still gets done. A policy is late when the progress it has
left is more than that slowest expert had left ``late_factor`` times earlier in the episode.
No ROS.
"""

from typing import Optional

import numpy as np

from .demos import episode_seed

# Reset seeds of the calibration episodes: a stream of their own.
_PACE_STREAM = 30_000
# Progress still to make (reward_to_go, 0 to 1) that counts as the same place: noise, not lag.
LATE_MARGIN = 0.02


class ExpertPace:
    """The slowest successful expert's progress left at every step of an episode."""

    def __init__(self, most_left: np.ndarray, late_factor: float):
        if late_factor < 1.0:
            raise ValueError(f'late_factor must be at least 1, got {late_factor}')
        self.most_left = np.asarray(most_left, dtype=np.float64)
        self.late_factor = float(late_factor)

    @classmethod
    def of_expert(cls, task, episodes: int, noise_std: float, late_factor: float,
                  seed: int = 0) -> Optional['ExpertPace']:
        """
        Play ``episodes`` expert episodes on ``task`` (a SimTask) and return their pace.

        None when no episode succeeded: there is no pace to judge by. The task is left reset
        to the last calibration episode; callers reset it before use.
        """
        limit = task.max_episode_steps
        runs = []
        for episode in range(episodes):
            task.reset(episode_seed(_PACE_STREAM + seed, episode))
            noise = np.random.default_rng([_PACE_STREAM, seed, episode])
            left = np.zeros(limit)
            for step in range(limit):
                left[step] = task.progress()[0]
                if task.success():
                    left[step:] = 0.0
                    runs.append(left)
                    break
                action = task.expert_action()
                task.step(np.clip(action + noise.normal(0.0, noise_std, action.shape), -1, 1))
        if not runs:
            return None
        return cls(np.max(runs, axis=0), late_factor)

    def late(self, step: int, progress_left: float) -> bool:
        """Return whether ``progress_left`` at ``step`` of an episode is behind the pace."""
        allowed = self.most_left[min(int(step / self.late_factor), len(self.most_left) - 1)]
        return float(progress_left) > allowed + LATE_MARGIN
