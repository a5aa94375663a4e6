"""Bringup of hilresrl: installs the repository's launch/ and config/ into share/hilresrl."""

import os
from pathlib import Path

from setuptools import find_packages, setup

package_name = 'hilresrl'
# launch/ and config/ live at the repository root (two levels up); data_files takes paths
# relative to this file, as colcon runs setup.py from the package directory.
repository = Path('..', '..')


def tree(folder: str):
    """Return data_files entries installing repository/folder into share/hilresrl/folder."""
    entries = []
    for directory, _, files in os.walk(repository / folder):
        relative = Path(directory).relative_to(repository)
        entries.append((str(Path('share', package_name, relative)),
                        [str(Path(directory, name)) for name in sorted(files)]))
    return entries


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # A node executable, where ros2 run and launch_ros look (the command above is in bin/).
        ('lib/' + package_name, ['scripts/residual_in_arbiter']),
    ] + tree('launch') + tree('config'),
    install_requires=['setuptools', 'PyYAML'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='hilresrl maintainers',
    maintainer_email='maintainers@hilresrl.dev',
    description='Node graph, launch files, cell profiles and the hilresrl command line.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'hilresrl = hilresrl.cli:main',
        ],
    },
)
