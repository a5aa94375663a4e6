"""
Where hilresrl keeps things: $HILRESRL_HOME (else ~/.hilresrl), its runs, bags and base policies.

The one place these rules live, so that the launcher, the learner, the recorder and the
base-policy builder always agree on them.
"""

import datetime
import os
import pathlib
from typing import Optional, Sequence

EVALUATION_SUFFIX = '-eval'


def hilresrl_home() -> pathlib.Path:
    """Return the folder for base policies, runs and bags: $HILRESRL_HOME, else ~/.hilresrl."""
    return pathlib.Path(os.environ.get('HILRESRL_HOME')
                        or pathlib.Path('~').expanduser() / '.hilresrl')


def runs_folder() -> pathlib.Path:
    """Return the folder that holds the run folders."""
    return hilresrl_home() / 'runs'


def _stamp() -> str:
    return datetime.datetime.now().strftime('%Y%m%d-%H%M%S')


def new_run_folder(evaluation: bool = False) -> pathlib.Path:
    """Return a new dated run folder (not created); an evaluation run's name ends in -eval."""
    return runs_folder() / (_stamp() + (EVALUATION_SUFFIX if evaluation else ''))


def newest_run() -> Optional[pathlib.Path]:
    """Return the newest training run folder (evaluation runs are never resumed), or None."""
    runs = runs_folder()
    if not runs.is_dir():
        return None
    training = sorted(path for path in runs.iterdir()
                      if path.is_dir() and not path.name.endswith(EVALUATION_SUFFIX))
    return training[-1] if training else None


def new_bag_folder() -> pathlib.Path:
    """Return a new dated folder for a recorder's bag (not created)."""
    return hilresrl_home() / 'bags' / _stamp()


def base_policy_folder(task: str, kind: str = 'bc') -> pathlib.Path:
    """
    Return where a simulated task's base policy of ``kind`` ('bc' or 'flow') is built.

    A flow policy sits beside the behaviour-cloning one, so building one never replaces the other.
    """
    return hilresrl_home() / 'base_policies' / (task if kind == 'bc' else f'{task}-{kind}')


def base_policy_demonstrations(checkpoint_folder, cameras: Sequence[str] = (),
                               image_size: int = 0) -> pathlib.Path:
    """
    Return where a built base policy keeps the demonstrations it was trained on.

    With simulator ``cameras``: the same episodes recorded with what a pixel cell's residual
    sees (those cameras' images, ``image_size`` square, proprioception and the wrench).
    """
    name = 'demonstrations' + (f'-{"-".join(cameras)}-{image_size}px' if cameras else '')
    return pathlib.Path(checkpoint_folder) / f'{name}.npz'


def is_base_policy_demonstrations(name: str) -> bool:
    """Return whether a file name is one of base_policy_demonstrations' (they belong to it)."""
    return name == 'demonstrations.npz' or (name.startswith('demonstrations-')
                                            and name.endswith('px.npz'))
