"""
The main() of every hilresrl node: init, spin, and a clean shutdown on Ctrl-C or SIGTERM.

A node whose parameters are invalid raises ``ConfigurationError`` from its constructor; it is
logged as one fatal line naming the problem and the process exits with status 1. A node that
has done its job (an evaluation that ran its episodes) sets ``finished`` and the process exits
with status 0. Before a node is destroyed, its reliable subscribers get a moment to acknowledge
what it sent (destroying a publisher drops what has not reached them). A node that records what
others send sets ``drain_on_stop_s``: asked to stop, it goes on taking messages that have
already arrived for that long, and may define ``on_stop_requested()``, called once before that.
One that must outlive its senders also defines ``senders_remaining()`` (what still publishes to
it) and ``wait_for_senders_on_stop_s``: asked to stop, it spins on until nothing remains, at
most that long, before its drain. ``run_nodes`` runs several nodes in one process the same way.
"""

import gc
import os
import signal
import time
from typing import Callable, List, Optional, Sequence

import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


# Longer than Fast DDS's default heartbeat period (3 s): a reader that missed messages (a
# recorder held up for a moment) asks for them again only on a heartbeat, so a shorter wait can
# end a publisher before it has repaired that reader. Shorter than the 5 s that launch leaves a
# node between SIGINT and SIGTERM.
ACKNOWLEDGEMENT_TIMEOUT_S = 4.0


class ConfigurationError(ValueError):
    """A parameter value the node cannot work with; the message names it and what is valid."""


def make_executor(context=None):
    """
    Return the executor for a node process.

    rclpy's EventsExecutor (Kilted and later) spends far less CPU per message than the
    SingleThreadedExecutor, which rebuilds its wait set in Python for every callback: on two
    cores shared by a whole cell that is most of a step's latency. Humble and Jazzy, or
    HILRESRL_EXECUTOR=single, get the SingleThreadedExecutor.
    """
    if os.environ.get('HILRESRL_EXECUTOR', 'events') == 'events':
        try:
            from rclpy.experimental import EventsExecutor
            return EventsExecutor(context=context)
        except ImportError:
            pass
    return SingleThreadedExecutor(context=context)


def wait_for_acknowledgements(node: Node, timeout_s: float, publishers=None) -> bool:
    """
    Wait until reliable subscribers have every message published; False: timeout.

    By the node's publishers, or only ``publishers`` where given.
    """
    deadline = time.monotonic() + timeout_s
    acknowledged = True
    for publisher in list(node.publishers if publishers is None else publishers):
        left_ns = int(max(0.0, deadline - time.monotonic()) * 1e9)
        try:
            done = publisher.wait_for_all_acked(Duration(nanoseconds=left_ns))
        except Exception:  # a middleware without acknowledgements: nothing to wait for
            return True
        if not done:
            acknowledged = False
            node.get_logger().warning(f'{publisher.topic_name}: not every subscriber '
                                      f'acknowledged every message within {timeout_s:g} s')
    return acknowledged


def run_node(make_node: Callable[[], Node], args: Optional[list] = None) -> int:
    """Create a node, spin it until shutdown or until it is finished; return the exit status."""
    return run_nodes((make_node,), args)


def run_nodes(makers: Sequence[Callable[[], Node]], args: Optional[list] = None,
              connect: Optional[Callable[..., None]] = None) -> int:
    """
    Run several nodes in one process and one executor, as run_node runs one.

    They are made in order and destroyed in reverse; ``connect``, where given, is called with
    them once all are made, before any callback runs (where one hands its results to another
    directly instead of over DDS). The process ends when any of them is finished.
    """
    # Ctrl-C and SIGTERM only ask the loop below to stop: rclpy's own handler would raise
    # KeyboardInterrupt inside whatever callback is running (a physics step, a learner update)
    # and leave a traceback for what is an orderly shutdown.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop_requested = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop_requested.append(signum))
    nodes: List[Node] = []
    failing = ''  # who a ConfigurationError names: the node being made, else the process's
    status = 0
    try:
        for maker in makers:
            failing = getattr(getattr(maker, 'func', maker), '__name__', 'node')  # or a partial
            nodes.append(maker())
        if len(nodes) > 1:
            failing = ', '.join(node.get_name() for node in nodes)
        if connect is not None:
            connect(*nodes)
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        # What start-up made (modules, torch, networks) lives as long as the process: out of
        # the collector's full passes, which otherwise walk it all (99 ms in a process with
        # torch imported, here) and stop every callback meanwhile.
        gc.collect()
        gc.freeze()
        # spin_once in a loop, not spin(): the EventsExecutor's spin() blocks in C++, where
        # neither a stop request nor a finished node would be noticed (measured).
        while not stop_requested and rclpy.ok() and not any(
                getattr(node, 'finished', False) for node in nodes):
            executor.spin_once(timeout_sec=0.2)
        for node in nodes:
            if stop_requested and hasattr(node, 'on_stop_requested'):
                node.on_stop_requested()  # e.g. the learner stops updating to store what came in
        # A recorder is stopped last even where a launcher stops every node at once (ros2
        # launch): it goes on while the nodes it records still publish, at most its limit.
        senders = [node.senders_remaining for node in nodes
                   if getattr(node, 'senders_remaining', None) is not None]
        wait_until = time.monotonic() + max(
            getattr(node, 'wait_for_senders_on_stop_s', 0.0) for node in nodes)
        while (stop_requested and senders and rclpy.ok()
               and time.monotonic() < wait_until and any(remaining() for remaining in senders)):
            executor.spin_once(timeout_sec=0.05)
        # A publisher that has exited may have had its last messages acknowledged by this
        # node's middleware without their callbacks having run yet: take them now.
        drain_until = time.monotonic() + max(getattr(node, 'drain_on_stop_s', 0.0)
                                             for node in nodes)
        while stop_requested and rclpy.ok() and time.monotonic() < drain_until:
            executor.spin_once(timeout_sec=0.05)
        for node in nodes:
            if rclpy.ok():
                wait_for_acknowledgements(node, ACKNOWLEDGEMENT_TIMEOUT_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigurationError as error:
        rclpy.logging.get_logger(failing).fatal(str(error))
        status = 1
    except Exception:
        # A signal can shut the context down while the executor is taking a message, and
        # rclpy then raises from inside the take: that is the shutdown, not a failure.
        if rclpy.ok():
            raise
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
    return status
