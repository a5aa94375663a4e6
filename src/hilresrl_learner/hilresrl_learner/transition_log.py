"""
The learner's record of every transition it took in: MCAP files of serialized messages.

Each message goes to disk as it arrives (an unchunked MCAP record, flushed), so a learner killed
at any moment loses nothing it had counted, and a restart reads every complete record back; a
record cut off by the kill is detected and skipped. A run's log is a folder of numbered segments,
one per learner start, in rosbag2's MCAP format with the message definitions embedded.
"""

import os
import pathlib
from typing import Iterator, List, Optional, Tuple

from mcap.exceptions import McapError
from mcap.records import Message
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

SEGMENT_GLOB = 'transitions_*.mcap'


class TransitionLog:
    """Append serialized messages of one topic to a new segment in a folder."""

    def __init__(self, folder: os.PathLike, topic: str, type_name: str, definition: str):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        index = len(list(self.folder.glob(SEGMENT_GLOB))) + 1
        self.path = self.folder / f'transitions_{index:04d}.mcap'
        self._stream = open(self.path, 'wb')
        self._writer = Writer(self._stream, compression=CompressionType.NONE,
                              use_chunking=False)
        self._writer.start(profile='ros2', library='hilresrl')
        schema = self._writer.register_schema(name=type_name, encoding='ros2msg',
                                              data=definition.encode())
        self._channel = self._writer.register_channel(topic=topic, message_encoding='cdr',
                                                      schema_id=schema)
        self._stream.flush()
        self.records = 0

    def write(self, data: bytes, stamp_ns: int) -> None:
        """Append one serialized message and hand it to the operating system."""
        self._writer.add_message(self._channel, log_time=stamp_ns, data=data,
                                 publish_time=stamp_ns, sequence=self.records)
        self._stream.flush()
        self.records += 1

    def close(self) -> None:
        """Write the MCAP summary and footer."""
        if not self._stream.closed:
            self._writer.finish()
            self._stream.close()


def read_segment(path: os.PathLike) -> Tuple[List[bytes], Optional[str]]:
    """Return the complete messages of one segment, and why reading stopped early (or None)."""
    messages = []
    problem = None
    with open(path, 'rb') as stream:
        try:
            for record in StreamReader(stream).records:
                if isinstance(record, Message):
                    messages.append(bytes(record.data))
        except (McapError, EOFError, ValueError, OSError) as error:
            problem = (f'{path}: stopped at byte {stream.tell()} of '
                       f'{os.path.getsize(path)} ({type(error).__name__}: {error}); the '
                       'records before it are intact')
    return messages, problem


def read_log(folder: os.PathLike) -> Iterator[Tuple[pathlib.Path, List[bytes], Optional[str]]]:
    """Yield (segment, messages, problem) for every segment of a log, oldest first."""
    for path in sorted(pathlib.Path(folder).glob(SEGMENT_GLOB)):
        messages, problem = read_segment(path)
        yield path, messages, problem
