"""
The distribution route installs on Humble's and Jazzy's Pythons, and the suite's core runs there.

For Python 3.10 (Humble, Ubuntu 22.04) and 3.12 (Jazzy and Kilted, Ubuntu 24.04), found on PATH
or under pyenv: a virtual environment gets requirements/python-distribution.txt installed for
real, with this machine's pip as a user's would be; every module of the suite imports there
unless it needs ROS 2 (which these environments lack: no distribution is installed here); and
the test suite runs there, the tests that need ROS 2 reported skipped. The environments are kept
in .venv-checks/ and made again only when the lock or the interpreter changes.
"""

import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCK = ROOT / 'requirements' / 'python-distribution.txt'
CHECKS = ROOT / '.venv-checks'
PACKAGES = sorted(path.parent.name for path in (ROOT / 'src').glob('*/setup.py'))
# What the distributions' own Python packages were built with (python3-numpy on Ubuntu 22.04
# and 24.04): the lock must keep it.
DISTRIBUTION_NUMPY_MAJOR = 1


def _load(path: pathlib.Path):
    """Import a module of the repository that is not on the path (a script, the conftest)."""
    spec = importlib.util.spec_from_file_location(f'checked_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Which top-level packages are ROS 2's: the same rule as the conftest's skips.
ROS_PACKAGE = _load(ROOT / 'conftest.py').ROS_PACKAGE


def _clean_environment(**extra) -> dict:
    """Return this process's environment without its virtual environment, ROS 2 or workspace."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(('ROS_', 'RMW_', 'AMENT_', 'COLCON_', 'CMAKE_'))
                   and name not in ('PYTHONPATH', 'VIRTUAL_ENV', 'LD_LIBRARY_PATH',
                                    'PYTHONHOME')}
    venv_bin = str(pathlib.Path(sys.prefix) / 'bin')
    environment['PATH'] = os.pathsep.join(
        entry for entry in environment.get('PATH', '').split(os.pathsep) if entry != venv_bin)
    environment.update(extra)
    return environment


def _source_path() -> str:
    """PYTHONPATH that puts the suite's packages on the path, as the workspace build does."""
    return os.pathsep.join(str(ROOT / 'src' / package) for package in PACKAGES)


@pytest.fixture(scope='module', params=['3.10', '3.12'])
def distribution_python(request) -> pathlib.Path:
    """Return the interpreter of a virtual environment with the distribution lock installed."""
    version = request.param
    interpreter = _load(ROOT / 'scripts' / 'lock_requirements.py').find_interpreter(
        version)
    if interpreter is None:
        pytest.skip(f'no Python {version} here (install python{version}, or pyenv install '
                    f'{version}) to check the route of a distribution that uses it')
    venv = CHECKS / f'py{version}'
    stamp = hashlib.sha256(LOCK.read_bytes() + interpreter.encode()).hexdigest()
    stamp_file = venv / '.hilresrl-lock'
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([interpreter, '-m', 'venv', str(venv)], check=True, timeout=300)
        installed = subprocess.run(
            [str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet',
             '--disable-pip-version-check', '-r', str(LOCK)],
            capture_output=True, text=True, timeout=1500, env=_clean_environment())
        assert installed.returncode == 0, installed.stderr[-4000:]
        stamp_file.write_text(stamp)
    # The suite's packages as the workspace build installs them (their entry points too);
    # again every time, so that they are this checkout's. Built from copies: setuptools
    # writes build/ and egg-info/ beside the sources it builds.
    python = venv / 'bin' / 'python'
    with tempfile.TemporaryDirectory() as copies:
        packages = [shutil.copytree(ROOT / 'src' / package, pathlib.Path(copies) / package,
                                    ignore=shutil.ignore_patterns('test', '__pycache__'))
                    for package in PACKAGES]
        installed = subprocess.run(
            [str(python), '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check',
             '--no-deps', '--no-build-isolation', '--force-reinstall', *map(str, packages)],
            capture_output=True, text=True, timeout=600, env=_clean_environment())
    assert installed.returncode == 0, installed.stderr[-4000:]
    return python


IMPORT_ALL = textwrap.dedent('''
    import importlib
    import json
    import pathlib
    import re
    import sys

    ROS = re.compile(sys.argv[2])
    BLOCKED = set(sys.argv[3].split(',')) if sys.argv[3] else set()


    class Blocked:
        """Refuse the named packages, as a machine without them would."""

        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f'No module named {name!r}', name=name)
            return None


    sys.meta_path.insert(0, Blocked())
    results = {}
    for package in sys.argv[1].split(','):
        folder = pathlib.Path('src') / package / package
        for path in sorted(folder.rglob('*.py')):
            parts = path.relative_to(folder.parent).with_suffix('').parts
            name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
            try:
                importlib.import_module(name)
                results[name] = 'imported'
            except ModuleNotFoundError as error:
                root = (error.name or '').split('.')[0]
                results[name] = 'needs ROS 2' if ROS.match(root) else f'missing {error.name}'
            except Exception as error:  # the point: report every other failure, whatever it is
                results[name] = f'{type(error).__name__}: {error}'
    print(json.dumps(results))
''')


def _import_every_module(python, blocked=()) -> dict:
    result = subprocess.run([str(python), '-c', IMPORT_ALL, ','.join(PACKAGES),
                             ROS_PACKAGE.pattern, ','.join(blocked)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=_clean_environment(PYTHONPATH=_source_path(),
                                                   MUJOCO_GL='disable'))
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _ros_packages_here() -> list:
    """Return the top-level ROS 2 packages this environment has, to block them."""
    names = set()
    for entry in map(pathlib.Path, sys.path):
        if entry.is_dir():
            names.update(child.name for child in entry.iterdir()
                         if ROS_PACKAGE.match(child.name) and child.is_dir())
    return sorted(names)


@pytest.mark.timeout(1800)
def test_every_module_that_needs_no_ros_imports_on_the_distribution_python(
        distribution_python):
    there = _import_every_module(distribution_python)
    # The same modules imported here with every ROS 2 package refused: a module that imports
    # here but not there broke on that Python or its pins; one that needs ROS 2 needs it here.
    here = _import_every_module(sys.executable, blocked=_ros_packages_here())
    assert set(there) == set(here)
    failed = {name: outcome for name, outcome in there.items()
              if outcome not in ('imported', 'needs ROS 2')}
    assert not failed
    assert {name for name, outcome in there.items() if outcome == 'imported'} == \
        {name for name, outcome in here.items() if outcome == 'imported'}
    assert sum(outcome == 'imported' for outcome in there.values()) >= 60
    numpy = subprocess.run([str(distribution_python), '-c', 'import numpy, torch, mujoco, scipy; '
                            'print(numpy.__version__)'], capture_output=True, text=True,
                           timeout=300, env=_clean_environment())
    assert numpy.returncode == 0, numpy.stderr[-2000:]
    assert int(numpy.stdout.split('.')[0]) == DISTRIBUTION_NUMPY_MAJOR


@pytest.mark.timeout(1800)
def test_the_tests_that_need_no_ros_pass_on_the_distribution_python(distribution_python):
    result = subprocess.run(
        [str(distribution_python), '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         # (not the checks of this machine's own environment and setup)
         '--deselect', 'test/test_python_versions.py', '--deselect',
         'test/test_setup_script.py', '-m', 'not linter'],
        cwd=ROOT, capture_output=True, text=True, timeout=1700,
        env=_clean_environment(PYTHONPATH=_source_path()))
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ''
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = int(re.search(r'(\d+) passed', summary).group(1))
    assert passed >= 200, summary
    # Every skip there is for ROS 2 or for what was already skipped on the main machine.
    reasons = re.findall(r'^SKIPPED \[\d+\] [^:]+:\d+: (.*)$', result.stdout, re.MULTILINE)
    assert any('needs ROS 2' in reason for reason in reasons)
