"""
The LeRobot tests, run in the LeRobot environment: the adapter against LeRobot itself.

LeRobot 0.6.1 wants Python 3.12 and torch < 2.12, so it lives in a virtual environment of its
own (scripts/setup-lerobot.sh; `make test` makes it first). The tests marked ``lerobot`` skip in
the suite's environment, which has no LeRobot; this test runs them in that environment and
fails with their output if any fails there, or if none ran.
"""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV = pathlib.Path(os.environ.get('HILRESRL_LEROBOT_VENV', ROOT / '.venv-lerobot'))
LEROBOT_TESTS = ['src/hilresrl_policy/test/test_lerobot_adapter.py',
                 'src/hilresrl_recording/test/test_lerobot_dataset.py']


@pytest.mark.timeout(600)
def test_the_lerobot_tests_pass_in_the_lerobot_environment():
    python = VENV / 'bin' / 'python'
    if not python.is_file():
        pytest.skip(f'no LeRobot environment at {VENV}: scripts/setup-lerobot.sh makes it '
                    '(make test does)')
    environment = {name: value for name, value in os.environ.items()
                   if name not in ('PYTHONPATH', 'VIRTUAL_ENV', 'PYTHONHOME')
                   and not name.startswith(('ROS_', 'AMENT_', 'COLCON_'))}
    result = subprocess.run(
        [str(python), '-m', 'pytest', '-q', '-m', 'lerobot', '-p', 'no:cacheprovider',
         *LEROBOT_TESTS], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=570)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert ' passed' in result.stdout and ' skipped' not in result.stdout, output
