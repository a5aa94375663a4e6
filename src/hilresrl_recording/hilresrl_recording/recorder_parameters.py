"""
The recorder node's parameters, described once (no rclpy).

recorder_node declares them with hilresrl_common.parameter_declaration.declare_parameters,
which checks every value at start-up.
"""

from hilresrl_common.parameters import above, at_least, one_of, Parameter

from .bag import COMPRESSIONS, STORAGES
from .topic_selection import DEFAULT_REQUIRED_TOPICS, DEFAULT_TOPICS

PARAMETERS = (
    Parameter('bag_path', None, 'Bag folder to create (unset or empty: '
                                '$HILRESRL_HOME/bags/<date-time>)', type='string'),
    Parameter('storage', '', 'Storage: mcap (Jazzy and later, Foxglove) or sqlite3 (Humble); '
                             "empty: the one ROS_DISTRO's own ros2 bag reads",
              check=one_of(('',) + STORAGES)),
    Parameter('compression', 'none', 'Chunk compression of MCAP: none, lz4 or zstd',
              check=one_of(COMPRESSIONS)),
    Parameter('topics', list(DEFAULT_TOPICS), 'Topics to record: names or regular expressions, '
                                              'relative to the namespace or absolute'),
    Parameter('exclude_topics', [], 'Topics not to record (regular expressions)',
              type='string_array'),
    Parameter('required_topics', list(DEFAULT_REQUIRED_TOPICS),
              "Topics the recorder must take in before it reports 'recording' (episodes wait "
              "for that); ['']: none"),
    Parameter('max_bag_size_mb', None, 'Start a new file beyond this size (unset or 0: never)',
              type='double'),
    Parameter('max_bag_duration_s', None, 'Start a new file after this long (unset or 0: never)',
              type='double'),
    Parameter('flush_period_s', 1.0, 'Seconds between flushes to disk: a killed recorder loses '
                                     'at most the messages of the last period',
              check=above(0.0)),
    Parameter('queue_depth', 1000, 'Subscription depth per topic (no drops while the disk is '
                                   'slow)'),
    Parameter('discovery_period_s', 0.25, 'Seconds between looks for new topics'),
    Parameter('discovery_settle_s', 1.0,
              "Seconds between subscribing to the last required topic and reporting 'recording': "
              'a publisher learns of a new subscription through DDS discovery, which the '
              'recorder cannot observe, and sends it nothing before', check=at_least(0.0)),
    Parameter('run_info', '{}', 'JSON: what produced this run (base policy, cell, launch '
                                'arguments, parameter files), kept beside the bag'),
    Parameter('wait_for_senders_on_stop_s', 8.0,
              'Asked to stop, go on recording until the required topics have no publisher left, '
              'at most this long: ros2 launch stops every node at once, and the recorder must '
              'take what the others send on their way out (launch kills 10 s after SIGINT)',
              check=at_least(0.0)),
    Parameter('append', False, 'Add to an existing bag (a resumed run) instead of refusing'),
)
