"""
Base-policy adapter for the scripted expert of a simulated task (hilresrl_sim.experts).

Registered as 'scripted' in the hilresrl.base_policies entry-point group; configuration:
``task`` (a task name of hilresrl_sim.tasks).
"""

from typing import Any, Dict, Mapping

from hilresrl_policy.adapters import BasePolicy, BasePolicyError
from hilresrl_sim.experts import make_expert
import numpy as np

STATE_KEY = 'task_state'


class ScriptedPolicy(BasePolicy):
    """The scripted expert as a base policy: one action per task state (horizon 1)."""

    action_dim = 4
    horizon = 1

    def __init__(self, task: str):
        try:
            self._expert = make_expert(task)
        except ValueError as error:
            raise BasePolicyError(str(error)) from error
        self.task = task
        self.source_model = f'scripted:{task}'

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the expert's action for ``observation['task_state']``: float32 (1, 4)."""
        if STATE_KEY not in observation:
            raise BasePolicyError(f'{self.source_model} needs observation {STATE_KEY!r}; got '
                                  f'{", ".join(sorted(observation)) or "nothing"}')
        try:
            action = self._expert(np.asarray(observation[STATE_KEY]))
        except (ValueError, IndexError, AssertionError) as error:
            # Meta-World's policies assert on the length of the state they parse.
            raise BasePolicyError(f'{self.source_model} cannot act on this {STATE_KEY} '
                                  f'({np.size(observation[STATE_KEY])} values): '
                                  f'{error or type(error).__name__}') from error
        return np.clip(action, -1.0, 1.0).astype(np.float32).reshape(1, self.action_dim)


def make_scripted_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create the scripted base policy from {'task': task name}."""
    if not config.get('task'):
        raise BasePolicyError("the scripted base policy needs 'task': a simulated task name")
    return ScriptedPolicy(str(config['task']))
