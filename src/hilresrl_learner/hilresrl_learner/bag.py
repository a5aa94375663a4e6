"""
rosbag2 bags written and read without rosbag2: the MCAP and sqlite3 storages and metadata.yaml.

A bag is a folder of storage files and a metadata.yaml, as ``ros2 bag record`` leaves it. The
writer flushes on request (a finished MCAP chunk, a sqlite3 commit) and rewrites metadata.yaml
each time, so a writer killed at any moment leaves every flushed message readable; it splits
files by size or duration. The reader takes bags of Humble (metadata version 5, sqlite3 or
MCAP) to Kilted, complete or cut off by a crash: a damaged file is read up to its last complete
record and reported with its name and byte offset. A bag stays in its folder: a metadata.yaml
naming a file outside it, or a file that links outside it, is refused. MCAP records go through
the ``mcap`` library. No ROS here.
"""

from dataclasses import dataclass, field
import json
import os
import pathlib
import sqlite3
import struct
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import yaml

STORAGES = ('mcap', 'sqlite3')
COMPRESSIONS = ('none', 'lz4', 'zstd')
EXTENSIONS = {'mcap': '.mcap', 'sqlite3': '.db3'}
# metadata.yaml versions: 9 as Jazzy and Kilted write it (QoS as a list); sqlite3 bags are for
# Humble users, whose rosbag2 reads up to version 5 (QoS as a YAML string).
METADATA_VERSION = {'mcap': 9, 'sqlite3': 5}
# rosbag2's QoS enumerations (rmw), as metadata version 5 writes them.
QOS_ENUMS = {
    'history': ('system_default', 'keep_last', 'keep_all', 'unknown'),
    'reliability': ('system_default', 'reliable', 'best_effort', 'unknown', 'best_available'),
    'durability': ('system_default', 'transient_local', 'volatile', 'unknown',
                   'best_available'),
    'liveliness': ('system_default', 'automatic', 'manual_by_node', 'manual_by_topic',
                   'unknown', 'best_available'),
}
# The sqlite3 layout Humble reads (schema 3), plus Jazzy's message_definitions table, which
# Humble ignores, so that a bag carries the definitions of its types in both storages.
SQLITE_SCHEMA = """
CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                      metadata TEXT NOT NULL);
CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                    serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL,
                    type_description_hash TEXT NOT NULL);
CREATE TABLE message_definitions(id INTEGER PRIMARY KEY, topic_type TEXT NOT NULL,
                                 encoding TEXT NOT NULL, encoded_message_definition TEXT NOT NULL,
                                 type_description_hash TEXT NOT NULL);
CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                      timestamp INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX timestamp_idx ON messages (timestamp ASC);
INSERT INTO schema(schema_version, ros_distro) VALUES (3, 'hilresrl');
"""


class BagError(Exception):
    """A bag that cannot be read or written; the message names the file (and offset)."""


@dataclass
class TopicInfo:
    """A topic of a bag: name, type, QoS its publishers offered, definition, message count."""

    name: str
    type_name: str
    definition: str = ''
    type_hash: str = ''
    offered_qos_profiles: List[dict] = field(default_factory=list)
    serialization_format: str = 'cdr'
    message_count: int = 0


def qos_profile_dict(history: str = 'keep_last', depth: int = 10,
                     reliability: str = 'reliable', durability: str = 'volatile',
                     liveliness: str = 'automatic') -> dict:
    """Return a QoS profile in metadata.yaml's form (version 9): names, not numbers."""
    zero = {'sec': 0, 'nsec': 0}
    return {'history': history, 'depth': depth, 'reliability': reliability,
            'durability': durability, 'deadline': dict(zero), 'lifespan': dict(zero),
            'liveliness': liveliness, 'liveliness_lease_duration': dict(zero),
            'avoid_ros_namespace_conventions': False}


def _qos_with_numbers(profiles: Sequence[dict]) -> str:
    """Return QoS profiles as metadata version 5 and sqlite3 store them: YAML, enums as ints."""
    if not profiles:
        return ''
    numbered = []
    for profile in profiles:
        profile = dict(profile)
        for key, names in QOS_ENUMS.items():
            value = profile.get(key, 'system_default')
            profile[key] = names.index(value) if value in names else int(value)
        numbered.append(profile)
    return yaml.safe_dump(numbered, default_flow_style=False, sort_keys=False).strip()


