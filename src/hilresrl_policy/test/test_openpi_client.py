"""Tests of the openpi protocol: msgpack arrays, the openpi client adapter, the policy server."""

import contextlib
import pickle
import socket
import threading
import time

from hilresrl_policy.adapters import BasePolicy, BasePolicyError
from hilresrl_policy.adapters.openpi_client import make_openpi_policy
from hilresrl_policy.msgpack_arrays import packb, unpackb
from hilresrl_policy.policy_server import main as server_main, PolicyServer
import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import serve

CHUNK = np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6], [0.7, -0.8, 0.9], [-1.0, 0.0, 0.25]],
                 dtype=np.float32)
OBSERVATION = {
    'task_state': np.array([0.5, -0.25, 1.0, 2.0], dtype=np.float32),
    'image/front': np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3),
    'joint_positions': np.zeros(7),
}
OBSERVATION_MAP = {'observation/state': 'task_state', 'observation/image': 'image/front'}


class ChunkPolicy(BasePolicy):
    """Answer every observation with a fixed chunk; record what it was given."""

    source_model = 'fake_chunk:test'
    action_dim = 3
    horizon = 4

    def __init__(self, chunk: np.ndarray = CHUNK):
        self.chunk = chunk
        self.observations = []
        self.slow = False  # wait for release before answering
        self.release = threading.Event()

    def act(self, observation):
        """Return the fixed chunk, after the release when slow."""
        self.observations.append(dict(observation))
        if self.slow:
            self.release.wait(timeout=5.0)
        return self.chunk.copy()


class PathFailingPolicy(BasePolicy):
    """Fail with an error that names a file, as a model loading its weights lazily would."""

    action_dim = 3

    def act(self, observation):
        """Raise an error naming an absolute path."""
        raise FileNotFoundError(2, 'No such file or directory', '/srv/secret/run7/model.pt')


class FailingPolicy(BasePolicy):
    """Fail on every observation."""

    action_dim = 3

    def act(self, observation):
        """Raise, as a model with a broken input would."""
        raise RuntimeError('camera front gave an empty frame')


@pytest.fixture
def policy():
    return ChunkPolicy()


@pytest.fixture
def server(policy):
    server = PolicyServer(policy).start()
    yield server
    policy.release.set()  # a request in progress holds up stop()
    server.stop()


@pytest.fixture
def clients():
    made = []

    def make(port, **config):
        client = make_openpi_policy({'port': port, 'action_dim': 3, 'timeout_s': 1.0, **config})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@contextlib.contextmanager
