"""
Subscribe a node to its observation sources and feed each message to an assembler callback.

The ROS side of observation.py: parameters shared by every node that observes the cell
(observation_sources, observation_sync, observation_reliability) and one subscription per source.
"""

from dataclasses import dataclass
from typing import Callable, List, Mapping

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from .conversions import parse_source, source_arrays, SOURCE_KINDS, stamp_to_ns
from .node_runner import ConfigurationError
from .observation import SYNC_MODES

OnObservationMessage = Callable[[str, int, Mapping[str, np.ndarray]], None]


@dataclass(frozen=True)
class ObservationParameters:
    """What a node observes and how it matches the sources."""

    sources: List[str]
    sync: str
    reliability: str


def declare_observation_parameters(node: Node) -> ObservationParameters:
    """Declare and read the observation parameters that every observing node shares."""
    sources = list(node.declare_parameter(
        'observation_sources', ['task_state'], ParameterDescriptor(
            description='Observation topics, each "topic" or "topic:kind" with kind one of '
                        + ', '.join(SOURCE_KINDS) + ' (inferred from the name when omitted)',
            read_only=True)).value)
    sync = node.declare_parameter(
        'observation_sync', 'exact', ParameterDescriptor(
            description="exact: an observation is the sources' messages with equal stamps (a "
                        'lockstep simulator); latest: the newest message of each (real drivers)',
            read_only=True)).value
    reliability = node.declare_parameter(
        'observation_reliability', 'reliable', ParameterDescriptor(
            description='QoS reliability of observation subscriptions: reliable (never lose a '
                        'step) or best_effort (matches any publisher, e.g. cameras)',
            read_only=True)).value
    if sync not in SYNC_MODES:
        raise ConfigurationError(f'observation_sync must be one of {", ".join(SYNC_MODES)}, '
                                 f'not {sync!r}')
    if reliability not in ('reliable', 'best_effort'):
        raise ConfigurationError('observation_reliability must be reliable or best_effort, '
                                 f'not {reliability!r}')
    for source in sources:
        try:
            parse_source(source)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
    return ObservationParameters(sources, sync, reliability)


def subscribe_observations(node: Node, parameters: ObservationParameters,
                           on_message: OnObservationMessage) -> list:
    """Create one subscription per source; on_message(source, stamp_ns, arrays) per message."""
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE
                     if parameters.reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
    subscriptions = []
    for source in parameters.sources:
        topic, kind = parse_source(source)

        def callback(message, source=source, topic=topic, kind=kind):
            on_message(source, stamp_to_ns(message.header.stamp),
                       source_arrays(topic, kind, message))

        subscriptions.append(node.create_subscription(SOURCE_KINDS[kind], topic, callback, qos))
    return subscriptions
