"""Parameter tables without ROS: defaults, types, checks and the values a node would get."""

import math

from hilresrl_common.parameters import (above, at_least, between, checked, defaults, one_of,
                                        Parameter)
import pytest

TABLE = (
    Parameter('rate_hz', 10.0, 'Rate', check=above(0.0)),
    Parameter('mode', 'train', 'Mode', check=one_of(('train', 'eval'))),
    Parameter('scale', (0.5, 0.5), 'Scale per axis', check=between(0.0, 1.0)),
    Parameter('topics', [], 'Topics', type='string_array'),
    Parameter('limit', None, 'Limit (unset: none)', type='integer', check=at_least(0)),
)


def test_defaults_are_plain_values_by_name():
    assert defaults(TABLE) == {'rate_hz': 10.0, 'mode': 'train', 'scale': [0.5, 0.5],
                               'topics': [], 'limit': None}


def test_value_types_are_inferred_or_given():
    assert [parameter.value_type for parameter in TABLE] == [
        'double', 'string', 'double_array', 'string_array', 'integer']
    assert Parameter('on', True, '').value_type == 'bool'  # not an integer
    assert Parameter('count', 3, '').value_type == 'integer'
    with pytest.raises(ValueError, match='parameter names: give its type'):
        Parameter('names', [], '').value_type
    with pytest.raises(ValueError, match='give its type'):
        Parameter('optional', None, '').value_type


def test_checked_fills_in_defaults_and_makes_lists_plain():
    values = checked(TABLE, {'rate_hz': 2.5, 'scale': (0.1, 0.9), 'limit': 3})
    assert values == {'rate_hz': 2.5, 'mode': 'train', 'scale': [0.1, 0.9], 'topics': [],
                      'limit': 3}


def test_a_string_list_of_one_empty_string_means_none():
    assert checked(TABLE, {'topics': ['']})['topics'] == []
    # an empty entry of a longer list keeps its place (an axis no channel drives)
    assert checked(TABLE, {'topics': ['a', '', 'b']})['topics'] == ['a', '', 'b']


def test_an_unset_optional_value_is_not_checked():
    assert checked(TABLE, {'limit': None})['limit'] is None


def test_every_refused_value_is_named_in_one_error():
    with pytest.raises(ValueError) as error:
        checked(TABLE, {'rate_hz': 0.0, 'mode': 'fly', 'scale': [0.5, 1.5], 'limit': -1})
    message = str(error.value)
    assert 'rate_hz=0.0: must be above 0' in message
    assert "mode='fly': must be one of train, eval" in message
    assert 'scale=[0.5, 1.5]: must lie in [0, 1]' in message
    assert 'limit=-1: must be at least 0' in message
    assert message.count(';') == 3


@pytest.mark.parametrize('check, good, bad', [
    (above(0.0), [1e-9, 5.0, [1.0, 2.0]], [0.0, -1.0, math.nan, math.inf, [1.0, 0.0]]),
    (at_least(0.0), [0.0, 3, [0.0, 1.0]], [-0.1, math.nan, [0.0, -1.0]]),
    (between(-1.0, 1.0), [-1.0, 0.0, 1.0, [0.5, -0.5]], [1.01, -2, math.nan, [0.0, 2.0]]),
    (one_of(('a', 'b')), ['a', 'b'], ['c', '', 'A']),
])
def test_checks_accept_and_refuse(check, good, bad):
    assert [check(value) for value in good] == [''] * len(good)
    assert all(check(value) for value in bad)


def test_refusal_says_why_or_nothing():
    rate = TABLE[0]
    assert rate.refusal(1.0) == '' and rate.refusal(None) == ''
    assert rate.refusal(-1.0) == 'must be above 0'
    assert Parameter('free', 1.0, 'no check').refusal(-1.0) == ''
