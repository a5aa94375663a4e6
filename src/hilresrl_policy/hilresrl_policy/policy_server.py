"""
Serve any hilresrl base policy over the openpi websocket protocol, as a pi0 server would.

Tests use it as a real server for the openpi adapter, and a cell can be driven through that
adapter by any registered base policy: ``python -m hilresrl_policy.policy_server --kind bc ...``.
"""

import argparse
import json
import logging
import re
import sys
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Set

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError, load_base_policy
from hilresrl_policy.msgpack_arrays import packb, unpackb
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.sync.server import serve, ServerConnection

# The largest request taken: room for a few camera images at full resolution (a 640x480 RGB
# frame is 0.9 MiB), refused by the websocket library before it is buffered, let alone decoded.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 2 ** 20

# Absolute file paths in an error's text (POSIX and Windows): not for a client's eyes.
_PATH = re.compile(r"(?<![\w.~:/\\-])(?:[A-Za-z]:)?[/\\][^\s'\",;:()\[\]{}<>]*")

_LOGGER = logging.getLogger(__name__)


def error_reply(error: BaseException) -> str:
    """Return what a client is told of a failure: the exception's type and message, no paths."""
    text = _PATH.sub('<path>', str(error)).strip()
    return f'{type(error).__name__}: {text}' if text else type(error).__name__


class PolicyServer:
    """A websocket server answering each observation with ``policy.act``'s action chunk."""

    def __init__(self, policy: BasePolicy, host: str = 'localhost', port: int = 0,
                 metadata: Optional[Dict[str, Any]] = None,
                 observation_map: Optional[Mapping[str, str]] = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        """
        Serve ``policy`` on ``host``:``port`` (0: a free port, see ``.port`` after start()).

        ``metadata`` is the first message of every connection (default: the policy's
        source_model as 'name', its action_dim and horizon); ``observation_map`` is the
        adapter's (openpi key -> observation name): received keys are renamed by it, others kept.
        A request larger than ``max_message_bytes`` closes its connection (code 1009, message
        too big) before it is read into memory; the server goes on serving.
        """
        if not int(max_message_bytes) > 0:
            raise ValueError(f'max_message_bytes must be positive, got {max_message_bytes}')
        self.max_message_bytes = int(max_message_bytes)
        self.refused_messages = 0  # requests over max_message_bytes, since the start
        self.policy = policy
        self.host = host
        self.port = port
        self.metadata = dict(metadata) if metadata is not None else {
            'name': policy.source_model, 'action_dim': int(policy.action_dim),
            'horizon': int(policy.horizon)}
        self.observation_map = dict(observation_map or {})
        self._server = None
        self._thread: Optional[threading.Thread] = None
        # Each connection has its own thread, and a policy need not be thread-safe.
        self._policy_lock = threading.Lock()
        self._connections: Set[ServerConnection] = set()  # open now, to close on stop()
        self._connections_lock = threading.Lock()

    @property
    def uri(self) -> str:
        """Return the address clients connect to."""
        return f'ws://{self.host}:{self.port}'

    def start(self) -> 'PolicyServer':
        """Listen, and serve in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError(f'{self.uri} is already serving')
        # No compression, as the openpi client asks; a size limit, unlike openpi's server.
        self._server = serve(self._handle, self.host, self.port, compression=None,
                             max_size=self.max_message_bytes)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f'policy-server-{self.port}', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection; wait for their threads to end."""
        server, self._server = self._server, None
        if server is None:
            return
        # Waits for requests in progress: a policy that never returns holds this up.
        server.shutdown()
        # websockets 16 (the last for Python 3.10) closes only the listening socket here, so
        # its clients would go on talking to a stopped server: close them as 17 does.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close(CloseCode.GOING_AWAY)
        self._thread.join()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def __enter__(self) -> 'PolicyServer':
        """Start serving."""
        return self.start()

    def __exit__(self, *exc_info) -> None:
        """Stop serving."""
        self.stop()

    def _handle(self, connection: ServerConnection) -> None:
        try:
            peer = connection.remote_address
        except OSError:  # gone already
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            connection.send(packb(self.metadata))
            for message in connection:
                connection.send(self._answer(message))
        except ConnectionClosed as closed:
            # The client went away, possibly before its answer: nothing to tell it. Or the
            # library refused a message over the size limit and closed the connection.
            sent = closed.sent
            if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
                self.refused_messages += 1
                _LOGGER.warning('refused a request from %s over the size limit of %d bytes '
                                '(max_message_bytes): closed its connection',
                                peer, self.max_message_bytes)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)

    def _answer(self, message: Any) -> Any:
        """Return the packed reply to one request, or the error text if it failed."""
        try:
            if not isinstance(message, bytes):
                raise ValueError('expected a binary msgpack observation, got a text message')
            request = unpackb(message)
            if not isinstance(request, dict):
                raise ValueError(f'expected a map of observations, got a {type(request).__name__}')
            observation = {self.observation_map.get(key, key): value
                           for key, value in request.items()}
            with self._policy_lock:
                started = time.perf_counter()
                actions = self.policy.act(observation)
                infer_ms = 1000.0 * (time.perf_counter() - started)
            return packb({'actions': np.asarray(actions, dtype=np.float32),
                          'server_timing': {'infer_ms': infer_ms}})
        except Exception as error:  # whatever failed, the client is told, and serving goes on
            # The traceback stays here: a client learns what failed, not where files are.
            _LOGGER.exception('request failed')
            return error_reply(error)


def main(argv: Optional[List[str]] = None) -> int:
    """Serve a registered base policy until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog='hilresrl serve-policy',
        description='Serve a hilresrl base policy over the openpi websocket protocol.')
    parser.add_argument('--kind', required=True,
                        help='base-policy adapter name (hilresrl.base_policies entry point)')
    parser.add_argument('--checkpoint', default='', help='checkpoint directory, if it loads one')
    parser.add_argument('--task', default='', help='task name, for task-specific adapters')
    parser.add_argument('--config-json', default='{}',
                        help='further adapter settings as a JSON object')
    parser.add_argument('--observation-map-json', default='{}',
                        help="the client's observation_map (openpi key -> observation name)")
    parser.add_argument('--host', default='localhost',
                        help='address to listen on (0.0.0.0: every interface)')
    parser.add_argument('--port', type=int, default=8000, help='port to listen on')
    parser.add_argument('--max-message-bytes', type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help='largest request taken, in bytes; a larger one closes its '
                             'connection before it is read (default: %(default)s, 16 MiB)')
    args = parser.parse_args(argv)
    if args.max_message_bytes <= 0:
        parser.error('--max-message-bytes must be positive')
    logging.basicConfig(level=logging.INFO, format='policy_server: %(levelname)s: %(message)s')
    try:
        config = {'checkpoint': args.checkpoint, 'task': args.task}
        config.update(json.loads(args.config_json))
        observation_map = json.loads(args.observation_map_json)
        if not isinstance(observation_map, dict):
            raise ValueError('--observation-map-json must be a JSON object')
        policy = load_base_policy(args.kind, config)
    except (BasePolicyError, ValueError, OSError) as error:
        print(f'policy_server: {error}', file=sys.stderr)
        return 2
    server = PolicyServer(policy, args.host, args.port, observation_map=observation_map,
                          max_message_bytes=args.max_message_bytes)
    try:
        server.start()
    except OSError as error:
        print(f'policy_server: cannot listen on {server.uri}: {error}', file=sys.stderr)
        policy.close()
        return 1
    print(f'serving {policy.source_model} on {server.uri}', flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        policy.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
