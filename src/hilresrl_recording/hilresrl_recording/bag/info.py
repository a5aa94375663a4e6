"""What a bag holds, as ``ros2 bag info`` prints it: ``hilresrl bag-info BAG`` (bag_info)."""

import argparse
import json
import sys

from .metadata import BagError
from .reader import BagReader


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
