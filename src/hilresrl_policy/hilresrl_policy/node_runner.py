"""
The main() of every hilresrl node: init, spin, and a clean shutdown on Ctrl-C or SIGTERM.

A node whose parameters are invalid raises ``ConfigurationError`` from its constructor; it is
logged as one fatal line naming the problem and the process exits with status 1.
"""

from typing import Callable, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


class ConfigurationError(ValueError):
    """A parameter value the node cannot work with; the message names it and what is valid."""


def run_node(make_node: Callable[[], Node], args: Optional[list] = None) -> int:
    """Create a node, spin it until shutdown, and return the process exit status."""
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = make_node()
        # SingleThreadedExecutor: rclpy's experimental EventsExecutor (Kilted) neither stops
        # on SIGINT nor lets a callback's SystemExit end the node (measured), so not yet.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigurationError as error:
        rclpy.logging.get_logger(getattr(make_node, '__name__', 'node')).fatal(str(error))
        status = 1
    except Exception:
        # A signal can shut the context down while the executor is taking a message, and
        # rclpy then raises from inside the take: that is the shutdown, not a failure.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return status
