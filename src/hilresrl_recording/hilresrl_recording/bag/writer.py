"""
Writing a rosbag2 bag: topics, then serialized messages; split, flushed and closed on request.

metadata.yaml is rewritten, whole and atomically, at every flush, split and close, so a writer
killed at any moment leaves every flushed message readable. No ROS here.
"""

from dataclasses import dataclass
import os
import pathlib
from typing import Dict, Iterable, List, Optional

import yaml

from .mcap_storage import McapFile
from .metadata import (BagError, COMPRESSIONS, EXTENSIONS, METADATA_VERSION, qos_with_numbers,
                       STORAGES, TopicInfo)
from .reader import BagReader, file_messages
from .sqlite_storage import SqliteFile


@dataclass
class _FileRecord:
    path: str
    start_ns: int = 0
    end_ns: int = 0
    message_count: int = 0


class BagWriter:
    """
    Write a rosbag2 bag: topics, then serialized messages; split, flush and close on request.

    With ``append`` an existing bag of the same storage grows by new files (a restarted
    recorder or learner continues its bag). metadata.yaml is rewritten, whole and atomically,
    at every flush, split and close.
    """

    def __init__(self, path: os.PathLike, storage: str = 'mcap', compression: str = 'none',
                 max_file_size_bytes: int = 0, max_file_duration_s: float = 0.0,
                 chunk_size_bytes: int = 768 * 1024, custom_data: Optional[Dict[str, str]] = None,
                 append: bool = False):
        if storage not in STORAGES:
            raise BagError(f'storage {storage!r} is not one of {", ".join(STORAGES)}')
        if compression not in COMPRESSIONS:
            raise BagError(f'compression {compression!r} is not one of '
                           f'{", ".join(COMPRESSIONS)}')
        if storage == 'sqlite3' and compression != 'none':
            raise BagError('sqlite3 bags are not compressed: use compression none, or mcap')
        self.path = pathlib.Path(path)
        self.storage, self.compression = storage, compression
        self.max_file_size_bytes = max_file_size_bytes
        self.max_file_duration_ns = int(max_file_duration_s * 1e9)
        self.chunk_size_bytes = chunk_size_bytes
        self.custom_data = dict(custom_data or {})
        self.topics: Dict[str, TopicInfo] = {}
        self._files: List[_FileRecord] = []
        self._file = None
        self._sequence = 0
        self.bytes_written = 0
        if self.path.exists() and any(self.path.iterdir()):
            if not append:
                raise BagError(f'{self.path} exists already and is not empty: choose another '
                               'folder (or append to it)')
            self._adopt_existing()
        self.path.mkdir(parents=True, exist_ok=True)
        self._open_file()

    @property
    def files(self) -> List[pathlib.Path]:
        """Return the bag's storage files, oldest first."""
        return [self.path / record.path for record in self._files]

    @property
    def message_count(self) -> int:
        """Return the messages written so far, this session's and an appended bag's."""
        return sum(topic.message_count for topic in self.topics.values())

    def add_topic(self, name: str, type_name: str, definition: str = '', type_hash: str = '',
                  offered_qos_profiles: Iterable[dict] = ()) -> TopicInfo:
        """Declare a topic before its first message (again with the same type is a no-op)."""
        if name in self.topics:
            if self.topics[name].type_name != type_name:
                raise BagError(f'topic {name} is {self.topics[name].type_name} in '
                               f'{self.path}, not {type_name}')
            if self._file is not None and name not in self._file_topics:
                self._file.add_topic(self.topics[name], METADATA_VERSION[self.storage])
                self._file_topics.add(name)
            return self.topics[name]
        topic = TopicInfo(name, type_name, definition, type_hash, list(offered_qos_profiles))
        self.topics[name] = topic
        self._file.add_topic(topic, METADATA_VERSION[self.storage])
        self._file_topics.add(name)
        return topic

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        """Append one serialized message of a declared topic (on disk at the next flush)."""
        info = self.topics.get(topic)
        if info is None:
            raise BagError(f'topic {topic} was not added to {self.path}')
        record = self._files[-1]
        if record.message_count and self._split_due(record, stamp_ns):
            self._split()
            record = self._files[-1]
        if topic not in self._file_topics:
            self._file.add_topic(info, METADATA_VERSION[self.storage])
            self._file_topics.add(topic)
        self._file.write(topic, stamp_ns, data, self._sequence)
        self._sequence += 1
        info.message_count += 1
        if not record.message_count or stamp_ns < record.start_ns:
            record.start_ns = stamp_ns
        record.end_ns = max(record.end_ns, stamp_ns)
        record.message_count += 1
        self.bytes_written += len(data)

    def flush(self, metadata: bool = True) -> None:
        """
        Put everything written so far on disk (a finished chunk, a commit), and metadata.yaml.

        Without ``metadata`` only the messages go out: for a caller that flushes every message,
        the metadata (which a reader can do without) is rewritten at its own pace.
        """
        self._file.flush()
        if metadata:
            self._write_metadata()

    def close(self) -> None:
        """Finish the open file (MCAP summary, sqlite3 metadata) and write metadata.yaml."""
        if self._file is None:
            return
        self._file.close(self._metadata_yaml(inner=True))
        self._file = None
        self._write_metadata()

    # --- files and metadata ---------------------------------------------------------------
    def _split_due(self, record: _FileRecord, stamp_ns: int) -> bool:
        too_big = self.max_file_size_bytes and self._file.size() >= self.max_file_size_bytes
        too_long = (self.max_file_duration_ns
                    and stamp_ns - record.start_ns >= self.max_file_duration_ns)
        return bool(too_big or too_long)

    def _split(self) -> None:
        self._file.close(self._metadata_yaml(inner=True))
        self._open_file()

    def _open_file(self) -> None:
        index = len(self._files)
        name = f'{self.path.name}_{index}{EXTENSIONS[self.storage]}'
        while (self.path / name).exists():  # a file a crashed writer left unlisted
            index += 1
            name = f'{self.path.name}_{index}{EXTENSIONS[self.storage]}'
        if self.storage == 'mcap':
            self._file = McapFile(self.path / name, self.compression, self.chunk_size_bytes)
        else:
            self._file = SqliteFile(self.path / name)
        self._file_topics = set()
        self._files.append(_FileRecord(name))
        for topic in self.topics.values():
            self._file.add_topic(topic, METADATA_VERSION[self.storage])
            self._file_topics.add(topic.name)
        self._file.flush()
        self._write_metadata()

    def _adopt_existing(self) -> None:
        reader = BagReader(self.path)
        if reader.storage != self.storage:
            raise BagError(f'{self.path} is a {reader.storage} bag: cannot append {self.storage}')
        for topic in reader.topics.values():
            topic.message_count = 0  # counted below: what can be read, not what metadata says
            self.topics[topic.name] = topic
        for path in reader.files:
            record = _FileRecord(path.name)
            for name, stamp_ns, _ in file_messages(self.storage, path, None, []):
                if not record.message_count or stamp_ns < record.start_ns:
                    record.start_ns = stamp_ns
                record.end_ns = max(record.end_ns, stamp_ns)
                record.message_count += 1
                self.topics[name].message_count += 1
            self._files.append(record)
        self.custom_data = dict(reader.custom_data, **self.custom_data)

    def _metadata(self) -> dict:
        version = METADATA_VERSION[self.storage]
        starts = [record.start_ns for record in self._files if record.message_count]
        ends = [record.end_ns for record in self._files if record.message_count]
        start = min(starts) if starts else 0
        topics = []
        for topic in self.topics.values():
            qos = (topic.offered_qos_profiles if version >= 9
                   else qos_with_numbers(topic.offered_qos_profiles))
            metadata = {'name': topic.name, 'type': topic.type_name,
                        'serialization_format': topic.serialization_format,
                        'offered_qos_profiles': qos}
            if version >= 7:
                metadata['type_description_hash'] = topic.type_hash
            topics.append({'topic_metadata': metadata, 'message_count': topic.message_count})
        information = {
            'version': version, 'storage_identifier': self.storage,
            'duration': {'nanoseconds': (max(ends) - start) if ends else 0},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': self.message_count,
            'topics_with_message_count': topics,
            'compression_format': '', 'compression_mode': '',
            'relative_file_paths': [record.path for record in self._files],
            'files': [{'path': record.path,
                       'starting_time': {'nanoseconds_since_epoch': record.start_ns},
                       'duration': {'nanoseconds': record.end_ns - record.start_ns},
                       'message_count': record.message_count} for record in self._files],
        }
        if version >= 6:
            information['custom_data'] = dict(self.custom_data)
        if version >= 8:
            information['ros_distro'] = os.environ.get('ROS_DISTRO', '') or 'hilresrl'
        return {'rosbag2_bagfile_information': information}

    def _metadata_yaml(self, inner: bool = False) -> str:
        metadata = self._metadata()
        return yaml.safe_dump(metadata['rosbag2_bagfile_information'] if inner else metadata,
                              default_flow_style=False, sort_keys=False)

    def _write_metadata(self) -> None:
        path = self.path / 'metadata.yaml'
        temporary = path.with_suffix('.yaml.tmp')
        temporary.write_text(self._metadata_yaml())
        os.replace(temporary, path)
