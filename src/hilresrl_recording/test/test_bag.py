"""rosbag2 bags: written here, read back here and by rosbags and mcap; splits, cuts, damage."""

import os

from hilresrl_msgs.msg import Transition
from hilresrl_recording.bag import BagError, BagReader, BagWriter, describe, qos_profile_dict
from hilresrl_recording.message_definitions import ros2msg_definition, type_hash
from mcap.reader import make_reader
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader as RosbagsReader
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from std_msgs.msg import String
import yaml

TRANSITION = 'hilresrl_msgs/msg/Transition'


def _writer(path, storage='mcap', **options) -> BagWriter:
    bag = BagWriter(path, storage, **options)
    bag.add_topic('/chatter', 'std_msgs/msg/String', ros2msg_definition('std_msgs/msg/String'),
                  type_hash('std_msgs/msg/String'), [qos_profile_dict()])
    bag.add_topic('/robot1/transitions', TRANSITION, ros2msg_definition(TRANSITION),
                  type_hash(TRANSITION), [qos_profile_dict(depth=1000)])
    return bag


def _write(bag: BagWriter, first: int, count: int, period_ns: int = 10**7):
    for index in range(first, first + count):
        stamp = 10**18 + index * period_ns
        bag.write('/chatter', stamp, serialize_message(String(data=f'hello {index}')))
        transition = Transition(robot_id='robot1', sequence=index, reward=float(index))
        transition.base_action = [0.25, -0.5]
        bag.write('/robot1/transitions', stamp + 1, serialize_message(transition))


def _typestore(reader):
    store = get_typestore(Stores.ROS2_KILTED)
    for connection in reader.connections:
        if connection.msgtype.startswith('hilresrl_msgs/'):
            # sqlite3 bags in Humble's layout carry no definitions for rosbags: take ours
            text = connection.msgdef.data or ros2msg_definition(connection.msgtype)
            store.register(get_types_from_msg(text, connection.msgtype))
    return store


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_bag_reads_back_here_and_with_rosbags_value_for_value(tmp_path, storage):
    bag = _writer(tmp_path / 'run', storage, custom_data={'hilresrl.task': 'pick-place-v3'})
    _write(bag, 0, 50)
    bag.close()

    ours = BagReader(tmp_path / 'run')
    assert ours.count_messages() == {'/chatter': 50, '/robot1/transitions': 50}
    assert ours.problems == [] and ours.storage == storage
    sequences = [deserialize_message(data, Transition).sequence
                 for _, _, data in ours.messages(['/robot1/transitions'])]
    assert sequences == list(range(50))

    with RosbagsReader(tmp_path / 'run') as reader:
        assert reader.message_count == 100
        store = _typestore(reader)
        connection = next(c for c in reader.connections if c.topic == '/robot1/transitions')
        values = [store.deserialize_cdr(raw, connection.msgtype)
                  for _, _, raw in reader.messages(connections=[connection])]
        assert [value.reward for value in values] == [float(index) for index in range(50)]
        assert values[7].base_action.tolist() == [0.25, -0.5]
        assert {c.topic: c.ext.offered_qos_profiles[0].depth
                for c in reader.connections} == {'/chatter': 10, '/robot1/transitions': 1000}
    metadata = yaml.safe_load((tmp_path / 'run' / 'metadata.yaml').read_text())
    information = metadata['rosbag2_bagfile_information']
    assert information['version'] == (9 if storage == 'mcap' else 5)
    assert information['message_count'] == 100
    if storage == 'mcap':
        assert information['custom_data'] == {'hilresrl.task': 'pick-place-v3'}
        assert ours.custom_data == {'hilresrl.task': 'pick-place-v3'}
    else:  # Humble's metadata: QoS as a YAML string with numbered enums
        qos = information['topics_with_message_count'][0]['topic_metadata'][
            'offered_qos_profiles']
        assert isinstance(qos, str) and 'reliability: 1' in qos


def test_mcap_files_validate_and_carry_the_schema_of_every_custom_type(tmp_path):
    bag = _writer(tmp_path / 'run')
    _write(bag, 0, 3)
    bag.close()
    with open(bag.files[0], 'rb') as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        assert summary.statistics.message_count == 6
        schemas = {schema.name: schema for schema in summary.schemas.values()}
        messages = list(reader.iter_messages())
    assert set(schemas) == {'std_msgs/msg/String', TRANSITION}
    definition = schemas[TRANSITION].data.decode()
    assert schemas[TRANSITION].encoding == 'ros2msg'
    assert 'MSG: hilresrl_msgs/NamedArray' in definition and 'MSG: std_msgs/Header' in definition
    assert len(messages) == 6 and messages[0][1].message_encoding == 'cdr'
    assert messages[1][1].metadata['topic_type_hash'].startswith('RIHS01_')


