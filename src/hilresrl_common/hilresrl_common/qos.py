"""
The QoS profiles of the suite's topics, chosen once so that every publisher matches its readers.

Commands: reliable, shallow (a controller wants the newest command, never a backlog). Per-step
records (base plans, proposals, executed actions, the cell's state), transitions and events:
reliable and deep (the learner's and the recorder's data must not be dropped). Latched state
(mode, weights, instruction, status): transient-local depth 1.
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE)
EVENTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.RELIABLE)
# Published once a step and recorded. A reliable reader whose transport queue overflowed (a
# recorder held up for a moment while the lockstep cell runs at hundreds of steps a second: DDS
# drops what the reader's queue cannot take) is repaired from the writer's history, so that
# history is deep; readers that want only the newest still subscribe with COMMAND_QOS.
STEP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                      reliability=ReliabilityPolicy.RELIABLE)
# Deep enough to ride out a slow learner update without the publisher dropping anything.
TRANSITIONS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                             reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
