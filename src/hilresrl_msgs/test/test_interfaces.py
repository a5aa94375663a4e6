"""Every hilresrl message and service round-trips through rclpy's CDR serialization."""

import importlib
import math
import pathlib
import re

import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosidl_parser import definition

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]
MESSAGE_NAMES = sorted(p.stem for p in (PACKAGE_DIR / 'msg').glob('*.msg'))
SERVICE_NAMES = sorted(p.stem for p in (PACKAGE_DIR / 'srv').glob('*.srv'))

INTEGER_TYPES = {'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64',
                 'octet', 'char'}


def _value_for(slot_type, seed: int):
    """Return a non-default value of a rosidl slot type, different for different seeds."""
    if isinstance(slot_type, definition.AbstractSequence):
        return [_value_for(slot_type.value_type, seed + i) for i in range(3)]
    if isinstance(slot_type, definition.AbstractGenericString):
        return f'value-{seed}-\u00e9'
    if isinstance(slot_type, definition.NamespacedType):
        module = importlib.import_module('.'.join(slot_type.namespaces))
        return _filled(getattr(module, slot_type.name)(), seed)
    if isinstance(slot_type, definition.BasicType):
        if slot_type.typename == 'boolean':
            return seed % 2 == 1
        if slot_type.typename in INTEGER_TYPES:
            return 1 + seed % 100
        return 0.25 + seed
    raise TypeError(f'no test value for slot type {slot_type!r}')


def _filled(message, seed: int = 1):
    """Set every field of a message to a distinct non-default value."""
    for index, (field, slot_type) in enumerate(zip(message.get_fields_and_field_types(),
                                                   message.SLOT_TYPES)):
        value = _value_for(slot_type, seed + index)
        if isinstance(slot_type, definition.AbstractSequence) and isinstance(
                slot_type.value_type, definition.BasicType) and \
                slot_type.value_type.typename == 'octet':
            value = bytes(value)
        setattr(message, field, value)
    return message


def _round_trip(message_type):
    original = _filled(message_type())
    restored = deserialize_message(serialize_message(original), message_type)
    assert restored == original
    assert restored != message_type(), 'the filled message must differ from the default one'


def test_every_interface_file_is_listed():
    import hilresrl_msgs.msg
    import hilresrl_msgs.srv
    assert len(MESSAGE_NAMES) >= 10 and len(SERVICE_NAMES) >= 6
    for name in MESSAGE_NAMES:
        assert hasattr(hilresrl_msgs.msg, name), name
    for name in SERVICE_NAMES:
        assert hasattr(hilresrl_msgs.srv, name), name


@pytest.mark.parametrize('name', MESSAGE_NAMES)
def test_message_round_trip(name):
    import hilresrl_msgs.msg
    _round_trip(getattr(hilresrl_msgs.msg, name))


@pytest.mark.parametrize('name', SERVICE_NAMES)
@pytest.mark.parametrize('part', ['Request', 'Response'])
def test_service_round_trip(name, part):
    import hilresrl_msgs.srv
    _round_trip(getattr(getattr(hilresrl_msgs.srv, name), part))


def test_float_arrays_keep_float32_precision():
    from hilresrl_msgs.msg import ActionChunk
    chunk = ActionChunk(action_dim=2, horizon=2, data=[0.1, -1.5, math.pi, 2.0])
    restored = deserialize_message(serialize_message(chunk), ActionChunk)
    assert restored.data.typecode == 'f'
    assert restored.data.tolist() == pytest.approx([0.1, -1.5, math.pi, 2.0], rel=1e-6)


def test_constants_are_distinct():
    from hilresrl_msgs.msg import EpisodeEvent, EpisodeOutcome, Mode
    for message_type in (EpisodeEvent, EpisodeOutcome, Mode):
        constants = {name: getattr(message_type, name)
                     for name in dir(type(message_type)) if re.fullmatch('[A-Z][A-Z_]*', name)}
        assert len(constants) >= 3
        assert len(set(constants.values())) == len(constants), message_type.__name__