def _qos_from_any(value) -> List[dict]:
    """Return QoS profiles (version 9 form) from a list, or a YAML string of any version."""
    if not value:
        return []
    try:
        profiles = yaml.safe_load(value) if isinstance(value, str) else value
    except yaml.YAMLError:
        return []
    result = []
    for profile in profiles or []:
        if not isinstance(profile, dict):
            continue
        profile = dict(profile)
        for key, names in QOS_ENUMS.items():
            if isinstance(profile.get(key), int) and 0 <= profile[key] < len(names):
                profile[key] = names[profile[key]]
        result.append(profile)
    return result


# --- writing --------------------------------------------------------------------------------
class _McapFile:
    """One MCAP file of a bag, written with the mcap library in rosbag2's 'ros2' profile."""

    def __init__(self, path: pathlib.Path, compression: str, chunk_size: int):
        from mcap.writer import CompressionType, Writer
        self.path = path
        self._stream = open(path, 'xb')
        types = {'none': CompressionType.NONE, 'lz4': CompressionType.LZ4,
                 'zstd': CompressionType.ZSTD}
        self._writer = Writer(self._stream, chunk_size=chunk_size, compression=types[compression])
        self._writer.start(profile='ros2', library='hilresrl')
        self._schemas: Dict[str, int] = {}
        self._channels: Dict[str, int] = {}
        self._bytes = 0

    def add_topic(self, topic: TopicInfo, version: int) -> None:
        if topic.type_name not in self._schemas:
            self._schemas[topic.type_name] = self._writer.register_schema(
                name=topic.type_name, encoding='ros2msg', data=topic.definition.encode())
        qos = (yaml.safe_dump(topic.offered_qos_profiles, sort_keys=False).strip()
               if version >= 9 else _qos_with_numbers(topic.offered_qos_profiles))
        self._channels[topic.name] = self._writer.register_channel(
            topic=topic.name, message_encoding=topic.serialization_format,
            schema_id=self._schemas[topic.type_name],
            metadata={'offered_qos_profiles': qos, 'topic_type_hash': topic.type_hash})

    def write(self, topic: str, stamp_ns: int, data: bytes, sequence: int) -> None:
        self._writer.add_message(self._channels[topic], log_time=stamp_ns, data=data,
                                 publish_time=stamp_ns, sequence=sequence & 0xFFFFFFFF)
        self._bytes += len(data) + 31  # the message record's header

    def flush(self) -> None:
        self._writer.flush()  # finishes the chunk in progress and hands it to the system

    def size(self) -> int:
        """Return the bytes of messages in this file, the chunk still in memory included."""
        return self._bytes

    def close(self, metadata_yaml: str) -> None:
        if self._stream.closed:
            return
        self._writer.add_metadata('rosbag2', {'serialized_metadata': metadata_yaml})
        self._writer.finish()
        self._stream.close()


