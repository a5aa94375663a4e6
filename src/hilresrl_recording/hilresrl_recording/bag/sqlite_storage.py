"""
The sqlite3 storage of a bag: one file in the layout Humble's rosbag2 reads, and read back.

A damaged file is read up to the damage, which is reported with the file's name. No ROS here.
"""

import pathlib
import sqlite3
from typing import Dict, List

from .metadata import BagError, METADATA_VERSION, qos_from_any, qos_with_numbers, TopicInfo

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


class SqliteFile:
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
            qos_with_numbers(topic.offered_qos_profiles), topic.type_hash))
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


def _connection(path: pathlib.Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        connection.execute('SELECT count(*) FROM sqlite_master').fetchone()
        return connection
    except sqlite3.DatabaseError as error:
        raise BagError(f'{path}: not a readable sqlite3 bag ({error})') from error


def read_topics(path: pathlib.Path, problems: List[str]) -> List[TopicInfo]:
    connection = _connection(path)
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
                          qos_from_any(offered), serialization)
                for name, type_name, serialization, offered, type_hash in connection.execute(
                    f'SELECT name, type, serialization_format, {qos}, {hashes} FROM topics')]
    except sqlite3.DatabaseError as error:
        raise BagError(f'{path}: damaged sqlite3 bag ({error})') from error
    finally:
        connection.close()


def read_messages(path: pathlib.Path, wanted, problems: List[str]):
    try:
        connection = _connection(path)
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
