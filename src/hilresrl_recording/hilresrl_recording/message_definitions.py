"""
ROS 2 message definitions as rosbag2 embeds them in MCAP files ('ros2msg' schemas).

The text of a type is its .msg file followed, for every type it uses, by a separator line and
that type's .msg file, read from the installed packages' share folders (ament index): what
``ros2 bag info``, ``ros2 bag play`` and Foxglove need to decode a bag without our packages.
"""

import importlib
import json
import os
import re
from typing import Dict, List

PRIMITIVES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
              'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'}
SEPARATOR = '=' * 80


def msg_file(type_name: str) -> str:
    """Return the path of 'pkg/msg/Type' (or 'pkg/Type') in its package's share folder."""
    from ament_index_python.packages import get_package_share_directory
    package, _, name = type_name.replace('/msg/', '/').partition('/')
    return os.path.join(get_package_share_directory(package), 'msg', f'{name}.msg')


def field_types(text: str, package: str) -> List[str]:
    """Return the message types a .msg text uses, as 'pkg/Type' (constants and comments out)."""
    used = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line or '=' in line.split()[-1] or (len(line.split()) > 2 and '=' in line):
            continue
        base = re.sub(r'\[.*\]$', '', line.split()[0])
        base = re.sub(r'<=\d+$', '', base)
        if base in PRIMITIVES:
            continue
        used.append(base if '/' in base else ('std_msgs/Header' if base == 'Header'
                                              else f'{package}/{base}'))
    return used


def ros2msg_definition(type_name: str) -> str:
    """Return the full definition of a type with all the types it uses, rosbag2's way."""
    package = type_name.split('/')[0]
    main = open(msg_file(type_name)).read()
    seen: Dict[str, str] = {}
    pending = field_types(main, package)
    while pending:
        dependency = pending.pop(0)
        if dependency in seen:
            continue
        text = open(msg_file(dependency)).read()
        seen[dependency] = text
        pending.extend(field_types(text, dependency.split('/')[0]))
    parts = [main.rstrip('\n')]
    for dependency, text in seen.items():
        pkg, name = dependency.split('/')[0], dependency.split('/')[-1]
        parts.append(f'{SEPARATOR}\nMSG: {pkg}/{name}\n{text.rstrip()}')
    return '\n'.join(parts) + '\n'


def type_hash(type_name: str) -> str:
    """Return a type's RIHS01 hash from its installed type description ('' before Jazzy)."""
    try:
        with open(msg_file(type_name)[:-len('.msg')] + '.json') as stream:
            hashes = json.load(stream).get('type_hashes', [])
    except (OSError, ValueError, LookupError):
        return ''
    return next((entry.get('hash_string', '') for entry in hashes
                 if entry.get('type_name') == type_name), '')


def message_class(type_name: str):
    """Return the Python class of 'pkg/msg/Type'; LookupError names a type not installed."""
    try:
        package, kind, name = type_name.split('/')
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise LookupError(f'message type {type_name} is not installed here') from error
