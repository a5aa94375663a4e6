"""
Parameters described once: name, default, description, whether it may change, what is valid.

A node declares its table with ``declare_parameters`` (hilresrl_common.parameter_declaration)
and gets every value checked at start-up; a headless benchmark reads the same table's
``defaults`` without ROS, so node and benchmark cannot drift. No rclpy here.
"""

from dataclasses import dataclass
import math
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

# Why a value is refused ('' or None: it is fine).
Check = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class Parameter:
    """
    One ROS parameter.

    default: its value when not given; None makes it optional (its value is None until set,
    which needs ``type``). A list default may be empty when ``type`` says what it holds.
    type: 'bool', 'integer', 'double', 'string' or '<one of those>_array'; '' infers it from
    the default.
    """

    name: str
    default: Any
    description: str
    read_only: bool = True
    type: str = ''  # noqa: A003 (a field, read as parameter.type)
    check: Optional[Check] = None

    @property
    def value_type(self) -> str:
        """Return the ROS type name of the value ('double', 'string_array', ...)."""
        if self.type:
            return self.type
        return _type_of(self.default, self.name)

    def refusal(self, value: Any) -> str:
        """Return why ``value`` is not valid for this parameter ('': it is)."""
        if value is None or self.check is None:
            return ''
        return self.check(value) or ''


def _type_of(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'double'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, (list, tuple)) and value:
        return _type_of(value[0], name) + '_array'
    raise ValueError(f'parameter {name}: give its type, its default {value!r} does not say it')


def defaults(table: Iterable[Parameter]) -> Dict[str, Any]:
    """Return every parameter's default by name (lists as lists)."""
    return {parameter.name: _plain(parameter.default) for parameter in table}


def checked(table: Iterable[Parameter], values: Mapping[str, Any]) -> Dict[str, Any]:
    """Return the values with lists made plain; ValueError naming every refused value."""
    result, problems = {}, []
    for parameter in table:
        value = _plain(values.get(parameter.name, parameter.default))
        if value == [''] and parameter.value_type == 'string_array':
            # [''] is how YAML says "none"; an empty entry of a longer list keeps its place
            # (spacemouse.channels: '' is an axis no channel drives).
            value = []
        reason = parameter.refusal(value)
        if reason:
            problems.append(f'{parameter.name}={value!r}: {reason}')
        result[parameter.name] = value
    if problems:
        raise ValueError('; '.join(problems))
    return result


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def one_of(choices: Sequence[str]) -> Check:
    """Return a check that a value is one of ``choices``."""
    return lambda value: ('' if value in choices
                          else f'must be one of {", ".join(map(str, choices))}')


def at_least(minimum: float) -> Check:
    """Return a check that a number (or every number of a list) is finite and >= minimum."""
    def check(value):
        numbers = value if isinstance(value, list) else [value]
        if all(math.isfinite(number) and number >= minimum for number in numbers):
            return ''
        return f'must be at least {minimum:g}'
    return check


def above(minimum: float) -> Check:
    """Return a check that a number (or every number of a list) is finite and > minimum."""
    def check(value):
        numbers = value if isinstance(value, list) else [value]
        if all(math.isfinite(number) and number > minimum for number in numbers):
            return ''
        return f'must be above {minimum:g}'
    return check


def between(low: float, high: float) -> Check:
    """Return a check that a number (or every number of a list) lies in [low, high]."""
    def check(value):
        numbers = value if isinstance(value, list) else [value]
        if all(math.isfinite(number) and low <= number <= high for number in numbers):
            return ''
        return f'must lie in [{low:g}, {high:g}]'
    return check
