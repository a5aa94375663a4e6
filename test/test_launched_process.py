"""The test harness's background processes: a hang fails the test and says where it hung."""

import pathlib
import subprocess
import sys

import pytest

HANGING = 'import time\ndef stuck_in_here():\n    time.sleep(60)\nstuck_in_here()\n'


def test_a_process_that_does_not_end_fails_with_the_stack_where_it_hangs(launch_process):
    process = launch_process([sys.executable, '-c', HANGING])
    with pytest.raises(AssertionError, match='still ran 1 s later') as failure:
        process.wait(1.0)
    assert 'stuck_in_here' in str(failure.value)  # the faulthandler's stack of the process
    assert process.process.poll() is not None  # and it is gone


def test_started_processes_take_ctrl_c_even_from_a_runner_started_in_the_background():
    # The runner of `nohup make test &` has SIGINT ignored; what it starts must not inherit that.
    script = (
        'import signal, subprocess, sys\n'
        'signal.signal(signal.SIGINT, signal.SIG_IGN)\n'
        f'sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parents[1])!r})\n'
        'import conftest\n'
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        'import time; time.sleep(1.0)\n'
        'child.send_signal(signal.SIGINT)\n'
        'sys.exit(0 if child.wait(timeout=20) != 0 else 1)\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
