from setuptools import find_packages, setup

package_name = 'hilresrl_episodes'

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
    description=('Episode and reward control: resets, time limits, success labels, evaluation '
                 'rounds, and the transitions that the learner learns from.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'episode_manager = hilresrl_episodes.episode_manager_node:main',
        ],
    },
)
