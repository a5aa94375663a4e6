"""
Run a node graph as processes, the way ``ros2 launch`` would, where ``launch`` is missing.

Each node is its installed executable started with ``--ros-args``; their output is streamed with
the node's name in front, Ctrl-C (SIGINT) and SIGTERM are forwarded to every node with the same
escalation as launch (SIGINT, then SIGTERM, then SIGKILL), and a required node that exits takes
the graph down and is named in the exit status.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, IO, List, Optional

from .graph import GraphError, NodeSpec, write_inline_parameters


def _stop_with_launcher() -> None:
    """In the child before exec (Linux): get SIGTERM if the launcher dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def find_executable(package: str, executable: str) -> str:
    """Return the path of an installed node executable (lib/<package>/<executable>)."""
    try:
        from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    except ImportError as error:
        raise GraphError('ament_index_python is missing: source scripts/env.sh') from error
    try:
        prefix = get_package_prefix(package)
    except PackageNotFoundError as error:
        raise GraphError(f'package {package} is not installed; build the workspace and source '
                         'it (scripts/setup.sh, then source scripts/env.sh)') from error
    path = os.path.join(prefix, 'lib', package, executable)
    if not os.access(path, os.X_OK):
        raise GraphError(f'package {package} has no executable {executable} ({path})')
    return path


def node_command(spec: NodeSpec, executable_path: str,
                 inline_parameter_file: Optional[str]) -> List[str]:
    """Return the command line that starts one node with its names, parameters and remaps."""
    command = [executable_path, '--ros-args']
    if not spec.hosted:  # the nodes of a process of several keep their own names
        command += ['-r', f'__node:={spec.name}']
    command += ['-r', f'__ns:={spec.namespace}', '--log-level', spec.log_level]
    for path in spec.parameter_files:
        command += ['--params-file', path]
    if inline_parameter_file:
        command += ['--params-file', inline_parameter_file]
    for source, target in spec.remappings:
        command += ['-r', f'{source}:={target}']
    if os.environ.get('ROS_SECURITY_ENABLE', '').lower() == 'true':
        # SROS2: each node in its enclave of config/sros2/hilresrl.policy.xml, as the launch
        # files do.
        command += ['--enclave', f'/hilresrl/{spec.name}']
    return command


# How a node that was asked to stop may end: on its own, or by the signal that asked it.
STOPPED_AS_ASKED = (0, -signal.SIGINT, -signal.SIGTERM)


def ended_line(spec: NodeSpec, code: int) -> str:
    """Return the line that says a required node ended the run, and how."""
    verb = 'finished' if code == 0 else f'died (exit code {code})'
    return f'node {spec.full_name} ({spec.package}/{spec.executable}) {verb}; stopping the graph'


def run_status(ended_code: Optional[int], failed_while_stopping: Dict[str, int],
               say: Callable[[str], None]) -> int:
    """
    Say how the nodes stopped and return the launcher's exit status (both launchers').

    ``ended_code``: the exit code of the required node that ended the run, if one did (its
    own non-zero code, 1 for a signal); ``failed_while_stopping``: nodes that ended otherwise
    than as asked while the graph stopped (status 1).
    """
    for name, code in failed_while_stopping.items():
        say(f'node {name} exited with code {code} while stopping')
    if not failed_while_stopping:
        say('all nodes stopped')
    status = 1 if failed_while_stopping else 0
    if ended_code is not None:
        status = ended_code if ended_code > 0 else (1 if ended_code < 0 else status)
    return status


class _RunningNode:
    """One started node: its spec, process and log-forwarding thread."""

    def __init__(self, spec: NodeSpec, process: subprocess.Popen, thread: threading.Thread):
        self.spec = spec
        self.process = process
        self.thread = thread