class _SqliteFile:
    """One sqlite3 file of a bag, in the layout Humble's rosbag2 reads."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        if path.exists():
            raise BagError(f'{path} exists already')
        self._connection = sqlite3.connect(str(path))
        self._connection.executescript(SQLITE_SCHEMA)
        self._ids: Dict[str, int] = {}
        self._types = set()
        self._bytes = 0

    def add_topic(self, topic: TopicInfo, version: int) -> None:
        self._ids[topic.name] = len(self._ids) + 1
        self._connection.execute('INSERT INTO topics VALUES (?, ?, ?, ?, ?, ?)', (
            self._ids[topic.name], topic.name, topic.type_name, topic.serialization_format,
            _qos_with_numbers(topic.offered_qos_profiles), topic.type_hash))
        if topic.type_name not in self._types:
            self._types.add(topic.type_name)
            self._connection.execute(
                'INSERT INTO message_definitions (topic_type, encoding, '
                'encoded_message_definition, type_description_hash) VALUES (?, ?, ?, ?)',
                (topic.type_name, 'ros2msg', topic.definition, topic.type_hash))

    def write(self, topic: str, stamp_ns: int, data: bytes, sequence: int) -> None:
        self._connection.execute('INSERT INTO messages (topic_id, timestamp, data) VALUES '
                                 '(?, ?, ?)', (self._ids[topic], stamp_ns, data))
        self._bytes += len(data) + 24

    def flush(self) -> None:
        self._connection.commit()

    def size(self) -> int:
        return self._bytes

    def close(self, metadata_yaml: str) -> None:
        if self._connection is None:
            return
        self._connection.execute('INSERT INTO metadata (metadata_version, metadata) VALUES '
                                 '(?, ?)', (METADATA_VERSION['sqlite3'], metadata_yaml))
        self._connection.commit()
        self._connection.close()
        self._connection = None


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
            self._file = _McapFile(self.path / name, self.compression, self.chunk_size_bytes)
        else:
            self._file = _SqliteFile(self.path / name)
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
            read = _mcap_messages if self.storage == 'mcap' else _sqlite_messages
            for name, stamp_ns, _ in read(path, None, []):
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
                   else _qos_with_numbers(topic.offered_qos_profiles))
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


# --- reading --------------------------------------------------------------------------------
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
                    _qos_from_any(meta.get('offered_qos_profiles') if version >= 4 else None),
                    meta.get('serialization_format', 'cdr'), int(entry.get('message_count', 0)))
        # The storage files know the definitions, and the topics a crash kept out of metadata.
        for path in self.files:
            try:
                for topic in (_mcap_topics(path, self.problems) if self.storage == 'mcap'
                              else _sqlite_topics(path)):
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
            reader = _mcap_messages if self.storage == 'mcap' else _sqlite_messages
            yield from reader(path, wanted, self.problems)

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


def _mcap_topics(path: pathlib.Path, problems: List[str]) -> List[TopicInfo]:
    from mcap.records import Channel, Schema
    schemas: Dict[int, Schema] = {}
    channels: List[Channel] = []
    summary = _mcap_summary(path)
    if summary is not None:  # a finished file: its summary lists everything at once
        schemas, channels = dict(summary.schemas), list(summary.channels.values())
    else:  # cut off: scan it
        for record in _mcap_records(path, problems):
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels.append(record)
    topics = []
    for channel in channels:
        schema = schemas.get(channel.schema_id)
        topics.append(TopicInfo(
            channel.topic, schema.name if schema is not None else '',
            schema.data.decode(errors='replace') if schema is not None else '',
            channel.metadata.get('topic_type_hash', ''),
            _qos_from_any(channel.metadata.get('offered_qos_profiles', '')),
            channel.message_encoding))
    return topics


def _mcap_summary(path: pathlib.Path):
    """Return the summary section of a finished MCAP file, or None."""
    from mcap.reader import make_reader
    try:
        with open(path, 'rb') as stream:
            return make_reader(stream).get_summary()
    except Exception:  # noqa: B902 - any failure means: no usable summary, so scan the file
        return None


def _mcap_messages(path: pathlib.Path, wanted, problems: List[str]):
    from mcap.records import Channel, Message
    channels: Dict[int, str] = {}
    for record in _mcap_records(path, problems):
        if isinstance(record, Channel):
            channels[record.id] = record.topic
        elif isinstance(record, Message):
            topic = channels.get(record.channel_id)
            if topic is not None and (wanted is None or topic in wanted):
                yield topic, record.log_time, bytes(record.data)


def _mcap_records(path: pathlib.Path, problems: List[str]):
    """Yield an MCAP file's records, the ones inside chunks too, up to any damage."""
    from mcap.exceptions import McapError
    from mcap.records import DataEnd, Footer
    from mcap.stream_reader import StreamReader
    try:
        stream = open(path, 'rb')
    except OSError as error:
        raise BagError(f'{path}: cannot open ({error.strerror})') from error
    with stream:
        size = os.path.getsize(path)
        try:
            for record in StreamReader(stream, validate_crcs=True).records:
                if isinstance(record, (DataEnd, Footer)):
                    return  # the summary after the data repeats what came before
                yield record
        except (McapError, EOFError, ValueError, OSError, KeyError, IndexError, RuntimeError,
                struct.error) as error:
            message = (f'{path}: damaged or cut off at byte {stream.tell()} of {size} '
                       f'({type(error).__name__}: {error}); the messages before it were read')
            if message not in problems:
                problems.append(message)


