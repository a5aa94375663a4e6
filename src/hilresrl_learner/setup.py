from setuptools import find_packages, setup

package_name = 'hilresrl_learner'

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
    description=('Learner node: replay buffers, residual off-policy RL from sparse rewards and '
                 'human interventions, checkpoints and weight broadcast, and offline learning '
                 'from recorded runs.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'learner_node = hilresrl_learner.learner_node:main',
            # The recording tools live in hilresrl_recording; their old names still run.
            'recorder = hilresrl_recording.recorder_node:main',
            'replay = hilresrl_recording.bag_player_node:main',
            'export = hilresrl_recording.export:main',
            'bag_info = hilresrl_recording.bag:main',
        ],
    },
)
