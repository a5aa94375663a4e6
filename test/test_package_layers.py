"""The packages stand in floors: each imports only packages below it that its package.xml names."""

import ast
import pathlib
import xml.etree.ElementTree as ElementTree

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / 'src'
# Lowest first; a package may import only from floors below its own.
FLOORS = (
    ('hilresrl_msgs',),
    ('hilresrl_common',),
    ('hilresrl_policy', 'hilresrl_teleop', 'hilresrl_recording', 'hilresrl_episodes'),
    ('hilresrl_learner', 'hilresrl_sim'),
    ('hilresrl',),
)
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}
# Packages that must never need torch (the safety-critical path and the ground under it).
NO_TORCH = ('hilresrl_common', 'hilresrl_teleop', 'hilresrl_episodes', 'hilresrl_recording')


def _package_dirs():
    return sorted(path for path in SRC.iterdir() if (path / 'package.xml').is_file())


def _imports(package_dir: pathlib.Path):
    """Yield (file, top-level module) of every import in a package's code (not its tests)."""
    code = package_dir / package_dir.name
    for path in sorted(code.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split('.')[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.module.split('.')[0]


def _exec_depends(package_dir: pathlib.Path):
    root = ElementTree.parse(package_dir / 'package.xml').getroot()
    return {element.text for element in root if element.tag in ('exec_depend', 'depend')}


def test_every_package_has_a_floor():
    assert sorted(FLOOR) == sorted(path.name for path in _package_dirs())


@pytest.mark.parametrize('package_dir', _package_dirs(), ids=lambda path: path.name)
def test_imports_go_down_and_are_declared(package_dir):
    own = package_dir.name
    depends = _exec_depends(package_dir)
    wrong = []
    for path, module in _imports(package_dir):
        if module not in FLOOR or module == own:
            continue
        if FLOOR[module] >= FLOOR[own]:
            wrong.append(f'{path.relative_to(SRC)} imports {module} (same floor or above)')
        elif module not in depends:
            wrong.append(f'{path.relative_to(SRC)} imports {module}, not in its package.xml')
    assert wrong == []


@pytest.mark.parametrize('package', NO_TORCH)
def test_ground_and_teleop_need_no_torch(package):
    users = [str(path.relative_to(SRC)) for path, module in _imports(SRC / package)
             if module == 'torch']
    assert users == []
    assert 'python3-torch' not in _exec_depends(SRC / package)
