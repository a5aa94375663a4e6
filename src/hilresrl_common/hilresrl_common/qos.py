"""
The QoS profiles of the suite's topics, chosen once so that every publisher matches its readers.

Commands and proposals: reliable, shallow (a controller wants the newest command, never a
backlog). Transitions and events: reliable and deep (the learner's data must not be dropped).
Latched state (mode, weights, instruction, status): transient-local depth 1.
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE)
EVENTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.RELIABLE)
# Deep enough to ride out a slow learner update without the publisher dropping anything.
TRANSITIONS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                             reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
