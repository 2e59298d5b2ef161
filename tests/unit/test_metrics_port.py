"""Issue 20: two instances on one host share the default metrics port; the second gets a clear message (or
the next free port when ``metrics.port_search`` says so) instead of an opaque bind error."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics, MetricsPortInUse, serve_metrics


def _taken_ports(n: int) -> tuple[int, list[socket.socket]]:
    """``n`` consecutive ports bound and listening on 127.0.0.1 (another instance's), and their sockets."""
    for _ in range(50):
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        base = first.getsockname()[1]
        socks = [first]
        try:
            for k in range(1, n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + k))
                socks.append(s)
        except OSError:
            for s in socks:
                s.close()
            continue
        for s in socks:
            s.listen()
        return base, socks
    raise RuntimeError("no run of free ports")


def test_a_taken_port_fails_with_a_message_that_says_what_to_do():
    base, socks = _taken_ports(1)
    try:
        with pytest.raises(MetricsPortInUse) as err:
            serve_metrics(CollectorRegistry(), "127.0.0.1", base)
        msg = str(err.value)
        assert f"port {base}" in msg and "another driftstream instance" in msg
        assert "metrics.port" in msg and "metrics.port_search" in msg
    finally:
        for s in socks:
            s.close()


def test_port_search_serves_on_the_next_free_port_and_gives_up_after_n():
    base, socks = _taken_ports(3)
    registry = CollectorRegistry()
    Metrics(registry).output("drift-events")
    try:
        with pytest.raises(MetricsPortInUse, match=f"ports {base}-{base + 2}"):
            serve_metrics(registry, "127.0.0.1", base, port_search=2)
        socks.pop().close()  # the third port comes free
        port, server = serve_metrics(registry, "127.0.0.1", base, port_search=2)
        try:
            assert port == base + 2
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            assert 'driftstream_output_events_total{topic="drift-events"} 1.0' in body
        finally:
            server.shutdown()
            server.server_close()
    finally:
        for s in socks:
            s.close()
