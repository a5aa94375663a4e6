"""keyboard over DDS: keys typed at a terminal become a success signal and service calls."""

import os
import pty
import subprocess

from hilresrl_common.qos import COMMAND_QOS
from hilresrl_msgs.msg import EpisodeOutcome
from hilresrl_msgs.srv import EndEpisode
from std_msgs.msg import Bool
from std_srvs.srv import Trigger


def test_keys_mark_success_end_episodes_and_latch_the_estop(probe):
    successes, ends, estops = [], [], []

    def on_end(request, response):
        ends.append(request.outcome.value)
        response.success = True
        return response

    def on_estop(request, response):
        estops.append(True)
        response.success = True
        return response

    probe.node.create_subscription(Bool, 'keyboard/success', successes.append, COMMAND_QOS)
    probe.node.create_service(EndEpisode, 'end_episode', on_end)
    probe.node.create_service(Trigger, 'estop', on_estop)
    main_end, terminal = pty.openpty()  # the node needs a terminal, as a person has one
    node = subprocess.Popen([_executable()], stdin=terminal, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Keys typed as soon as the node is on the graph count: the node waits for the
        # services and the subscriber its keys go to.
        probe.wait_for(lambda: probe.node.count_publishers('keyboard/success') == 1, 60,
                       'the keyboard node')
        os.write(main_end, b's')
        probe.wait_for(lambda: successes, message='the success key')
        os.write(main_end, b'f')
        probe.wait_for(lambda: ends == [EpisodeOutcome.FAILURE], message='the failure key')
        os.write(main_end, b'r')
        probe.wait_for(lambda: ends[-1:] == [EpisodeOutcome.ABORT], message='the reset key')
        os.write(main_end, b'e')
        probe.wait_for(lambda: estops, message='the e-stop key')
    finally:
        node.terminate()
        node.wait(timeout=30)
        os.close(main_end)
        os.close(terminal)


def test_a_key_without_its_service_is_reported_and_the_node_keeps_running(
        probe, launch_process):
    main_end, terminal = pty.openpty()
    try:
        node = launch_process([_executable()], stdin=terminal)
        probe.wait_for(lambda: 'keys: s success' in node.output, 60, 'the keyboard node')
        os.write(main_end, b'f')  # no episode manager on this domain
        probe.wait_for(lambda: 'no end_episode service after 3 s: is the cell running?'
                       in node.output, 30, 'the missing service to be reported')
        assert node.process.poll() is None, node.output
    finally:
        os.close(main_end)
        os.close(terminal)


def test_without_a_terminal_it_says_so_and_exits():
    result = subprocess.run([_executable()], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert 'run it in a terminal of its own' in result.stdout + result.stderr


def _executable() -> str:
    from ament_index_python.packages import get_package_prefix
    return os.path.join(get_package_prefix('hilresrl_teleop'), 'lib', 'hilresrl_teleop',
                        'keyboard')
