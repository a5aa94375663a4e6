"""
Every package declares what its code imports, so that rosdep (and a pip step) installs it.

A ROS package is declared by its name, a Python library by its rosdep key where rosdistro has
one (rosdep/python.yaml), and otherwise in a ``<!-- pip: NAME ... -->`` line, NAME being the
pip name pinned in requirements/python.in (torch too: rosdep's python3-torch installs the
distribution's torch, not the tested one). Optional extras, imported only where a user asks for
them, are named in an ``<!-- optional: NAME ... -->`` line.
"""

import ast
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = sorted(path.parent for path in (ROOT / 'src').glob('*/package.xml')
                  if (path.parent / path.parent.name).is_dir())

# Python modules of ROS packages whose package name differs from the module's.
ROS_PACKAGE_OF_MODULE = {'moveit': 'moveit_py'}
# Python libraries: the rosdep key that installs them (rosdistro's rosdep/python.yaml).
ROSDEP_KEYS = {'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'scipy': 'python3-scipy',
               'PIL': 'python3-pil', 'cv2': 'python3-opencv',
               'matplotlib': 'python3-matplotlib', 'msgpack': 'python3-msgpack',
               'websockets': 'python3-websockets', 'mujoco': 'python3-mujoco-pip'}
# Python libraries without a rosdep key (or whose key installs another version): pip names.
PIP_NAMES = {'torch': 'torch', 'safetensors': 'safetensors', 'mcap': 'mcap',
             'metaworld': 'metaworld', 'gym_hil': 'gym-hil', 'lerobot': 'lerobot',
             'torchvision': 'torchvision', 'timm': 'timm', 'huggingface_hub': 'huggingface-hub'}
# Modules that are ROS packages (distributions have them; the PyPI wheels most of them).
ROS_MODULES = {'rclpy', 'std_msgs', 'std_srvs', 'geometry_msgs', 'sensor_msgs',
               'trajectory_msgs', 'builtin_interfaces', 'rcl_interfaces', 'tf2_ros',
               'ament_index_python', 'launch', 'launch_ros', 'moveit', 'moveit_msgs',
               'moveit_configs_utils', 'cv_bridge'}


def _imports(package: pathlib.Path):
    """Return {top-level module: a file importing it} of a package's code (tests left out)."""
    found = {}
    for path in sorted((package / package.name).rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names and top != package.name:
                    found.setdefault(top, path.relative_to(ROOT))
    return found


def _declared(package: pathlib.Path):
    """Return (dependency names, pip names, optional names) of a package.xml."""
    text = (package / 'package.xml').read_text()
    depends = set(re.findall(r'<(?:exec_|build_)?depend>\s*([\w-]+)\s*</', text))

    def listed(kind):
        return {name for line in re.findall(rf'<!--\s*{kind}:\s*([^(>]*)', text)
                for name in line.replace(',', ' ').split()}
    return depends, listed('pip'), listed('optional')


def _pinned():
    text = (ROOT / 'requirements' / 'python.in').read_text()
    return {line.split('==')[0].strip().lower() for line in text.splitlines()
            if '==' in line and not line.lstrip().startswith('#')}


@pytest.mark.parametrize('package', PACKAGES, ids=lambda path: path.name)
def test_every_import_of_a_package_is_declared_in_its_manifest(package):
    depends, pip, optional = _declared(package)
    missing = []
    for module, where in _imports(package).items():
        if module.startswith('hilresrl') or module in ROS_MODULES:
            name = ROS_PACKAGE_OF_MODULE.get(module, module)
            if name not in depends and name not in optional:
                missing.append(f'{name} (imported in {where}): <exec_depend>{name}'
                               '</exec_depend>, or <!-- optional: ... --> where it is one')
        elif module in ROSDEP_KEYS:
            if ROSDEP_KEYS[module] not in depends and module not in optional:
                missing.append(f'{module} (imported in {where}): '
                               f'<exec_depend>{ROSDEP_KEYS[module]}</exec_depend>')
        elif module in PIP_NAMES:
            if PIP_NAMES[module] not in pip | optional:
                missing.append(f'{module} (imported in {where}): <!-- pip: '
                               f'{PIP_NAMES[module]} --> or <!-- optional: ... -->')
        else:
            missing.append(f'{module} (imported in {where}): unknown to this test; add it '
                           'to the tables above and to the manifest')
    assert not missing, f'{package.name}/package.xml lacks:\n' + '\n'.join(missing)


@pytest.mark.parametrize('package', PACKAGES, ids=lambda path: path.name)
def test_what_a_manifest_leaves_to_pip_is_pinned(package):
    _, pip, _ = _declared(package)
    assert pip <= _pinned(), f'not in requirements/python.in: {sorted(pip - _pinned())}'
