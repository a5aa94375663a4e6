"""
What a bag says about itself: its storages, topics, metadata versions and QoS in both forms.

metadata.yaml version 9 (Jazzy, Kilted) writes QoS profiles as names, version 5 (Humble) and
sqlite3 as a YAML string of numbers; this module turns one into the other. No ROS here.
"""

from dataclasses import dataclass, field
from typing import List, Sequence

import yaml

STORAGES = ('mcap', 'sqlite3')
COMPRESSIONS = ('none', 'lz4', 'zstd')
EXTENSIONS = {'mcap': '.mcap', 'sqlite3': '.db3'}
# metadata.yaml versions: 9 as Jazzy and Kilted write it (QoS as a list); sqlite3 bags are for
# Humble users, whose rosbag2 reads up to version 5 (QoS as a YAML string).
METADATA_VERSION = {'mcap': 9, 'sqlite3': 5}


def storage_for_distribution(ros_distro: str) -> str:
    """
    Return the storage a distribution's own ``ros2 bag`` reads.

    sqlite3 on Humble (its rosbag2 reads no metadata version 9, and MCAP only with a plugin that
    is not installed by default); mcap from Jazzy on, and with the Kilted wheels.
    """
    return 'sqlite3' if ros_distro.strip().lower() == 'humble' else 'mcap'


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


def qos_with_numbers(profiles: Sequence[dict]) -> str:
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


def qos_from_any(value) -> List[dict]:
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
