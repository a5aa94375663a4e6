"""
Declaring a parameter table on a node: one call, every value checked before the node runs.

A value of the wrong type or out of range raises ConfigurationError naming each one, so a
misconfigured node stops at start-up with what to fix instead of failing in a callback.
"""

from typing import Any, Dict, Iterable

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter as RosParameter

from .node_runner import ConfigurationError
from .parameters import checked, Parameter

_TYPES = {
    'bool': RosParameter.Type.BOOL, 'integer': RosParameter.Type.INTEGER,
    'double': RosParameter.Type.DOUBLE, 'string': RosParameter.Type.STRING,
    'bool_array': RosParameter.Type.BOOL_ARRAY,
    'integer_array': RosParameter.Type.INTEGER_ARRAY,
    'double_array': RosParameter.Type.DOUBLE_ARRAY,
    'string_array': RosParameter.Type.STRING_ARRAY,
}


def declare_parameters(node: Node, table: Iterable[Parameter]) -> Dict[str, Any]:
    """Declare every parameter of ``table`` on ``node``; return the values by name."""
    table = list(table)
    values, problems = {}, []
    for parameter in table:
        descriptor = ParameterDescriptor(description=parameter.description,
                                         read_only=parameter.read_only)
        default = parameter.default
        # Without a value to infer the type from (optional, or an empty list), declare the
        # type alone: the parameter then holds only what is given.
        typed_only = default is None or (isinstance(default, (list, tuple)) and not default)
        try:
            value = node.declare_parameter(
                parameter.name,
                _TYPES[parameter.value_type] if typed_only else _ros_value(default),
                descriptor).value
        except ParameterUninitializedException:
            value = None  # Humble's rclpy raises where newer ones return an unset value
        except (InvalidParameterTypeException, InvalidParameterValueException) as error:
            problems.append(f'{parameter.name}: {error} ({parameter.description})')
            continue
        values[parameter.name] = default if value is None else value
    # The declared values are checked too, so that one error names every problem at once.
    try:
        result = checked([parameter for parameter in table if parameter.name in values], values)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise ConfigurationError('; '.join(problems))
    return result


def _ros_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
