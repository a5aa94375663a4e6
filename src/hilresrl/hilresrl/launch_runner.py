"""
Run a job's graph under the ROS 2 launch system, in this process, as ``ros2 launch`` does.

hilresrl launch hands the launch files' own description (launch_description.generate_for) to a
LaunchService, and turns how the nodes exit into the process launcher's exit status and lines.
"""

import signal
import sys
from typing import Dict, IO, List, Optional

from .graph import NodeSpec, parse_assignments
from .launch_description import generate_for
from .process_launcher import ended_line, run_status, STOPPED_AS_ASKED


class NodeExits:
    """How the nodes of one launch exited, and the exit status that follows (as GraphProcesses)."""

    def __init__(self, output: IO[str] = sys.stdout):
        self._output = output
        # Set once shutdown is asked for (Ctrl-C, SIGTERM, the last cell) or a required node
        # has ended the run: exits from then on are the graph stopping.
        self.stopping = False
        self._ended_code: Optional[int] = None  # of the required node that ended the run
        self._failed_while_stopping: Dict[str, int] = {}

    def say(self, line: str) -> None:
        """Write one line of hilresrl's own, marked as such."""
        self._output.write(f'[hilresrl] {line}\n')
        self._output.flush()

    def node_exited(self, spec: NodeSpec, returncode: int) -> None:
        """Take note of a node's exit (its launch on_exit callback calls this)."""
        if self.stopping:
            if returncode not in STOPPED_AS_ASKED:
                self._failed_while_stopping[spec.full_name] = returncode
        elif spec.required:
            self.say(ended_line(spec, returncode))
            self._ended_code = returncode
            self.stopping = True
        # (a node that is not required may end alone: launch has said how)

    def shutdown_asked(self, event, context) -> None:
        """Take note that the launch is shutting down (an OnShutdown callback)."""
        self.stopping = True

    def status(self, launch_status: int = 0) -> int:
        """Say how the nodes stopped and return the exit status, launch's own where it failed."""
        return run_status(self._ended_code, self._failed_while_stopping, self.say) \
            or launch_status


def run_under_launch(job: str, assignments: List[str]) -> int:
    """Run the graph of a job in a LaunchService until it ends; return the exit status."""
    from launch import LaunchDescription, LaunchDescriptionSource, LaunchService
    from launch.actions import IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler
    from launch.event_handlers import OnShutdown

    exits = NodeExits()
    # As ros2 launch: without a terminal, whose Ctrl-C reaches every process of its group, the
    # nodes get their SIGINT from launch.
    service = LaunchService(argv=assignments, noninteractive=not sys.stdin.isatty())
    service.include_launch_description(LaunchDescription([
        RegisterEventHandler(OnShutdown(on_shutdown=exits.shutdown_asked)),
        OpaqueFunction(function=_stop_on_sigterm, args=[service, exits]),
        IncludeLaunchDescription(LaunchDescriptionSource(generate_for(job, exits)),
                                 launch_arguments=list(parse_assignments(assignments).items())),
    ]))
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if previous[signal.SIGINT] is signal.SIG_IGN:
        # A background job of a script comes with SIGINT ignored: as the process launcher,
        # take it anyway (launch hears it only where Python does).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        launch_status = service.run()
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # (None: not installed from Python, nothing to restore)
                signal.signal(sig, handler)
    return exits.status(launch_status)


def _stop_on_sigterm(context, service, exits: NodeExits) -> None:
    """
    Stop the nodes on SIGTERM as on Ctrl-C, as the process launcher does.

    Under launch alone SIGTERM ends this process at once, or, where Python handles it, cancels
    the run: either way the nodes run on unsupervised, the arbiter still commanding the robot.
    Launch handles signals with a manager that it does not expose; where a launch version has
    none, SIGTERM stays as it is there.
    """
    try:
        from launch.utilities import AsyncSafeSignalManager
    except ImportError:
        return None
    manager = getattr(AsyncSafeSignalManager, '_AsyncSafeSignalManager__current', None)
    if manager is None:
        return None

    def on_sigterm(signum):
        exits.say('shutdown requested (SIGTERM), stopping the nodes')
        service.shutdown(force_sync=True)

    manager.handle(signal.SIGTERM, on_sigterm)  # in place of launch's own
    # A Python handler, so that the signal reaches the manager instead of ending this process.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    return None
