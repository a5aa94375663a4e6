"""
Serve any hilresrl base policy over the openpi websocket protocol, as a pi0 server would.

Tests use it as a real server for the openpi adapter, and a cell can be driven through that
adapter by any registered base policy: ``python -m hilresrl_policy.policy_server --kind bc ...``.
"""

import argparse
import json
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Mapping, Optional

from hilresrl_policy.adapters.base import BasePolicy, BasePolicyError, load_base_policy
from hilresrl_policy.msgpack_arrays import packb, unpackb
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve, ServerConnection


class PolicyServer:
    """A websocket server answering each observation with ``policy.act``'s action chunk."""

    def __init__(self, policy: BasePolicy, host: str = 'localhost', port: int = 0,
                 metadata: Optional[Dict[str, Any]] = None,
                 observation_map: Optional[Mapping[str, str]] = None):
        """
        Serve ``policy`` on ``host``:``port`` (0: a free port, see ``.port`` after start()).

        ``metadata`` is the first message of every connection (default: the policy's
        source_model as 'name', its action_dim and horizon); ``observation_map`` is the
        adapter's (openpi key -> observation name): received keys are renamed by it, others kept.
        """
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

    @property
    def uri(self) -> str:
        """Return the address clients connect to."""
        return f'ws://{self.host}:{self.port}'

    def start(self) -> 'PolicyServer':
        """Listen, and serve in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError(f'{self.uri} is already serving')
        # No compression and no size limit: what the openpi client asks for.
        self._server = serve(self._handle, self.host, self.port, compression=None,
                             max_size=None)
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
            connection.send(packb(self.metadata))
            for message in connection:
                connection.send(self._answer(message))
        except ConnectionClosed:
            pass  # the client went away, possibly before its answer: nothing to tell it

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
        except Exception:  # whatever failed, the client is told, and serving goes on
            return traceback.format_exc()


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
    args = parser.parse_args(argv)
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
    server = PolicyServer(policy, args.host, args.port, observation_map=observation_map)
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
