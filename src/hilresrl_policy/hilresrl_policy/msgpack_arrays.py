"""
msgpack with numpy arrays and scalars, in the encoding the openpi policy servers use.

Arrays travel as raw bytes with their dtype and shape; unpacking builds them from those bytes
only (never pickle), so object, void and complex dtypes are refused both ways.
"""

from typing import Any

import msgpack
import numpy as np

# The openpi encoding: maps with bytes keys (msgpack bin), dtype as numpy's dtype.str.
ARRAY_TAG = b'__ndarray__'
SCALAR_TAG = b'__npgeneric__'
# Object arrays would need pickle; void (structured) and complex are refused like openpi does.
REFUSED_KINDS = {'O': 'object', 'V': 'void (structured)', 'c': 'complex'}


def packb(obj: Any) -> bytes:
    """Pack ``obj`` (maps, lists, strings, numbers, numpy arrays and scalars) to msgpack bytes."""
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Unpack msgpack bytes made by ``packb`` (or an openpi peer); raise ValueError if invalid."""
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False)
    except ValueError:
        raise
    except (msgpack.UnpackException, TypeError) as error:
        raise ValueError(f'not a valid msgpack message: {error}') from error


def _checked_dtype(dtype: Any) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError as error:
        raise ValueError(f'unknown numpy dtype {dtype!r}') from error
    if dtype.kind in REFUSED_KINDS or dtype.hasobject:
        raise ValueError(f'numpy dtype {dtype.str!r} ({REFUSED_KINDS.get(dtype.kind, "object")}) '
                         'is not supported: send numbers, booleans or strings')
    return dtype


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        dtype = _checked_dtype(obj.dtype)
        # tobytes() writes C order, whatever the array's own layout: shape alone rebuilds it.
        return {ARRAY_TAG: True, b'data': obj.tobytes(), b'dtype': dtype.str,
                b'shape': list(obj.shape)}
    if isinstance(obj, np.generic):
        dtype = _checked_dtype(obj.dtype)
        return {SCALAR_TAG: True, b'data': obj.item(), b'dtype': dtype.str}
    raise TypeError(f'cannot pack a {type(obj).__name__} to msgpack')


def _decode(obj: dict) -> Any:
    if obj.get(ARRAY_TAG) is True:
        dtype = _checked_dtype(_field(obj, b'dtype', str))
        data = _field(obj, b'data', bytes)
        shape = _field(obj, b'shape', (list, tuple))
        if not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0
                   for size in shape):
            raise ValueError(f'array shape {shape!r} is not a list of sizes')
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize != len(data):
            raise ValueError(f'array of shape {tuple(shape)} and dtype {dtype.str} needs '
                             f'{count * dtype.itemsize} bytes, the message holds {len(data)}')
        # A copy: frombuffer over the message is read-only, and a policy may write to its input.
        return np.frombuffer(data, dtype=dtype, count=count).reshape(shape).copy()
    if obj.get(SCALAR_TAG) is True:
        dtype = _checked_dtype(_field(obj, b'dtype', str))
        try:
            return dtype.type(obj.get(b'data'))
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(f'bad numpy scalar of dtype {dtype.str}: {error}') from error
    return obj


def _field(obj: dict, key: bytes, kind) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise ValueError(f'numpy entry has no valid {key.decode()!r} field: {value!r:.60}')
    return value
