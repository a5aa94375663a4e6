"""The test harness's background processes: a hang fails the test and says where it hung."""

import sys

import pytest

HANGING = 'import time\ndef stuck_in_here():\n    time.sleep(60)\nstuck_in_here()\n'


def test_a_process_that_does_not_end_fails_with_the_stack_where_it_hangs(launch_process):
    process = launch_process([sys.executable, '-c', HANGING])
    with pytest.raises(AssertionError, match='still ran 1 s later') as failure:
        process.wait(1.0)
    assert 'stuck_in_here' in str(failure.value)  # the faulthandler's stack of the process
    assert process.process.poll() is not None  # and it is gone