def test_files_split_by_size_and_by_duration(tmp_path):
    by_size = _writer(tmp_path / 'size', max_file_size_bytes=4000)
    _write(by_size, 0, 100)
    by_size.close()
    by_time = _writer(tmp_path / 'time', max_file_duration_s=0.25)  # messages every 10 ms
    _write(by_time, 0, 100)
    by_time.close()
    for path, bag in (('size', by_size), ('time', by_time)):
        reader = BagReader(tmp_path / path)
        assert len(reader.files) > 2, path
        assert reader.count_messages() == {'/chatter': 100, '/robot1/transitions': 100}
        assert [file.name for file in reader.files] == [
            f'{path}_{index}.mcap' for index in range(len(reader.files))]
        with RosbagsReader(tmp_path / path) as rosbags_reader:
            assert rosbags_reader.message_count == 200
    assert len(BagReader(tmp_path / 'time').files) == 4  # 1 s of messages in 0.25 s files


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_writer_that_dies_leaves_every_flushed_message_readable(tmp_path, storage):
    bag = _writer(tmp_path / 'run', storage)
    _write(bag, 0, 40)
    bag.flush()
    _write(bag, 40, 10)  # never flushed nor closed: what a killed writer leaves
    reader = BagReader(tmp_path / 'run')
    counts = reader.count_messages()
    assert counts == {'/chatter': 40, '/robot1/transitions': 40}
    metadata = yaml.safe_load((tmp_path / 'run' / 'metadata.yaml').read_text())
    assert metadata['rosbag2_bagfile_information']['message_count'] == 80
    if storage == 'mcap':  # no footer yet: the reader says so, naming file and offset
        assert len(reader.problems) == 1
        assert str(bag.files[0]) in reader.problems[0] and 'at byte' in reader.problems[0]


def test_a_file_cut_mid_record_reads_up_to_the_cut_and_names_file_and_offset(tmp_path):
    bag = _writer(tmp_path / 'run')
    sizes = []
    for block in range(4):
        _write(bag, 10 * block, 10)
        bag.flush()
        sizes.append(os.path.getsize(bag.files[0]))
    path = bag.files[0]
    cut = (sizes[2] + sizes[3]) // 2  # inside the fourth chunk
    with open(path, 'r+b') as stream:
        stream.truncate(cut)
    reader = BagReader(tmp_path / 'run')
    counts = reader.count_messages()
    assert counts == {'/chatter': 30, '/robot1/transitions': 30}  # three whole chunks
    assert len(reader.problems) == 1
    problem = reader.problems[0]
    assert str(path) in problem and f'of {cut}' in problem


def test_garbage_and_folders_that_are_no_bags_get_clear_errors(tmp_path):
    with pytest.raises(BagError, match='no such bag'):
        BagReader(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='not a rosbag2 bag'):
        BagReader(tmp_path / 'empty')
    garbage = tmp_path / 'garbage.mcap'
    garbage.write_bytes(b'\x89MCAP0\r\n' + b'\x01' + os.urandom(200))
    reader = BagReader(garbage)
    assert list(reader.messages()) == []
    assert reader.problems and str(garbage) in reader.problems[0]
    assert 'at byte' in reader.problems[0]
    not_sqlite = tmp_path / 'bad' / 'bad_0.db3'
    not_sqlite.parent.mkdir()
    not_sqlite.write_bytes(b'this is not a database' * 10)
    reader = BagReader(not_sqlite.parent)
    assert list(reader.messages()) == []
    assert any(str(not_sqlite) in problem for problem in reader.problems)


def test_appending_continues_a_bag_with_a_new_file(tmp_path):
    first = _writer(tmp_path / 'run')
    _write(first, 0, 5)
    first.close()
    second = BagWriter(tmp_path / 'run', append=True)
    assert second.message_count == 10  # it knows what the bag holds
    second.add_topic('/chatter', 'std_msgs/msg/String')
    second.write('/chatter', 2 * 10**18, serialize_message(String(data='again')))
    second.close()
    reader = BagReader(tmp_path / 'run')
    assert [file.name for file in reader.files] == ['run_0.mcap', 'run_1.mcap']
    assert reader.count_messages() == {'/chatter': 6, '/robot1/transitions': 5}
    with pytest.raises(BagError, match='exists already'):
        BagWriter(tmp_path / 'run')
    with pytest.raises(BagError, match='is a mcap bag'):
        BagWriter(tmp_path / 'run', 'sqlite3', append=True)
    assert '/robot1/transitions | hilresrl_msgs/msg/Transition | 5 messages' in describe(reader)


@pytest.mark.parametrize('name', ['../outside/outside_0.mcap', '../../x', '/etc/passwd',
                                  'link_0.mcap'])
def test_a_bag_that_names_files_outside_its_folder_is_refused(tmp_path, name):
    outside = _writer(tmp_path / 'outside')
    _write(outside, 0, 3)
    outside.close()  # a readable bag next door: following the path would read it
    bag = _writer(tmp_path / 'bag')
    _write(bag, 0, 2)
    bag.close()
    metadata_path = tmp_path / 'bag' / 'metadata.yaml'
    metadata = yaml.safe_load(metadata_path.read_text())
    if name == 'link_0.mcap':
        (tmp_path / 'bag' / name).symlink_to(tmp_path / 'outside' / 'outside_0.mcap')
    metadata['rosbag2_bagfile_information']['relative_file_paths'].append(name)
    metadata_path.write_text(yaml.safe_dump(metadata))
    with pytest.raises(BagError, match='outside the bag folder') as refused:
        BagReader(tmp_path / 'bag')
    assert name in str(refused.value)


def test_bag_info_fails_when_nothing_is_readable(tmp_path, capsys):
    from hilresrl_recording.bag import main as bag_info
    bag = _writer(tmp_path / 'good')
    _write(bag, 0, 2)
    bag.close()
    assert bag_info([str(tmp_path / 'good')]) == 0
    damaged = tmp_path / 'damaged'
    damaged.mkdir()
    (damaged / 'damaged_0.mcap').write_bytes(b'\x89MCAP0\r\n' + b'\x01' + os.urandom(200))
    assert bag_info([str(damaged)]) != 0
    assert 'nothing in' in capsys.readouterr().err
