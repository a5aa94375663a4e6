"""
Base-policy adapter for a policy server that speaks the openpi websocket protocol (pi0, pi0.5).

Registered as 'openpi' in the hilresrl.base_policies entry-point group. Configuration:

- ``host`` (default 'localhost'), ``port`` (default 8000): where the server listens.
- ``api_key`` (default ''): sent as ``Authorization: Api-Key <key>`` when not empty.
- ``action_dim`` (required int): the cell's action axes. A chunk with another number of
  columns is refused, never truncated, unless ``action_columns`` says which to take.
- ``action_columns`` (optional list of ``action_dim`` ints): the server's columns to use, in
  the cell's axis order (pi0 servers often pad actions to 32 columns).
- ``observation_map`` (optional dict, openpi key -> our observation name), e.g.
  ``{'observation/state': 'task_state', 'observation/image': 'image/camera/front/image_raw'}``;
  without it every observation entry is sent under its own name.
- ``prompt_key`` (default 'prompt'): the key the episode instruction (given to ``reset()``) is
  sent under, when it is not empty.
- ``timeout_s`` (default 5.0): the limit for connecting, and for each inference.
- ``horizon`` (optional int): the rows every chunk must have; without it any length is taken.

The server's actions are passed on as it sends them (float32), not clipped or rescaled: the
server's own output transforms put them in the cell's action space. The connection opens on the
first ``act()``, so a node can start before its server; after a timeout or a lost connection it
is dropped and the next ``act()`` connects again.
"""

import threading
import time
from typing import Any, Dict, List, Mapping, Optional

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError
from hilresrl_policy.msgpack_arrays import packb, unpackb
import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

# Lines of a server's error text shown in the exception: its head and its tail (where a
# traceback names the exception).
ERROR_HEAD_LINES = 2
ERROR_TAIL_LINES = 5


