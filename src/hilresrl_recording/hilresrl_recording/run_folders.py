"""
Where a recorded run keeps its bags.

A run folder holds the recorder's bag (``bag/``, every topic) and the learner's own bag of the
transitions it took in (``replay/``); both are rosbag2 bags, read the same way.
"""

import pathlib

from .bag import BagError

TRANSITION_TYPE = 'hilresrl_msgs/msg/Transition'
RUN_BAG, RUN_REPLAY = 'bag', 'replay'


def bag_folder(path) -> pathlib.Path:
    """Return the bag of a path: a bag folder or file as it is, a run folder's bag or replay."""
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise BagError(f'{path}: no such bag or run folder')
    if path.is_file() or (path / 'metadata.yaml').is_file() or any(
            child.suffix in ('.mcap', '.db3') for child in path.iterdir()):
        return path
    for name in (RUN_BAG, RUN_REPLAY):
        if (path / name).is_dir():
            return path / name
    raise BagError(f'{path}: neither a rosbag2 bag nor a run folder (no {RUN_BAG}/ or '
                   f'{RUN_REPLAY}/ in it)')
