"""The direct channel between the driver and a same-node env actor, without Ray.

The actor's end (:class:`~turngym.backends.ray_channel.ChannelServer`) serves an
:class:`~turngym.backends.ray_host.EnvHost` as it runs in an actor; the driver's end is what
:class:`~turngym.backends.ray_envs.HostPool` uses. Checked here: the replies are the batches the
host gives when Ray calls it, a client without the key gets nothing, a malformed request gets
an error reply and the channel goes on, and a peer that dies reads as the end of the channel.
"""

import multiprocessing
import os
import signal
import socket
import stat
import threading
from multiprocessing.connection import Client

import pytest
from toy_envs import Counter

from turngym.backends.ray_channel import (
    CLOSE,
    REPLY_ERROR,
    ChannelServer,
    Pending,
    channel_enabled,
    connect,
    new_folder,
    remove_folder,
    wait_replies,
)
from turngym.backends.ray_host import EnvHost, pack, unpack


@pytest.fixture
def served():
    """An EnvHost of Counters behind a channel: ``(host, server, folder)``."""
    host = EnvHost(Counter)
    host.start(None)
    folder = new_folder()
    server = ChannelServer(host._request, host.lock, folder)
    yield host, server, folder
    server.close()
    remove_folder(folder)


def _ask(conn, request):
    conn.send_bytes(request)
    return conn.recv_bytes()


def test_the_channel_answers_as_the_host_does_when_ray_calls_it(served):
    host, server, _ = served
    twin = EnvHost(Counter)  # the same calls made directly, as Ray makes them
    twin.start(None)
    conn = connect(server.address, server.authkey)
    reset = pack(([1, 2], [5, 6], {"split": "test"}))
    assert unpack(_ask(conn, b"r" + reset)) == unpack(twin.reset(reset))
    step = pack(([1, 2], ["<action>inc</action>", "nonsense"], None))
    assert unpack(_ask(conn, b"s" + step)) == unpack(twin.step(step))
    conn.send_bytes(CLOSE + pack([1]))  # close takes no reply: the next reply is the step's
    after = unpack(_ask(conn, b"s" + pack(([1, 2], ["<action>inc</action>"] * 2, None))))
    assert "no env instance 1" in after[0].description and after[1][1] is not None
    assert 1 not in host.envs and 2 in host.envs
    conn.close()


def test_a_client_without_the_key_gets_nothing_and_the_driver_is_still_served():
    handled = []
    folder = new_folder()
    server = ChannelServer(lambda request: handled.append(request) or b"done", threading.Lock(),
                           folder)  # fmt: skip
    try:
        with pytest.raises(multiprocessing.AuthenticationError):
            Client(server.address, family="AF_UNIX", authkey=b"x" * 32)
        assert connect(server.address, b"x" * 32) is None  # the driver falls back to Ray
        keyless = Client(server.address, family="AF_UNIX")  # skips the challenge...
        keyless.recv_bytes()  # (the challenge)
        keyless.send_bytes(b"r" + pack(([1], [1], {})))  # ...and sends a request anyway
        with pytest.raises((EOFError, OSError)):
            while keyless.recv_bytes() != b"done":  # refused ("#FAILURE#"), then closed
                pass
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(server.address)  # connects and says nothing, holding its thread
        got = []  # in a thread: a server that waits on the silent client would hang here
        driver = threading.Thread(target=lambda: got.append(connect(server.address,
                                                                    server.authkey)),
                                  daemon=True)  # fmt: skip
        driver.start()
        driver.join(10)
        assert got and got[0] is not None, "the driver's connection waited behind a silent one"
        conn = got[0]
        assert _ask(conn, b"s") == b"done"
        assert handled == [b"s"]  # only the driver's request ran
        silent.close()
        conn.close()
    finally:
        server.close()
        remove_folder(folder)


@pytest.mark.parametrize("request_", [b"", b"?junk", b"s" + b"not a pickle", b"r" + pack(42)])
def test_a_malformed_request_gets_an_error_reply_and_the_channel_goes_on(served, request_):
    _, server, _ = served
    conn = connect(server.address, server.authkey)
    reply = _ask(conn, request_)
    assert reply[:1] == REPLY_ERROR and len(reply) > 1
    assert unpack(_ask(conn, b"r" + pack(([3], [0], {"split": "test"}))))[0][0]
    conn.close()


def test_the_socket_lives_in_a_folder_only_its_user_can_open(served):
    _, server, folder = served
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert os.path.dirname(server.address) == folder


def test_a_second_connection_is_served_while_the_first_is_open(served):
    _, server, _ = served
    first = connect(server.address, server.authkey)
    second = connect(server.address, server.authkey)  # a warm actor's next rollout
    assert unpack(_ask(second, b"r" + pack(([4], [2], {"split": "test"}))))[0][0]
    first.close()
    second.close()


def _serve_then_wait(folder, keys):
    host = EnvHost(Counter)
    host.start(None)
    server = ChannelServer(host._request, host.lock, folder)
    keys.put((server.address, server.authkey))
    signal.pause()


def test_a_peer_that_dies_reads_as_the_end_of_the_channel():
    folder = new_folder()
    keys = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_serve_then_wait,
                                                        args=(folder, keys))  # fmt: skip
    child.start()
    try:
        conn = connect(*keys.get(timeout=30))
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        pending = Pending.send(conn, b"r" + pack(([1], [1], {"split": "test"})))
        assert wait_replies([pending], timeout=10) == [pending]
        with pytest.raises((EOFError, OSError)):
            pending.reply()
    finally:
        child.kill()
        remove_folder(folder)
    assert not os.path.exists(folder)


def test_the_channel_can_be_switched_off(monkeypatch):
    assert channel_enabled()
    monkeypatch.setenv("TURNGYM_RAY_CHANNEL", "0")
    assert not channel_enabled()
