"""
The learner's run folder: which one, the run id and weights versions in it, the summary at the end.

Where runs live is hilresrl_common.home's rule, shared with the launcher (evaluation runs are
never resumed). Small files are written atomically. No ROS here.
"""

import json
import os
import pathlib
from typing import Optional, Sequence
import uuid

from hilresrl_common.home import new_run_folder, newest_run, runs_folder
from hilresrl_recording.run_folders import RUN_REPLAY


def choose_run_folder(run_dir: Optional[str], resume: bool) -> pathlib.Path:
    """
    Return the run folder, created: run_dir, else the newest training run (resume) or a new one.

    ValueError: nothing to resume.
    """
    if run_dir:
        path = pathlib.Path(run_dir).expanduser()
    elif resume:
        path = newest_run()
        if path is None:
            raise ValueError(f'resume: no run in {runs_folder()} to continue')
    else:
        path = new_run_folder()
    if resume and not (path / RUN_REPLAY).is_dir():
        raise ValueError(f'resume: {path} holds no run (no replay bag)')
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomically(path: pathlib.Path, text: str) -> None:
    """Replace a file's text so that a reader sees the old text or the new, never a part."""
    temporary = path.with_suffix('.tmp')
    temporary.write_text(text)
    os.replace(temporary, path)


def learner_run_id(folder: pathlib.Path) -> str:
    """Return the id of a run's weights: drawn once per run folder, kept on resume."""
    path = folder / 'learner_run_id'
    try:
        run_id = path.read_text().strip()
    except OSError:
        run_id = ''
    if not run_id:
        run_id = uuid.uuid4().hex
        write_atomically(path, run_id)
    return run_id


def read_weights_version(folder: pathlib.Path) -> int:
    """Return the last weights version broadcast from this folder (0: none)."""
    try:
        return int((folder / 'weights_version').read_text())
    except (OSError, ValueError):
        return 0


def write_weights_version(folder: pathlib.Path, version: int) -> None:
    """Keep the version, so that versions stay monotonic across restarts."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / 'weights_version', str(version))


def write_summary(folder: pathlib.Path, summary: dict) -> pathlib.Path:
    """Write the end-of-run summary (summary.json)."""
    path = folder / 'summary.json'
    path.write_text(json.dumps(summary, indent=2))
    return path


def checkpoint_refusal(path: str, run_dir: pathlib.Path, allowed: Sequence[str]) -> str:
    """Return why a checkpoint may not be loaded over the service ('': it may)."""
    try:
        resolved = pathlib.Path(path).expanduser().resolve()
        roots = [run_dir.resolve()] + [pathlib.Path(folder).expanduser().resolve()
                                       for folder in allowed]
    except (OSError, RuntimeError, ValueError) as error:
        return f'{path}: {error}'
    if any(resolved == root or root in resolved.parents for root in roots):
        return ''
    return (f'{path} (resolved: {resolved}) is outside the run folder {roots[0]}'
            + ''.join(f' and {root}' for root in roots[1:])
            + ': only checkpoints there may be loaded (add its folder to '
              'checkpoint_allow_dirs to allow it)')
