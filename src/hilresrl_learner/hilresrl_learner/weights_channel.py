"""
One weights channel per learned actor: when to broadcast, the next version, what the message holds.

The residual actor (policy_weights) and the refinement actor (latent_weights) go out the same
way: after ``period_updates`` updates or ``period_s`` seconds, whichever first, once the actor
has moved; versions stay monotonic across restarts through a file in the actor's folder.
The node turns ``take()``'s fields into a PolicyWeights message. No ROS here.
"""

import pathlib
import time
from typing import Any, Dict

from hilresrl_policy.residual import serialize_actor

from .run_folder import read_weights_version, write_weights_version
from .training import ResidualLearner


class WeightsChannel:
    """Versions and pacing of one actor's broadcasts; the version file lives in ``folder``."""

    def __init__(self, folder: pathlib.Path, run_id: str, period_updates: int,
                 period_s: float):
        self.folder = folder
        self.run_id = run_id
        self.period_updates = period_updates
        self.period_s = period_s
        self.version = read_weights_version(folder)
        self.sent_updates = 0
        self.sent_s = time.monotonic()

    def due(self, learner: ResidualLearner) -> bool:
        """Return whether the actor has moved since the last broadcast and a period is over."""
        return (learner is not None and learner.agent.actor_updates > 0
                and learner.updates > self.sent_updates
                and (learner.updates - self.sent_updates >= self.period_updates
                     or time.monotonic() - self.sent_s >= self.period_s))

    def restored(self, version: int) -> None:
        """Go on from a checkpoint's version where it is ahead of the version file."""
        self.version = max(self.version, version)

    def take(self, learner: ResidualLearner) -> Dict[str, Any]:
        """Return the PolicyWeights fields of the actor's weights now, under a new version."""
        weights = serialize_actor(learner.agent.actor)
        self.version += 1
        write_weights_version(self.folder, self.version)
        self.sent_updates, self.sent_s = learner.updates, time.monotonic()
        return {'version': self.version, 'learner_run_id': self.run_id,
                'format': weights.format, 'architecture': weights.architecture,
                'blob': weights.blob, 'sha256': weights.sha256,
                'learner_updates': learner.updates, 'env_steps': learner.env_steps}
