from setuptools import find_packages, setup

package_name = 'hilresrl_recording'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='hilresrl maintainers',
    maintainer_email='maintainers@hilresrl.dev',
    description=('rosbag2 bags without rosbag2_py (MCAP and SQLite, read and written), the '
                 'recorder and player nodes, export to LeRobot datasets, and the bag-folder '
                 'rules of a run.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'recorder = hilresrl_recording.recorder_node:main',
            'replay = hilresrl_recording.bag_player_node:main',
            'export = hilresrl_recording.export:main',
            'bag_info = hilresrl_recording.bag:main',
        ],
    },
)
