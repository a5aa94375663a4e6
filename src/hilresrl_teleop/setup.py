from setuptools import find_packages, setup

package_name = 'hilresrl_teleop'

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
    description=('The person-to-robot path: SpaceMouse input, intervention arbitration, the '
                 'safety filter on every command and the command interfaces to the robot.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            # The episode manager lives in hilresrl_episodes; its old name still runs.
            'episode_manager = hilresrl_episodes.episode_manager_node:main',
            'intervention_arbiter = hilresrl_teleop.intervention_arbiter_node:main',
            'keyboard = hilresrl_teleop.keyboard_node:main',
            'spacemouse = hilresrl_teleop.spacemouse_node:main',
            'ee_pose = hilresrl_teleop.ee_pose_node:main',
            'say = hilresrl_teleop.say_node:main',
        ],
    },
)
