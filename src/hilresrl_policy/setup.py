from setuptools import find_packages, setup

package_name = 'hilresrl_policy'

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
    # LeRobot policies: an optional extra with its own Python (3.12) and torch (<2.12)
    extras_require={'test': ['pytest'],
                    'lerobot': ['lerobot[dataset,diffusion,training]==0.6.1'],
                    # a frozen pretrained image encoder (image_encoder.load_pretrained_encoder)
                    'pretrained_encoders': ['torchvision', 'timm']},
    maintainer='hilresrl maintainers',
    maintainer_email='maintainers@hilresrl.dev',
    description=('Base-policy node with adapters to any model (scripted, behaviour cloning, VLA '
                 'servers), behaviour cloning, the residual actor and the residual-policy node.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'base_policy_node = hilresrl_policy.base_policy_node:main',
            'residual_policy_node = hilresrl_policy.residual_policy_node:main',
            'policy_server = hilresrl_policy.policy_server:main',
        ],
        'hilresrl.base_policies': [
            'bc = hilresrl_policy.adapters.bc_policy:make_bc_policy',
            'openpi = hilresrl_policy.adapters.openpi_client:make_openpi_policy',
            'torch_module = hilresrl_policy.adapters.torch_module:make_torch_module_policy',
            'lerobot = hilresrl_policy.adapters.lerobot_policy:make_lerobot_policy',
            'flow_bc = hilresrl_policy.adapters.flow_policy:make_flow_policy',
        ],
    },
)
