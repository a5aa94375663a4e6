"""
The README's LeRobot round trip, timed: each of its commands as written, one after the other.

Runs the commands of the README block marked ``lerobot round trip`` in a fresh folder that links
this checkout's .venv-lerobot and config (as from the repository's root), and prints each one's
wall time beside the time of the whole trip; with ``--out``, the raw figures as JSON lines.
Needs the suite's environment (source scripts/env.sh) and the LeRobot environment
(scripts/setup-lerobot.sh).

    source scripts/env.sh && python benchmarks/lerobot_round_trip.py \
        --out benchmarks/results/lerobot-round-trip-<date>.jsonl
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import List

REPO = pathlib.Path(__file__).resolve().parent.parent
MARK = '<!-- lerobot round trip:'


def round_trip_commands(readme: pathlib.Path = REPO / 'README.md') -> List[str]:
    """Return the commands of the README's LeRobot round trip, each continued line joined."""
    text = readme.read_text()
    block = text[text.index(MARK):]
    block = block[block.index('```bash\n') + len('```bash\n'):]
    block = block[:block.index('```')]
    return [line.strip() for line in block.replace('\\\n', ' ').splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--out', type=pathlib.Path, help='JSON lines of the raw figures')
    options = parser.parse_args()
    revision = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                              capture_output=True, text=True).stdout.strip()
    records = []
    with tempfile.TemporaryDirectory(prefix='lerobot-round-trip-') as folder:
        root = pathlib.Path(folder)
        (root / '.venv-lerobot').symlink_to(REPO / '.venv-lerobot')
        (root / 'config').symlink_to(REPO / 'config')
        for step, command in enumerate(round_trip_commands(), start=1):
            started = time.monotonic()
            done = subprocess.run(['bash', '-c', command], cwd=root, capture_output=True,
                                  text=True)
            seconds = time.monotonic() - started
            records.append({'step': step, 'command': command, 'seconds': round(seconds, 2),
                            'returncode': done.returncode, 'revision': revision})
            print(f'step {step}: {seconds:6.1f} s  rc {done.returncode}  {command[:72]}',
                  flush=True)
            if done.returncode != 0:
                print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
                break
    total = sum(record['seconds'] for record in records)
    print(f'round trip: {total:.1f} s in {len(records)} commands (the whole trip is the '
          'reference each step is a share of)')
    if options.out:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        with options.out.open('w') as out:
            for record in records:
                out.write(json.dumps(record) + '\n')
    return 0 if records and all(record['returncode'] == 0 for record in records) else 1


if __name__ == '__main__':
    sys.exit(main())