class OpenPIPolicy(BasePolicy):
    """A remote openpi-protocol policy server as a base policy: one chunk per request."""

    def __init__(self, action_dim: int, host: str = 'localhost', port: int = 8000,
                 api_key: str = '', action_columns: Optional[List[int]] = None,
                 observation_map: Optional[Mapping[str, str]] = None,
                 prompt_key: str = 'prompt', timeout_s: float = 5.0,
                 horizon: Optional[int] = None):
        self.action_dim = int(action_dim)
        self.host = host
        self.port = int(port)
        self.uri = f'ws://{host}:{self.port}'
        self.action_columns = None if action_columns is None else list(action_columns)
        self.observation_map = None if observation_map is None else dict(observation_map)
        self.prompt_key = prompt_key
        self.timeout_s = float(timeout_s)
        self.expected_horizon = horizon
        if horizon:
            self.horizon = int(horizon)
        #: the server's metadata message (empty until connected)
        self.metadata: Dict[str, Any] = {}
        #: seconds from sending the observation to receiving the chunk, in the last act() that
        #: returned one (None before)
        self.last_latency_s: Optional[float] = None
        #: the server's own timing of that request (its 'server_timing', if it sends one)
        self.last_server_timing: Dict[str, Any] = {}
        self.source_model = f'openpi:{host}:{self.port}'
        self._headers = {'Authorization': f'Api-Key {api_key}'} if api_key else None
        self._instruction = ''
        self._connection: Optional[ClientConnection] = None
        self._lock = threading.Lock()

    def reset(self, instruction: str = '') -> None:
        """Start of an episode: the instruction becomes the prompt of every request."""
        self._instruction = instruction

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Send ``observation`` to the server; return its chunk, float32 (rows, action_dim)."""
        try:
            request = packb(self._request(observation))
        except (TypeError, ValueError) as error:
            raise BasePolicyError(f'cannot encode the observation for {self.uri}: {error}'
                                  ) from error
        with self._lock:
            connection = self._connection or self._connect()
            started = time.perf_counter()
            reply = self._exchange(connection, request)
            latency_s = time.perf_counter() - started
            if isinstance(reply, str):
                # openpi servers close the connection after an error: start afresh next time.
                self._drop()
                raise BasePolicyError(f'policy server error at {self.uri}: {_summary(reply)}')
        actions = self._actions(reply)
        self.last_latency_s = latency_s
        timing = reply.get('server_timing')
        self.last_server_timing = dict(timing) if isinstance(timing, dict) else {}
        if not self.expected_horizon:
            self.horizon = actions.shape[0]
        return actions

    def close(self) -> None:
        """Close the connection to the server (a later act() opens a new one)."""
        with self._lock:
            self._drop()

    def _request(self, observation: Mapping[str, np.ndarray]) -> Dict[str, Any]:
        if self.observation_map is None:
            request = dict(observation)
        else:
            request = {}
            for key, name in self.observation_map.items():
                if name not in observation:
                    raise BasePolicyError(
                        f'missing observation {name!r} (sent to {self.uri} as {key!r}); have: '
                        f'{", ".join(sorted(observation)) or "nothing"}')
                request[key] = observation[name]
        if self._instruction:
            request[self.prompt_key] = self._instruction
        return request

    def _connect(self) -> ClientConnection:
        try:
            # No compression and no size limit, as openpi's own client: images are large and
            # barely compress.
            connection = connect(self.uri, additional_headers=self._headers, compression=None,
                                 max_size=None, open_timeout=self.timeout_s,
                                 close_timeout=self._close_timeout_s())
            # Held open across calls; entering it is what websockets 17 asks of a connection
            # that outlives one block (and what older versions accept), close() leaves it.
            connection = connection.__enter__()
        except InvalidStatus as error:
            status = error.response.status_code
            hint = ': check api_key' if status in (401, 403) else ''
            raise BasePolicyError(f'policy server at {self.uri} refused the connection '
                                  f'(HTTP {status}){hint}') from error
        except WebSocketException as error:  # a bad address, or no websocket server there
            raise BasePolicyError(f'cannot open a websocket to {self.uri}: {error}; is a '
                                  'policy server listening there?') from error
        except TimeoutError as error:
            raise BasePolicyError(f'policy server unreachable at {self.uri}: no connection '
                                  f'within {self.timeout_s:g} s: is the policy server running '
                                  f'and reachable from here?') from error
        except OSError as error:
            raise BasePolicyError(f'policy server unreachable at {self.uri} ({error}): is the '
                                  f'policy server running?') from error
        try:
            metadata = connection.recv(timeout=self.timeout_s)
        except (TimeoutError, ConnectionClosed) as error:
            connection.close()
            what = ('sent no metadata within {:g} s'.format(self.timeout_s)
                    if isinstance(error, TimeoutError) else f'closed the connection ({error})')
            raise BasePolicyError(f'policy server at {self.uri} {what}: is it an openpi '
                                  f'policy server?') from error
        try:
            metadata = unpackb(metadata) if isinstance(metadata, bytes) else metadata
        except ValueError as error:
            connection.close()
            raise BasePolicyError(f'policy server at {self.uri} sent unreadable metadata: '
                                  f'{error}') from error
        if isinstance(metadata, str):
            connection.close()
            raise BasePolicyError(f'policy server error at {self.uri}: {_summary(metadata)}')
        self.metadata = metadata if isinstance(metadata, dict) else {}
        self.source_model = f'openpi:{self.host}:{self.port}'
        if self.metadata.get('name'):
            self.source_model += f'/{self.metadata["name"]}'
        if self.metadata.get('version'):
            self.source_model += f'@{self.metadata["version"]}'
        self._connection = connection
        return connection

    def _exchange(self, connection: ClientConnection, request: bytes) -> Any:
        try:
            connection.send(request)
            reply = connection.recv(timeout=self.timeout_s)
        except TimeoutError as error:
            # A late answer would be taken for the next request's: this connection is done.
            self._drop()
            raise BasePolicyError(f'no answer from the policy server at {self.uri} within '
                                  f'{self.timeout_s:g} s (timeout_s); the next act() '
                                  'reconnects') from error
        except (ConnectionClosed, OSError) as error:
            self._drop()
            raise BasePolicyError(f'lost the connection to the policy server at {self.uri} '
                                  f'({error}); the next act() reconnects') from error
        if isinstance(reply, str):
            return reply
        try:
            return unpackb(reply)
        except ValueError as error:
            raise BasePolicyError(f'unreadable answer from the policy server at {self.uri}: '
                                  f'{error}') from error

    def _actions(self, reply: Any) -> np.ndarray:
        if not isinstance(reply, dict) or 'actions' not in reply:
            keys = ', '.join(map(str, reply)) if isinstance(reply, dict) else type(reply).__name__
            raise BasePolicyError(f'the answer of {self.uri} has no actions (got: {keys})')
        actions = reply['actions']
        if not isinstance(actions, np.ndarray) or actions.dtype.kind not in 'biuf':
            kind = (f'a {actions.dtype} array' if isinstance(actions, np.ndarray)
                    else f'a {type(actions).__name__}')
            raise BasePolicyError(f'{self.uri} sent actions as {kind}, not a numeric array')
        if self.action_columns is not None and actions.ndim == 2 and \
                max(self.action_columns) < actions.shape[1]:
            actions = actions[:, self.action_columns]
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            taken = (f' (action_columns {self.action_columns})'
                     if self.action_columns is not None else '')
            raise BasePolicyError(
                f'actions from {self.uri} have shape {tuple(reply["actions"].shape)}, expected '
                f'(*, {self.action_dim}){taken}: set action_dim, or action_columns to pick the '
                "cell's axes")
        if self.expected_horizon and actions.shape[0] != self.expected_horizon:
            raise BasePolicyError(f'actions from {self.uri} have {actions.shape[0]} rows, '
                                  f'expected horizon {self.expected_horizon}')
        actions = np.ascontiguousarray(actions, dtype=np.float32)
        if not np.all(np.isfinite(actions)):
            raise BasePolicyError(f'actions from {self.uri} hold '
                                  f'{int(np.count_nonzero(~np.isfinite(actions)))} non-finite '
                                  'values: no chunk')
        return actions

    def _close_timeout_s(self) -> float:
        # A server busy inferring may not answer the closing handshake: do not wait long.
        return min(self.timeout_s, 1.0)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def make_openpi_policy(config: Dict[str, Any]) -> BasePolicy:
    """Create an openpi-protocol client from its configuration (see the module docstring)."""
    if 'action_dim' not in config:
        raise BasePolicyError("the openpi base policy needs 'action_dim': the cell's action "
                              'axes')
    action_dim = _positive_int(config, 'action_dim')
    columns = config.get('action_columns')
    if columns is not None:
        if not isinstance(columns, (list, tuple)) or len(columns) != action_dim or not all(
                isinstance(column, int) and not isinstance(column, bool) and column >= 0
                for column in columns):
            raise BasePolicyError(f'action_columns must list {action_dim} column indices '
                                  f'(one per action axis), not {columns!r}')
    observation_map = config.get('observation_map')
    if observation_map is not None and not (
            isinstance(observation_map, dict) and all(
                isinstance(key, str) and isinstance(name, str)
                for key, name in observation_map.items())):
        raise BasePolicyError('observation_map must map openpi keys to observation names '
                              f'(strings), not {observation_map!r}')
    port = _positive_int(config, 'port', 8000)
    if port > 65535:
        raise BasePolicyError(f'port must be 1-65535, not {port}')
    try:
        timeout_s = float(config.get('timeout_s', 5.0))
    except (TypeError, ValueError):
        timeout_s = 0.0
    if not timeout_s > 0.0:
        raise BasePolicyError(f'timeout_s must be a positive number of seconds, not '
                              f'{config.get("timeout_s")!r}')
    horizon = _positive_int(config, 'horizon', None) if config.get('horizon') else None
    return OpenPIPolicy(action_dim, host=str(config.get('host', 'localhost')), port=port,
                        api_key=str(config.get('api_key', '')), action_columns=columns,
                        observation_map=observation_map,
                        prompt_key=str(config.get('prompt_key', 'prompt')),
                        timeout_s=timeout_s, horizon=horizon)


def _positive_int(config: Dict[str, Any], key: str, default: Any = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BasePolicyError(f'{key} must be a positive integer, not {value!r}')
    return value


def _summary(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) > ERROR_HEAD_LINES + ERROR_TAIL_LINES:
        lines = lines[:ERROR_HEAD_LINES] + ['...'] + lines[-ERROR_TAIL_LINES:]
    return '\n'.join(lines) or '(no message)'
