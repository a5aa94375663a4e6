"""
Fixtures shared by the tests of every hilresrl package.

Tests that talk over DDS take ``ros_domain_id`` (or ``ros_context``): each gets a ROS domain of
its own, so tests never see each other's nodes, and discovery stays on this host.
"""

import importlib.util
import itertools
import os
import re
import signal
import subprocess
import threading
import time
from typing import Callable, List, Optional

import pytest

# The processes the tests start must take SIGINT as Ctrl-C. A test runner started in the
# background (with & or nohup) has it ignored, and a child inherits an ignored signal through
# exec; a handled one it gets back as the default, which Python turns into KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Where ROS 2 is not installed (the GPU machine; the Python 3.10 and 3.12 install checks of
# test/test_python_versions.py), a test that needs it is reported skipped, naming the missing
# package, and every other test runs. With ROS 2 installed nothing changes.
ROS_INSTALLED = importlib.util.find_spec('rclpy') is not None
ROS_PACKAGE = re.compile(r'(rclpy|rcl_interfaces|builtin_interfaces|launch|launch_\w+|ros2\w*'
                         r'|ament_\w+|rosidl_\w+|rosbag2_\w+|\w+_msgs|\w+_srvs)$')
NO_MODULE = re.compile(r"No module named '([\w.]+)'")


def _missing_ros_package(error_text: str) -> Optional[str]:
    """Return the ROS package whose absence the error names, if it names one."""
    match = NO_MODULE.search(error_text)
    root = match.group(1).split('.')[0] if match else ''
    return root if ROS_PACKAGE.match(root) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Report a test module that imports ROS 2 where it is missing as skipped."""
    outcome = yield
    report = outcome.get_result()
    missing = None if ROS_INSTALLED or not report.failed else \
        _missing_ros_package(str(report.longrepr))
    if missing:
        report.outcome = 'skipped'
        report.longrepr = (str(collector.path), 0, f'Skipped: needs ROS 2 ({missing} is not '
                           'installed)')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Report a test (or its fixture) that imports ROS 2 where it is missing as skipped."""
    outcome = yield
    report = outcome.get_result()
    if ROS_INSTALLED or not report.failed or call.excinfo is None:
        return
    error, missing = call.excinfo.value, None
    while error is not None and missing is None:  # the error, or one it was raised from
        if isinstance(error, ModuleNotFoundError):
            missing = _missing_ros_package(str(error))
        error = error.__cause__ or error.__context__
    if missing:
        report.outcome = 'skipped'
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f'Skipped: needs ROS 2 ({missing} is not installed)')


# Fast DDS accepts domain ids 0-232 on Linux; start at an offset drawn from the process id, so
# that two test sessions on one machine are unlikely to share a domain.
_DOMAIN_IDS = itertools.count(1 + os.getpid() % 100)


def _next_domain_id() -> int:
    return 1 + (next(_DOMAIN_IDS) - 1) % 200


def wait_for(predicate: Callable[[], bool], timeout_s: float, spin: Callable[[], None] = None,
             message: str = 'condition') -> None:
    """Wait until predicate() holds, spinning between checks; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout_s:.0f} s waiting for {message}')
        if spin is not None:
            spin()
        else:
            time.sleep(0.05)


@pytest.fixture
def ros_domain_id(monkeypatch) -> int:
    """Give the test its own ROS_DOMAIN_ID (also for the processes it starts)."""
    domain_id = _next_domain_id()
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain_id))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if os.environ.get('ROS_DISTRO') == 'humble':  # Humble predates the discovery range
        monkeypatch.setenv('ROS_LOCALHOST_ONLY', '1')
    return domain_id


@pytest.fixture
def ros_context(ros_domain_id):
    """Initialise rclpy in a context of the test's own domain; shut it down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    yield context
    context.try_shutdown()


class Probe:
    """A node of the test's own, with an executor to spin it until something happens."""

    def __init__(self, context, name: str = 'probe'):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        self.node = Node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._spun: List = []  # nodes under test spun here, destroyed with the probe

    def spin(self, node):
        """Spin a node under test with the probe's executor until the probe closes; return it."""
        self.executor.add_node(node)
        self._spun.append(node)
        return node

    def spin_once(self) -> None:
        """Handle whatever is ready, waiting at most a tenth of a second."""
        self.executor.spin_once(timeout_sec=0.1)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 30.0,
                 message: str = 'condition') -> None:
        """Spin until predicate() holds; fail the test at the deadline."""
        wait_for(predicate, timeout_s, self.spin_once, message)

    def call(self, service_type, name: str, request, timeout_s: float = 30.0):
        """Call a service, waiting for it to appear; return the response."""
        client = self.node.create_client(service_type, name)
        self.wait_for(client.service_is_ready, timeout_s, f'service {name}')
        future = client.call_async(request)
        self.wait_for(future.done, timeout_s, f'response of {name}')
        return future.result()

    def close(self) -> None:
        """Destroy the nodes under test, then the probe's own."""
        for node in self._spun:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.remove_node(self.node)
        self.node.destroy_node()


@pytest.fixture
def probe(ros_context):
    """Give the test a node of its own on its domain."""
    node = Probe(ros_context)
    yield node
    node.close()


class LaunchedProcess:
    """Run a command in the background and collect its output line by line."""

    def __init__(self, command: List[str], env: Optional[dict] = None, stdin=None):
        self.lines: List[str] = []
        # A Python process that hangs prints every thread's stack on SIGABRT (wait() sends it).
        self.process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env=dict(env or os.environ, PYTHONFAULTHANDLER='1'),
                                        start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip('\n'))

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return '\n'.join(self.lines)

    def interrupt(self, timeout_s: float = 30.0) -> int:
        """Send SIGINT (as Ctrl-C would) and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 30.0) -> int:
        """
        Wait for the process to end and its output to be read; return its exit status.

        A process still running after ``timeout_s`` fails the test with its output and, for a
        Python process, the stacks of its threads at that moment: where it hung.
        """
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                self.kill()
            self._reader.join(timeout=5.0)
            raise AssertionError(f'{" ".join(self.process.args)} still ran {timeout_s:g} s '
                                 'later; its output, then its stacks:\n' + self.output) from None
        self._reader.join(timeout=5.0)
        return code

    def kill(self) -> None:
        """Kill the process and everything in its session."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def launch_process():
    """Start background commands; anything still running at the end is killed."""
    started: List[LaunchedProcess] = []

    def start(command: List[str], env: Optional[dict] = None, stdin=None) -> LaunchedProcess:
        process = LaunchedProcess(command, env, stdin)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def seeing_policy_file():
    """
    Return save(path, seed): a TorchScript base policy that exports its vision encoder.

    Its forward maps a state (1, 4) to 2 action axes; its exported ``encode_images`` maps
    (batch, 3, H, W) pixels in [0, 1] to 8 features (a strided convolution, pooled), normalising
    them its own way first, as a VLA's vision tower does. Another seed: other weights.
    """
    import torch

    class SeeingPolicy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.act = torch.nn.Linear(4, 2)
            self.vision = torch.nn.Conv2d(3, 8, 4, stride=4)

        def forward(self, state: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.act(state))

        @torch.jit.export
        def encode_images(self, images: torch.Tensor) -> torch.Tensor:
            features = torch.relu(self.vision(images * 2.0 - 1.0))
            return features.mean(dim=(2, 3))

    def save(path, seed: int = 0):
        torch.manual_seed(seed)
        torch.jit.save(torch.jit.script(SeeingPolicy().eval()), str(path))
        return path

    return save