def _sqlite_connection(path: pathlib.Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        connection.execute('SELECT count(*) FROM sqlite_master').fetchone()
        return connection
    except sqlite3.DatabaseError as error:
        raise BagError(f'{path}: not a readable sqlite3 bag ({error})') from error


def _sqlite_topics(path: pathlib.Path) -> List[TopicInfo]:
    connection = _sqlite_connection(path)
    try:
        columns = {row[1] for row in connection.execute('PRAGMA table_info(topics)')}
        if not columns:
            raise BagError(f'{path}: no topics table: not a rosbag2 sqlite3 file')
        qos = 'offered_qos_profiles' if 'offered_qos_profiles' in columns else "''"
        hashes = 'type_description_hash' if 'type_description_hash' in columns else "''"
        definitions = {}
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if 'message_definitions' in tables:
            definitions = dict(connection.execute(
                'SELECT topic_type, encoded_message_definition FROM message_definitions'))
        return [TopicInfo(name, type_name, definitions.get(type_name, ''), type_hash,
                          _qos_from_any(offered), serialization)
                for name, type_name, serialization, offered, type_hash in connection.execute(
                    f'SELECT name, type, serialization_format, {qos}, {hashes} FROM topics')]
    except sqlite3.DatabaseError as error:
        raise BagError(f'{path}: damaged sqlite3 bag ({error})') from error
    finally:
        connection.close()


def _sqlite_messages(path: pathlib.Path, wanted, problems: List[str]):
    try:
        connection = _sqlite_connection(path)
    except BagError as error:
        problems.append(str(error))
        return
    try:
        names = dict(connection.execute('SELECT id, name FROM topics'))
        rows = connection.execute('SELECT topic_id, timestamp, data FROM messages ORDER BY '
                                  'timestamp, id')
        read = 0
        for topic_id, stamp_ns, data in rows:
            read += 1
            topic = names.get(topic_id)
            if topic is not None and (wanted is None or topic in wanted):
                yield topic, stamp_ns, bytes(data)
    except sqlite3.DatabaseError as error:
        problems.append(f'{path}: damaged sqlite3 bag after {read} messages ({error}); the '
                        'messages before it were read')
    finally:
        connection.close()


def describe(reader: BagReader) -> str:
    """Return a summary of a bag as ``ros2 bag info`` prints it (topics, counts, files)."""
    counts = reader.count_messages()
    lines = [f'Bag:      {reader.path}', f'Storage:  {reader.storage}',
             f'Files:    {", ".join(file.name for file in reader.files)}',
             f'Messages: {sum(counts.values())}']
    for name in sorted(reader.topics):
        topic = reader.topics[name]
        lines.append(f'  {name} | {topic.type_name} | {counts.get(name, 0)} messages')
    for problem in reader.problems:
        lines.append(f'Problem:  {problem}')
    if reader.custom_data:
        lines.append('Custom data: ' + json.dumps(reader.custom_data, sort_keys=True))
    return '\n'.join(lines)


def main(args=None) -> int:
    """Print what a bag holds (``hilresrl bag-info BAG``), as ``ros2 bag info`` does."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog='hilresrl bag-info',
                                     description='Topics, counts and problems of a bag.')
    parser.add_argument('bag', help='bag folder, .mcap or .db3 file')
    options = parser.parse_args(args)
    try:
        reader = BagReader(options.bag)
        print(describe(reader))
    except BagError as error:
        print(f'hilresrl bag-info: {error}', file=sys.stderr)
        return 2
    if reader.problems and not any(True for _ in reader.messages()):
        print(f'hilresrl bag-info: nothing in {reader.path} is readable', file=sys.stderr)
        return 1
    return 0
