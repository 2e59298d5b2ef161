"""Fixtures of the fault suite: the shared stack (from the integration suite) and private stacks for faults
that must not touch the shared one (Redis and broker restarts)."""

from __future__ import annotations

import pytest

from tests.faults.harness import PrivateStack, Services
from tests.integration.conftest import cfg, redis_client, stack  # noqa: F401  (fixtures re-used as they are

# Ports of the private instance: the first free ones from these (the shared stack uses 31092/31093/31379, or
# the next free ones); below Linux's ephemeral range (32768-60999), so that no client connection holds them
# while a test has the private broker or Redis stopped.
PRIVATE_KAFKA_PORT = 31192
PRIVATE_CONTROLLER_PORT = 31193
PRIVATE_REDIS_PORT = 31479


def _free_port(start: int, taken: set[int]) -> int:
    import socket

    for port in range(start, 32768, 7):
        if port in taken:
            continue
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise RuntimeError(f"no free port from {start} below 32768")


@pytest.fixture
def services():
    """Subprocesses of ``driftstream run``; whatever still runs at the end of the test is killed."""
    s = Services()
    yield s
    s.kill_all()


@pytest.fixture(scope="session")
def _private_stack_session(stack, tmp_path_factory):  # noqa: F811
    """A private Kafka broker + redis-server (own run dir and ports), started once for the session and
    stopped in the finalizer. Tests may stop and restart either of them."""
    import subprocess

    from tests.integration.conftest import STACK

    taken: set[int] = set()
    ports = []
    for start in (PRIVATE_KAFKA_PORT, PRIVATE_CONTROLLER_PORT, PRIVATE_REDIS_PORT):
        ports.append(_free_port(start, taken))
        taken.add(ports[-1])
    ps = PrivateStack(tmp_path_factory.mktemp("private-stack"), *ports)
    subprocess.run(["bash", str(STACK), "install"], env=ps.env, check=True, capture_output=True)
    try:
        ps.start()
        yield ps
    finally:
        ps.stop()


@pytest.fixture
def private_stack(_private_stack_session):
    """The private stack, both servers running (a test that failed mid-fault may have left one stopped)."""
    _private_stack_session.start()
    yield _private_stack_session
    _private_stack_session.start()


def pytest_collection_modifyitems(items):
    for item in items:
        if "faults" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
