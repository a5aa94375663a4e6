"""
The MCAP storage of a bag: one file written in rosbag2's 'ros2' profile, and read back.

A finished file is read from its summary; one cut off by a crash is scanned record by record
up to the damage, which is reported with the file's name and byte offset. No ROS here.
"""

import os
import pathlib
import struct
from typing import Dict, List

import yaml

from .metadata import BagError, qos_from_any, qos_with_numbers, TopicInfo


class McapFile:
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
               if version >= 9 else qos_with_numbers(topic.offered_qos_profiles))
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


def read_topics(path: pathlib.Path, problems: List[str]) -> List[TopicInfo]:
    from mcap.records import Channel, Schema
    schemas: Dict[int, Schema] = {}
    channels: List[Channel] = []
    summary = _summary(path)
    if summary is not None:  # a finished file: its summary lists everything at once
        schemas, channels = dict(summary.schemas), list(summary.channels.values())
    else:  # cut off: scan it
        for record in _records(path, problems):
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
            qos_from_any(channel.metadata.get('offered_qos_profiles', '')),
            channel.message_encoding))
    return topics


def _summary(path: pathlib.Path):
    """Return the summary section of a finished MCAP file, or None."""
    from mcap.reader import make_reader
    try:
        with open(path, 'rb') as stream:
            return make_reader(stream).get_summary()
    except Exception:  # noqa: B902 - any failure means: no usable summary, so scan the file
        return None


def read_messages(path: pathlib.Path, wanted, problems: List[str]):
    from mcap.records import Channel, Message
    channels: Dict[int, str] = {}
    for record in _records(path, problems):
        if isinstance(record, Channel):
            channels[record.id] = record.topic
        elif isinstance(record, Message):
            topic = channels.get(record.channel_id)
            if topic is not None and (wanted is None or topic in wanted):
                yield topic, record.log_time, bytes(record.data)


def _records(path: pathlib.Path, problems: List[str]):
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
