from setuptools import find_packages, setup

package_name = 'hilresrl_common'

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
    description=('The ground floor every hilresrl package stands on: node start-up and shutdown,'
                 ' QoS profiles, parameter declarations, message conversions, observations, '
                 'success statistics, refinement commands, the residual contract, the '
                 'demonstrations file format and the home and run folders. No torch.'),
    license='Apache-2.0',
)
