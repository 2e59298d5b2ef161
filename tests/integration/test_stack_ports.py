"""The local stack's start-up when its ports are taken (the CI failure of 2026-12-03: the broker died with
"BindException: Address already in use" on a port inside Linux's ephemeral range)."""

from __future__ import annotations

import os
import socket
import subprocess

from tests.integration.conftest import STACK

PORT_VARS = ("DRIFTSTREAM_KAFKA_PORT", "DRIFTSTREAM_KAFKA_CONTROLLER_PORT", "DRIFTSTREAM_REDIS_PORT")


def _env(run_dir, **ports) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PORT_VARS}
    env.update({"DRIFTSTREAM_RUN_DIR": str(run_dir), "PYTHON": os.environ.get("PYTHON", "") or _python()})
    env.update({k: str(v) for k, v in ports.items()})
    return env


def _python() -> str:
    import sys
    return sys.executable


def _free(port: int) -> bool:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _client_holding(port: int, target: tuple[str, int]) -> socket.socket:
    """A client connection whose local end is 127.0.0.1:port (what an ephemeral loopback client does)."""
    c = socket.socket()
    c.bind(("127.0.0.1", port))
    c.connect(target)
    return c


def test_default_ports_taken_move_to_free_ones_and_env_reports_them(stack, tmp_path):  # noqa: ARG001
    """The shared stack holds the default ports as listeners, and a client connection holds the first
    alternative for the broker as its local end: a second stack with the default settings starts on the next
    free ports, `env` points at them, the broker and Redis answer there, and `stop` forgets them."""
    import redis
    from confluent_kafka.admin import AdminClient

    from stream.config import load_config

    shared = load_config(None)
    rhost, rport = shared.redis["url"].removeprefix("redis://").split("/")[0].split(":")
    held = next(p for p in range(31102, 31800, 10) if _free(p))
    client = _client_holding(held, (rhost, int(rport)))
    env = _env(tmp_path / "run")
    try:
        r = subprocess.run(["bash", str(STACK), "start"], env=env, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr
        out = subprocess.run(["bash", str(STACK), "env"], env=env, capture_output=True, text=True,
                             check=True).stdout
        values = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
        bootstrap = values["DRIFTSTREAM_KAFKA__BOOTSTRAP_SERVERS"]
        url = values["DRIFTSTREAM_REDIS__URL"]
        kport = int(bootstrap.rsplit(":", 1)[1])
        assert kport != held and kport < 32768, bootstrap
        assert f"port 31092 is taken; using {kport} instead" in r.stderr, r.stderr
        assert url != shared.redis["url"], url
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert redis.Redis.from_url(url, socket_timeout=5).ping()
    finally:
        client.close()
        subprocess.run(["bash", str(STACK), "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert not (tmp_path / "run" / "ports").exists()


def test_a_port_set_in_the_environment_that_is_taken_fails_clearly(stack, tmp_path):  # noqa: ARG001
    from stream.config import load_config

    shared = load_config(None)
    rport = int(shared.redis["url"].removeprefix("redis://").split("/")[0].split(":")[1])
    env = _env(tmp_path / "run", DRIFTSTREAM_REDIS_PORT=rport)
    r = subprocess.run(["bash", str(STACK), "start"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert f"port {rport} is taken" in r.stderr and "DRIFTSTREAM_REDIS_PORT" in r.stderr, r.stderr
    subprocess.run(["bash", str(STACK), "stop"], env=env, capture_output=True, timeout=60)
