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

metadata.py: storages, topics, QoS forms; mcap_storage.py and sqlite_storage.py: one storage
file each; writer.py: BagWriter; reader.py: BagReader; info.py: ``hilresrl bag-info``.
"""

from .info import describe, main
from .metadata import (BagError, COMPRESSIONS, EXTENSIONS, METADATA_VERSION, qos_profile_dict,
                       storage_for_distribution, STORAGES, TopicInfo)
from .reader import BagReader
from .writer import BagWriter

__all__ = ['BagError', 'BagReader', 'BagWriter', 'COMPRESSIONS', 'describe', 'EXTENSIONS',
           'main', 'METADATA_VERSION', 'qos_profile_dict', 'storage_for_distribution',
           'STORAGES', 'TopicInfo']
