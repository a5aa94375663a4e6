"""scripts/setup.sh refuses what it cannot work with in one line; the CMake path fix is exact."""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETUP = ROOT / 'scripts' / 'setup.sh'


def _setup_with(tmp_path, **environment):
    result = subprocess.run([shutil.which('bash'), str(SETUP)], capture_output=True, text=True,
                            timeout=120,
                            env=dict(os.environ, HILRESRL_VENV=str(tmp_path / 'venv'),
                                     **environment))
    return result


def _fake_python(tmp_path, version: str) -> str:
    fake = tmp_path / 'python-fake'
    fake.write_text(f'#!/bin/sh\necho {version}\n')
    fake.chmod(0o755)
    return str(fake)


def test_missing_interpreter_is_one_line(tmp_path):
    result = _setup_with(tmp_path, PYTHON='python-that-does-not-exist')
    assert result.returncode == 1
    assert result.stderr.count('\n') == 1
    assert "no 'python-that-does-not-exist' found: install Python 3.10, 3.11 or 3.12" in \
        result.stderr


def test_unsupported_python_is_one_line(tmp_path):
    result = _setup_with(tmp_path, PYTHON=_fake_python(tmp_path, '3.9'))
    assert result.returncode == 1
    assert result.stderr.count('\n') == 1
    assert 'Python 3.9 is not supported' in result.stderr
    assert not (tmp_path / 'venv').exists()


def test_missing_cmake_is_one_line(tmp_path):
    bin_dir = tmp_path / 'bin'  # a PATH with the compilers and Python but no cmake
    bin_dir.mkdir()
    for tool in ('cc', 'c++', 'sha256sum', 'sed', 'sort', 'cat', 'cut', 'dirname'):
        found = subprocess.run(['bash', '-c', f'command -v {tool}'], capture_output=True,
                               text=True).stdout.strip()
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / 'python3').symlink_to(sys.executable)
    result = _setup_with(tmp_path, PATH=str(bin_dir))
    assert result.returncode == 1
    assert result.stderr.strip() == 'setup: no CMake: apt install cmake (3.16 or newer)'


def test_wheel_cmake_paths_are_rewritten_once(tmp_path):
    from importlib import util
    spec = util.spec_from_file_location('fix', ROOT / 'scripts' / 'fix_wheel_cmake_paths.py')
    fix = util.module_from_spec(spec)
    spec.loader.exec_module(fix)

    version = f'python{sys.version_info.major}.{sys.version_info.minor}'
    exported = tmp_path / 'share' / 'std_msgs' / 'cmake' / 'export_pyExport.cmake'
    exported.parent.mkdir(parents=True)
    exported.write_text(
        'INTERFACE_INCLUDE_DIRECTORIES "/opt/python/cp311-cp311/include/'
        f'{version};/opt/python/cp311-cp311/lib/{version}/site-packages/numpy/_core/include"\n')
    replacements = fix.real_paths()
    assert fix.fix_file(exported, replacements) is True
    text = exported.read_text()
    assert '/opt/python' not in text
    assert sysconfig.get_paths()['include'] in text
    assert fix.fix_file(exported, replacements) is False


@pytest.mark.skipif(not (ROOT / 'install' / 'setup.bash').exists(),
                    reason='the workspace has not been built')
def test_second_setup_run_changes_nothing():
    before = (ROOT / 'install').stat().st_mtime_ns
    result = subprocess.run(['bash', str(SETUP)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'requirements up to date' in result.stdout
    assert 'workspace up to date' in result.stdout
    assert (ROOT / 'install').stat().st_mtime_ns == before
