from setuptools import find_packages, setup

package_name = 'hilresrl_sim'

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
    description=('A simulated robot cell (MuJoCo: Meta-World and gym-hil tasks) that speaks the '
                 'same topics and services as a real ROS 2 driver stack; its scripted experts, '
                 'demonstrations, base-policy builder, simulated operator and headless loop.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_cell = hilresrl_sim.sim_cell_node:main',
            'simulated_operator = hilresrl_sim.simulated_operator_node:main',
        ],
        'hilresrl.base_policies': [
            'scripted = hilresrl_sim.scripted_policy:make_scripted_policy',
        ],
    },
)