class GraphProcesses:
    """Start, supervise and stop the processes of one node graph."""

    def __init__(self, specs: List[NodeSpec], output: IO[str] = sys.stdout,
                 sigint_timeout_s: float = 5.0, sigterm_timeout_s: float = 5.0):
        self._specs = specs
        self._output = output
        self._sigint_timeout_s = sigint_timeout_s
        self._sigterm_timeout_s = sigterm_timeout_s
        self._nodes: List[_RunningNode] = []
        self._output_lock = threading.Lock()
        self._wake = threading.Event()
        self._signals_received = 0
        self._tmp = tempfile.TemporaryDirectory(prefix='hilresrl-launch-')

    def say(self, line: str) -> None:
        """Write one line of the launcher's own, marked as such."""
        with self._output_lock:
            self._output.write(f'[hilresrl] {line}\n')
            self._output.flush()

    def run(self) -> int:
        """Start every node, supervise until shutdown, and return the exit status."""
        commands = [self._command(spec) for spec in self._specs]  # fail before starting any
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for spec, command in zip(self._specs, commands):
                self._start(spec, command)
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._tmp.cleanup()

    def _command(self, spec: NodeSpec) -> List[str]:
        if spec.command:  # a plain process, e.g. ros2 bag record
            if shutil.which(spec.command[0]) is None:
                raise GraphError(f'{spec.command[0]} is not installed: cannot start '
                                 f'{spec.full_name}')
            return list(spec.command)
        # (a program of another environment: LeRobot's base-policy node)
        executable = spec.program or find_executable(spec.package, spec.executable)
        return node_command(spec, executable, write_inline_parameters(spec, self._tmp.name))

    def _start(self, spec: NodeSpec, command: List[str]) -> None:
        environment = dict(os.environ, PYTHONUNBUFFERED='1',
                           RCUTILS_COLORIZED_OUTPUT='1' if self._output.isatty() else '0')
        # A session of its own, so that a terminal's Ctrl-C reaches only this launcher, which
        # then stops the nodes in order (as launch does) instead of all at once.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=True,
                                   preexec_fn=_stop_with_launcher if sys.platform == 'linux'
                                   else None)
        thread = threading.Thread(target=self._forward, args=(spec, process), daemon=True)
        thread.start()
        self._nodes.append(_RunningNode(spec, process, thread))
        program = spec.program or f'{spec.package}/{spec.executable}'
        self.say(f'started {spec.full_name} ({program}, pid {process.pid})')

    def _forward(self, spec: NodeSpec, process: subprocess.Popen) -> None:
        for raw in iter(process.stdout.readline, b''):
            with self._output_lock:
                self._output.write(f'[{spec.name}] {raw.decode(errors="replace").rstrip()}\n')
                self._output.flush()
        process.stdout.close()
        self._wake.set()

    def _on_signal(self, signum, frame) -> None:
        self._signals_received += 1
        self._wake.set()

    def _supervise(self) -> int:
        while True:
            if self._signals_received:
                self.say('shutdown requested, stopping the nodes')
                return self._stop_all()
            for node in self._nodes:
                code = node.process.poll()
                if code is None:
                    continue
                node.thread.join(timeout=1.0)
                if not node.spec.required:
                    self.say(f'{node.spec.full_name} exited with code {code}')
                    self._nodes.remove(node)
                    if node.spec.ends_run and not any(n.spec.ends_run for n in self._nodes):
                        self.say('every cell has finished; stopping the graph')
                        return self._stop_all()
                    break
                self.say(ended_line(node.spec, code))
                self._nodes.remove(node)
                return self._stop_all(ended_code=code)
            self._wake.wait(timeout=0.2)
            self._wake.clear()

    def _stop_all(self, ended_code: Optional[int] = None) -> int:
        """Stop the remaining nodes (the stop_last ones last); return the status."""
        first = [node for node in self._nodes if not node.spec.stop_last]
        self._stop([node for node in first if node.process.poll() is None])
        self._stop([node for node in self._nodes
                    if node.spec.stop_last and node.process.poll() is None])
        for node in self._nodes:
            node.thread.join(timeout=1.0)
        failed = {node.spec.full_name: node.process.returncode for node in self._nodes
                  if node.process.returncode not in STOPPED_AS_ASKED}
        return run_status(ended_code, failed, self.say)

    def _stop(self, running: List[_RunningNode]) -> None:
        """Stop nodes as launch does: SIGINT, then SIGTERM, then SIGKILL."""
        if not running:
            return
        self._send(running, signal.SIGINT)
        running = self._wait(running, self._sigint_timeout_s, patience=1)
        if running:
            self.say('still running after SIGINT, sending SIGTERM: '
                     + ', '.join(node.spec.full_name for node in running))
            self._send(running, signal.SIGTERM)
            # A second Ctrl-C still leaves the nodes their SIGTERM time: the arbiter sends the
            # robot its stop command on the way out. A third one kills at once.
            running = self._wait(running, self._sigterm_timeout_s, patience=2)
        if running:
            self.say('still running after SIGTERM, killing: '
                     + ', '.join(node.spec.full_name for node in running))
            self._send(running, signal.SIGKILL)
            self._wait(running, 5.0)

    def _send(self, nodes: List[_RunningNode], sig: int) -> None:
        for node in nodes:
            try:
                node.process.send_signal(sig)
            except ProcessLookupError:
                pass

    def _wait(self, nodes: List[_RunningNode], timeout_s: float,
              patience: int = 1) -> List[_RunningNode]:
        deadline = time.monotonic() + timeout_s
        while nodes and time.monotonic() < deadline:
            if self._signals_received > patience:  # one more Ctrl-C: stop waiting politely
                break
            nodes = [node for node in nodes if node.process.poll() is None]
            time.sleep(0.05)
        return [node for node in nodes if node.process.poll() is None]
