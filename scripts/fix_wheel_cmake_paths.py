"""
Point the ROS 2 wheels' exported CMake targets at this interpreter's include directories.

The message wheels on PyPI were built under /opt/python/cpXY-cpXY and their exported targets
name that prefix's Python and numpy include directories; CMake refuses targets whose include
directories do not exist. Rewriting the paths inside the virtual environment fixes the build
without touching anything outside it. Running it again changes nothing.
"""

import pathlib
import re
import sys
import sysconfig

import numpy

BUILD_PREFIX = re.compile(r'/opt/python/cp\d+-cp\d+')


def real_paths() -> dict:
    """Map the wheels' build-machine include directories to the ones of this interpreter."""
    version = f'python{sys.version_info.major}.{sys.version_info.minor}'
    return {
        f'include/{version}': sysconfig.get_paths()['include'],
        f'lib/{version}/site-packages/numpy/_core/include': numpy.get_include(),
    }


def fix_file(path: pathlib.Path, replacements: dict) -> bool:
    """Rewrite one exported CMake file; return whether it changed."""
    text = path.read_text()
    fixed = text
    for suffix, real in replacements.items():
        fixed = re.sub(BUILD_PREFIX.pattern + '/' + re.escape(suffix), real, fixed)
    if fixed == text:
        return False
    path.write_text(fixed)
    return True


def main() -> int:
    prefix = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    replacements = real_paths()
    changed = [p for p in sorted(prefix.glob('share/*/cmake/*.cmake'))
               if fix_file(p, replacements)]
    left = [p for p in prefix.glob('share/*/cmake/*.cmake')
            if BUILD_PREFIX.search(p.read_text())]
    for path in left:
        print(f'warning: {path} still names a build-machine path', file=sys.stderr)
    if changed:
        print(f'fixed include paths in {len(changed)} exported CMake files of the ROS 2 wheels')
    return 0


if __name__ == '__main__':
    sys.exit(main())
