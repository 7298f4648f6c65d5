"""config/db.py: the async SQL of the turn path."""
import os
import resource
import socket

import pytest

from config.db import has_data

HIGH_FD = 1500  # past select()'s limit of 1,024: a process holding 2,000 streams has descriptors up there


@pytest.fixture
def high_socket_pair():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= HIGH_FD:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, HIGH_FD + 100), hard))
    ours, theirs = socket.socketpair()
    high = os.dup2(ours.fileno(), HIGH_FD)
    yield high, theirs
    os.close(high)
    ours.close()
    theirs.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_pooled_connection_past_descriptor_1024_is_checked_without_error(high_socket_pair):
    fd, peer = high_socket_pair

    assert has_data(fd) is False  # an idle connection: handed out with no round trip
    peer.sendall(b"goodbye")
    assert has_data(fd) is True  # the server said something (after a restart, its goodbye): pinged first
    peer.close()
    assert has_data(fd) is True
