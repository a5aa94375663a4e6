"""declare_parameters on a real rclpy node: descriptors, types, optional values, errors."""

from hilresrl_common.node_runner import ConfigurationError
from hilresrl_common.parameter_declaration import declare_parameters
from hilresrl_common.parameters import above, Parameter
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter as RosParameter

TABLE = (
    Parameter('rate_hz', 10.0, 'Planning rate', check=above(0.0)),
    Parameter('gain', 1.0, 'Gain', read_only=False, check=above(0.0)),
    Parameter('names', [], 'Names (none by default)', type='string_array'),
    Parameter('limit', None, 'Limit (unset: none)', type='integer'),
    Parameter('frame_id', 'world', 'Frame'),
)


@pytest.fixture
def make_node(ros_context):
    nodes = []

    def make(**overrides):
        node = Node('declared', context=ros_context, parameter_overrides=[
            RosParameter(name, value=value) for name, value in overrides.items()])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()


def test_defaults_and_descriptors(make_node):
    node = make_node()
    assert declare_parameters(node, TABLE) == {'rate_hz': 10.0, 'gain': 1.0, 'names': [],
                                               'limit': None, 'frame_id': 'world'}
    rate, gain = node.describe_parameters(['rate_hz', 'gain'])
    assert (rate.description, rate.read_only) == ('Planning rate', True)
    assert (gain.description, gain.read_only) == ('Gain', False)


def test_given_values_and_lists_declared_by_type(make_node):
    node = make_node(rate_hz=2.0, names=['a', 'b'], limit=5, frame_id='base')
    values = declare_parameters(node, TABLE)
    assert (values['rate_hz'], values['names'], values['limit'], values['frame_id']) == (
        2.0, ['a', 'b'], 5, 'base')
    assert node.get_parameter('names').type_ == RosParameter.Type.STRING_ARRAY


def test_an_optional_value_is_none_until_given_and_holds_only_its_type(make_node):
    node = make_node()
    assert declare_parameters(node, TABLE)['limit'] is None and node.has_parameter('limit')
    with pytest.raises(ConfigurationError, match='limit'):
        declare_parameters(make_node(limit='five'), TABLE)


def test_a_wrong_type_and_an_out_of_range_value_are_one_error_naming_both(make_node):
    node = make_node(rate_hz='fast', gain=-1.0)
    with pytest.raises(ConfigurationError) as error:
        declare_parameters(node, TABLE)
    message = str(error.value)
    assert 'rate_hz' in message and 'Planning rate' in message
    assert 'gain=-1.0: must be above 0' in message
