"""
Reading a rosbag2 bag of any distribution, Humble to Kilted, complete or cut off by a crash.

A damaged file is read up to its last complete record and reported with its name and byte
offset. A bag stays in its folder: a metadata.yaml naming a file outside it, or a file that
links outside it, is refused. No ROS here.
"""

import os
import pathlib
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import yaml

from . import mcap_storage, sqlite_storage
from .metadata import BagError, qos_from_any, TopicInfo

_STORAGES = {'mcap': mcap_storage, 'sqlite3': sqlite_storage}


class BagReader:
    """
    Read a rosbag2 bag (a folder, or one .mcap or .db3 file) of any distribution.

    ``problems`` lists what could not be read, each naming the file and the byte offset where
    reading stopped; everything before that point is returned. A bag with no metadata.yaml (a
    recorder killed before writing one, or a bag from elsewhere) is read from its files.
    """

    def __init__(self, path: os.PathLike):
        self.path = pathlib.Path(path).expanduser()
        self.problems: List[str] = []
        self.topics: Dict[str, TopicInfo] = {}
        self.custom_data: Dict[str, str] = {}
        self.metadata: Optional[dict] = None
        if not self.path.exists():
            raise BagError(f'{self.path}: no such bag (a rosbag2 folder, .mcap or .db3 file)')
        if self.path.is_file():
            self.files = [self.path]
        else:
            self.files = self._files_of_folder()
        storages = {'sqlite3' if file.suffix == '.db3' else 'mcap' for file in self.files}
        if len(storages) > 1:
            raise BagError(f'{self.path} mixes MCAP and sqlite3 files')
        self.storage = storages.pop()
        self._read_topics()

    def _files_of_folder(self) -> List[pathlib.Path]:
        metadata_path = self.path / 'metadata.yaml'
        listed: List[pathlib.Path] = []
        if metadata_path.is_file():
            try:
                self.metadata = (yaml.safe_load(metadata_path.read_text()) or {}).get(
                    'rosbag2_bagfile_information') or {}
            except yaml.YAMLError as error:
                self.problems.append(f'{metadata_path}: not valid YAML ({error}); reading the '
                                     'storage files without it')
                self.metadata = None
        if self.metadata:
            listed = [self._inside(name, metadata_path)
                      for name in self.metadata.get('relative_file_paths') or []]
            self.custom_data = {str(key): str(value) for key, value in
                                (self.metadata.get('custom_data') or {}).items()}
        present = sorted((self._inside(file.name, self.path) for file in self.path.iterdir()
                          if file.suffix in ('.mcap', '.db3')), key=_file_order)
        files = [file for file in listed if file.exists()]
        # A file the metadata does not list yet: written after the last metadata update.
        files += [file for file in present if file not in files]
        if not files:
            compressed = [file.name for file in self.path.iterdir()
                          if file.suffix == '.zstd']
            hint = (f' (file-compressed: {", ".join(compressed)}; decompress them first)'
                    if compressed else '')
            raise BagError(f'{self.path}: no .mcap or .db3 files: not a rosbag2 bag{hint}')
        return files

    def _inside(self, name, source: pathlib.Path) -> pathlib.Path:
        """Return the bag's file of that name; refuse one that is, or links, outside the bag."""
        if not isinstance(name, str) or not name:
            raise BagError(f'{source}: names {name!r}, not a file of the bag')
        candidate = self.path / name
        folder = self.path.resolve()
        if (pathlib.PurePath(name).is_absolute() or '..' in pathlib.PurePath(name).parts
                or folder not in candidate.resolve().parents):
            raise BagError(f'{source}: names {name!r}, which is outside the bag folder '
                           f'{self.path} (refused)')
        return candidate

    def _read_topics(self) -> None:
        if self.metadata:
            version = int(self.metadata.get('version', 0))
            for entry in self.metadata.get('topics_with_message_count') or []:
                meta = entry.get('topic_metadata') or {}
                if 'name' not in meta or 'type' not in meta:
                    continue
                self.topics[meta['name']] = TopicInfo(
                    meta['name'], meta['type'], '', meta.get('type_description_hash', ''),
                    qos_from_any(meta.get('offered_qos_profiles') if version >= 4 else None),
                    meta.get('serialization_format', 'cdr'), int(entry.get('message_count', 0)))
        # The storage files know the definitions, and the topics a crash kept out of metadata.
        for path in self.files:
            try:
                for topic in _STORAGES[self.storage].read_topics(path, self.problems):
                    known = self.topics.get(topic.name)
                    if known is None:
                        self.topics[topic.name] = topic
                    elif not known.definition:
                        known.definition = topic.definition
                        known.offered_qos_profiles = (known.offered_qos_profiles
                                                      or topic.offered_qos_profiles)
            except BagError as error:
                self.problems.append(str(error))

    def messages(self, topics: Optional[Iterable[str]] = None
                 ) -> Iterator[Tuple[str, int, bytes]]:
        """Yield (topic, receive time in ns, serialized message), file by file, in order."""
        wanted = set(topics) if topics is not None else None
        for path in self.files:
            yield from file_messages(self.storage, path, wanted, self.problems)

    def count_messages(self) -> Dict[str, int]:
        """Return the messages per topic that can actually be read."""
        counts: Dict[str, int] = {}
        for topic, _, _ in self.messages():
            counts[topic] = counts.get(topic, 0) + 1
        return counts

    def topics_of_type(self, type_name: str) -> List[str]:
        """Return the topics that carry a type ('pkg/msg/Type')."""
        return [name for name, topic in self.topics.items() if topic.type_name == type_name]


def _file_order(path: pathlib.Path):
    stem = path.stem.rsplit('_', 1)
    return (int(stem[1]) if len(stem) == 2 and stem[1].isdigit() else -1, path.name)


def file_messages(storage: str, path: pathlib.Path, wanted: Optional[Iterable[str]],
                  problems: List[str]) -> Iterator[Tuple[str, int, bytes]]:
    """Yield (topic, receive time in ns, serialized message) of one storage file, in order."""
    yield from _STORAGES[storage].read_messages(path, wanted, problems)