def raw_server(handler):
    """Serve ``handler`` (a websockets connection handler) on a free port; yield the port."""
    server = serve(handler, 'localhost', 0, compression=None, max_size=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        thread.join()


@pytest.mark.parametrize('array', [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.arange(6, dtype='>i8').reshape(2, 3),
    np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    np.array([True, False, True]),
    np.array(3.5, dtype=np.float16),
    np.zeros((0, 5), dtype=np.int32),
    np.array(['pick', 'place']),
], ids=lambda array: f'{array.dtype.str}{array.shape}')
def test_arrays_round_trip(array):
    message = {'array': array, 'scalar': np.float32(2.5), 'count': np.int64(-7),
               'nested': [array, {'text': 'pick the cube', 'value': 0.5, 'flag': None}]}
    back = unpackb(packb(message))
    for restored in (back['array'], back['nested'][0]):
        assert restored.dtype == array.dtype and restored.shape == array.shape
        np.testing.assert_array_equal(restored, array)
        assert restored.flags.writeable
    assert back['scalar'] == np.float32(2.5) and back['scalar'].dtype == np.float32
    assert back['count'] == -7 and back['count'].dtype == np.int64
    assert back['nested'][1] == {'text': 'pick the cube', 'value': 0.5, 'flag': None}


@pytest.mark.parametrize('value', [np.array([1, None], dtype=object), np.zeros(2, np.complex64),
                                   np.zeros(2, dtype=[('x', 'f4'), ('y', 'f4')]),
                                   np.complex128(1j)])
def test_unsupported_dtypes_are_refused(value):
    with pytest.raises(ValueError, match='is not supported'):
        packb({'value': value})


def test_unpacking_never_unpickles(monkeypatch):
    payload = pickle.dumps([1, 2])
    crafted = [
        {b'__ndarray__': True, b'data': payload, b'dtype': '|O', b'shape': [2]},
        {b'__ndarray__': True, b'data': payload, b'dtype': '|V8', b'shape': [1]},
        {b'__npgeneric__': True, b'data': payload, b'dtype': '|O'},
    ]

    def refuse(*args, **kwargs):
        raise AssertionError('unpickling attempted')

    monkeypatch.setattr(pickle, 'loads', refuse)
    monkeypatch.setattr(pickle, 'load', refuse)
    for entry in crafted:
        with pytest.raises(ValueError, match='is not supported'):
            unpackb(msgpack.packb({'actions': entry}, use_bin_type=True))
    short = {b'__ndarray__': True, b'data': b'\0' * 4, b'dtype': '<f4', b'shape': [2]}
    with pytest.raises(ValueError, match='needs 8 bytes'):
        unpackb(msgpack.packb(short, use_bin_type=True))


def test_act_returns_the_served_chunk_and_sends_mapped_observations(policy, server, clients):
    client = clients(server.port, observation_map=OBSERVATION_MAP)
    assert client.source_model == f'openpi:localhost:{server.port}'
    client.reset('put the cube in the bowl')
    actions = client.act(OBSERVATION)
    assert actions.dtype == np.float32 and actions.shape == (4, 3)
    np.testing.assert_array_equal(actions, CHUNK)
    sent = policy.observations[0]
    assert sorted(sent) == ['observation/image', 'observation/state', 'prompt']
    np.testing.assert_array_equal(sent['observation/state'], OBSERVATION['task_state'])
    assert sent['observation/image'].dtype == np.uint8
    np.testing.assert_array_equal(sent['observation/image'], OBSERVATION['image/front'])
    assert sent['prompt'] == 'put the cube in the bowl'
    # The metadata message was read; the server's name joins the source model.
    assert client.metadata == {'name': 'fake_chunk:test', 'action_dim': 3, 'horizon': 4}
    assert client.source_model == f'openpi:localhost:{server.port}/fake_chunk:test'
    assert client.horizon == 4
    assert 0.0 < client.last_latency_s < 1.0
    assert client.last_server_timing['infer_ms'] >= 0.0
    # An episode without an instruction sends no prompt; the connection is reused.
    client.reset('')
    np.testing.assert_array_equal(client.act(OBSERVATION), CHUNK)
    assert 'prompt' not in policy.observations[1]


def test_without_a_map_every_entry_is_sent_and_the_server_maps_back(policy, clients):
    with PolicyServer(policy, observation_map=OBSERVATION_MAP) as mapped_server:
        clients(mapped_server.port, observation_map=OBSERVATION_MAP).act(OBSERVATION)
    assert sorted(policy.observations[0]) == ['image/front', 'task_state']
    with PolicyServer(policy) as plain_server:
        clients(plain_server.port).act(OBSERVATION)
    assert sorted(policy.observations[1]) == sorted(OBSERVATION)


def test_a_missing_observation_is_named(server, clients):
    client = clients(server.port, observation_map=OBSERVATION_MAP)
    with pytest.raises(BasePolicyError) as error:
        client.act({'task_state': OBSERVATION['task_state']})
    assert "missing observation 'image/front'" in str(error.value)
    assert 'have: task_state' in str(error.value)


def test_a_slow_server_times_out_and_the_next_act_recovers(policy, server, clients):
    client = clients(server.port, timeout_s=0.5)
    client.act(OBSERVATION)
    policy.slow = True
    started = time.monotonic()
    with pytest.raises(BasePolicyError, match=r'no answer .* within 0\.5 s'):
        client.act(OBSERVATION)
    assert time.monotonic() - started < 2.0
    policy.slow = False
    policy.release.set()  # the abandoned request ends; its answer has nobody to go to
    np.testing.assert_array_equal(client.act(OBSERVATION), CHUNK)
    assert len(policy.observations) == 3


def test_a_server_that_disconnects_fails_once_then_works_again(policy, server, clients):
    client = clients(server.port, timeout_s=0.5)
    client.act(OBSERVATION)
    port = server.port
    server.stop()
    with PolicyServer(policy, port=port):
        with pytest.raises(BasePolicyError, match='lost the connection .* reconnects'):
            client.act(OBSERVATION)
        np.testing.assert_array_equal(client.act(OBSERVATION), CHUNK)


def test_a_wrong_shaped_chunk_is_refused_unless_columns_are_chosen(clients):
    wide = np.arange(10, dtype=np.float32).reshape(2, 5) / 10.0
    with PolicyServer(ChunkPolicy(wide)) as server:
        with pytest.raises(BasePolicyError) as error:
            clients(server.port).act(OBSERVATION)
        assert 'shape (2, 5), expected (*, 3)' in str(error.value)
        picked = clients(server.port, action_columns=[0, 2, 4]).act(OBSERVATION)
        np.testing.assert_array_equal(picked, wide[:, [0, 2, 4]])
        with pytest.raises(BasePolicyError, match='2 rows, expected horizon 3'):
            clients(server.port, action_columns=[0, 2, 4], horizon=3).act(OBSERVATION)


def test_a_server_exception_arrives_with_its_message(clients):
    with PolicyServer(FailingPolicy()) as server:
        client = clients(server.port)
        for _ in range(2):  # and the client connects again after it
            with pytest.raises(BasePolicyError) as error:
                client.act(OBSERVATION)
            message = str(error.value)
            assert message.startswith(f'policy server error at ws://localhost:{server.port}')
            assert 'RuntimeError: camera front gave an empty frame' in message


def test_an_error_reply_holds_no_traceback_and_no_path():
    with PolicyServer(PathFailingPolicy()) as server:
        with connect(server.uri, compression=None, max_size=None, open_timeout=5.0) as raw:
            raw.recv(timeout=5.0)  # the metadata
            raw.send(packb({'task_state': np.zeros(4, np.float32)}))
            reply = raw.recv(timeout=5.0)
            raw.send('not msgpack')  # a text frame: refused, and said why
            text_reply = raw.recv(timeout=5.0)
    assert isinstance(reply, str)
    assert reply == "FileNotFoundError: [Errno 2] No such file or directory: '<path>'"
    for answer in (reply, text_reply):
        assert 'Traceback' not in answer and '/' not in answer and '.py' not in answer
    assert text_reply == 'ValueError: expected a binary msgpack observation, got a text message'


def test_a_message_over_the_size_limit_is_refused_and_serving_goes_on(policy, clients):
    limit = 64 * 1024
    with PolicyServer(policy, max_message_bytes=limit) as server:
        with connect(server.uri, compression=None, max_size=None, open_timeout=5.0) as raw:
            raw.recv(timeout=5.0)
            raw.send(b'\0' * (limit + 1))
            with pytest.raises(ConnectionClosed) as closed:
                raw.recv(timeout=5.0)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # too big
        deadline = time.monotonic() + 30.0  # the server's handler counts it after closing
        while server.refused_messages != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.refused_messages == 1
        assert policy.observations == []  # nothing of it reached the policy
        # The server goes on serving, a new connection and a request within the limit alike.
        np.testing.assert_array_equal(clients(server.port).act(OBSERVATION), CHUNK)
    assert PolicyServer(policy).max_message_bytes == 16 * 2 ** 20  # the default: images fit
    with pytest.raises(ValueError, match='max_message_bytes must be positive'):
        PolicyServer(policy, max_message_bytes=0)


def test_an_unreachable_server_asks_whether_it_runs(clients):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(('localhost', 0))
        port = probe.getsockname()[1]
    client = clients(port, timeout_s=0.5)  # connecting waits for the first act()
    with pytest.raises(BasePolicyError) as error:
        client.act(OBSERVATION)
    message = str(error.value)
    assert f'unreachable at ws://localhost:{port}' in message
    assert message.endswith('is the policy server running?')


def test_a_foreign_server_metadata_api_key_and_object_actions(clients):
    headers = []

    def handler(connection):
        headers.append(connection.request.headers.get('Authorization'))
        connection.send(packb({'name': 'pi05_droid', 'version': '1.2'}))
        connection.recv()
        actions = {b'__ndarray__': True, b'data': pickle.dumps([0.0] * 3), b'dtype': '|O',
                   b'shape': [1, 3]}
        connection.send(msgpack.packb({'actions': actions}, use_bin_type=True))
        connection.recv()

    with raw_server(handler) as port:
        client = clients(port, api_key='secret')
        with pytest.raises(BasePolicyError) as error:
            client.act(OBSERVATION)
        assert 'unreadable answer from the policy server at' in str(error.value)
        assert "numpy dtype '|O' (object) is not supported" in str(error.value)
        assert headers == ['Api-Key secret']
        assert client.source_model == f'openpi:localhost:{port}/pi05_droid@1.2'
        client.close()


@pytest.mark.parametrize('config, complaint', [
    ({}, "needs 'action_dim'"),
    ({'action_dim': 0}, 'action_dim must be a positive integer'),
    ({'action_dim': 3, 'action_columns': [0, 1]}, 'action_columns must list 3'),
    ({'action_dim': 3, 'observation_map': ['task_state']}, 'observation_map must map'),
    ({'action_dim': 3, 'timeout_s': 0}, 'timeout_s must be a positive'),
])
def test_bad_configurations_say_what_is_wrong(config, complaint):
    with pytest.raises(BasePolicyError, match=complaint):
        make_openpi_policy(config)


def test_the_command_line_names_an_unknown_policy(capsys):
    assert server_main(['--kind', 'no_such_policy', '--port', '0']) == 2
    assert 'no base policy named' in capsys.readouterr().err
