"""The transition log: every record back after a kill, rosbag2's MCAP with its schema."""

import os

from hilresrl_learner.message_definitions import ros2msg_definition
from hilresrl_learner.transition_log import read_log, read_segment, TransitionLog
from mcap.reader import make_reader


def test_records_come_back_after_a_cut_off_write(tmp_path):
    log = TransitionLog(tmp_path, '/transitions', 'hilresrl_msgs/msg/Transition', 'x')
    for index in range(5):
        log.write(bytes([index]) * 50, index)
    # a kill leaves no footer, and maybe half a record: cut the last record short
    with open(log.path, 'r+b') as stream:
        stream.truncate(os.path.getsize(log.path) - 20)
    messages, problem = read_segment(log.path)
    assert messages == [bytes([index]) * 50 for index in range(4)]
    assert problem and str(log.path) in problem


def test_closed_logs_are_valid_mcap_with_the_message_definition(tmp_path):
    definition = ros2msg_definition('hilresrl_msgs/msg/Transition')
    log = TransitionLog(tmp_path, '/transitions', 'hilresrl_msgs/msg/Transition', definition)
    log.write(b'\x00\x01\x00\x00payload', 1234)
    log.close()
    second = TransitionLog(tmp_path, '/transitions', 'hilresrl_msgs/msg/Transition', definition)
    second.write(b'\x00\x01\x00\x00more', 5678)
    second.close()
    assert [path.name for path, _, _ in read_log(tmp_path)] == [
        'transitions_0001.mcap', 'transitions_0002.mcap']
    with open(log.path, 'rb') as stream:
        reader = make_reader(stream)
        schema, channel, message = next(reader.iter_messages())
    assert schema.name == 'hilresrl_msgs/msg/Transition' and schema.encoding == 'ros2msg'
    text = schema.data.decode()
    assert 'MSG: hilresrl_msgs/NamedArray' in text and 'MSG: std_msgs/Header' in text
    assert channel.topic == '/transitions' and channel.message_encoding == 'cdr'
    assert message.data == b'\x00\x01\x00\x00payload' and message.log_time == 1234
