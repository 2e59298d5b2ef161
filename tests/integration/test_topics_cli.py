"""Issue 20: ``driftstream topics create -c FILE`` against the real broker, and the start-up error of
``driftstream run`` that lists the missing topics (``run`` creates none)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tests.integration.helpers import service_env

REPO = Path(__file__).resolve().parents[2]
NAMES = ("inference", "labels", "drift_events", "retrain_events", "online_predictions", "data_quality",
         "model_updates", "dead_letter", "control")


def _config(tmp: Path, stack, run: str, extra_topics: str = "") -> tuple[Path, dict[str, str]]:
    names = {n: f"tc{run}.{n.replace('_', '-')}" for n in NAMES}
    lines = "\n".join(f'{n} = "{v}"' for n, v in names.items())
    path = tmp / "c.toml"
    path.write_text(f"""
[kafka]
"bootstrap.servers" = "{stack.kafka['bootstrap.servers']}"

[redis]
url = "{stack.redis['url']}"

[topics]
{lines}
{extra_topics}

[state]
hmac_key = "k"
""")
    return path, names


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.tools.cli", *args], cwd=REPO, env=service_env(),
                          capture_output=True, text=True, timeout=120)


def test_topics_create_makes_every_topic_with_its_settings_and_copartitioned_inputs(stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    path, names = _config(tmp_path, stack, run, 'partitions = 3\nretention_ms = 3600000\n'
                                                 'settings = { "max.message.bytes" = 200000 }')
    admin = AdminClient({"bootstrap.servers": stack.kafka["bootstrap.servers"]})
    # the labels topic exists already with 5 partitions: the inference topic must follow it, not [topics]
    admin.create_topics([NewTopic(names["labels"], 5, 1)])[names["labels"]].result(30)

    out = _cli("topics", "create", "-c", str(path))
    assert out.returncode == 0, out.stderr
    assert f"exists  {names['labels']}" in out.stdout and f"created {names['inference']}" in out.stdout
    assert "co-partitioned: 5 partitions" in out.stdout
    md = admin.list_topics(timeout=10).topics
    counts = {n: len(md[v].partitions) for n, v in names.items()}
    assert counts == {n: 5 if n in ("inference", "labels") else 3 for n in NAMES}
    created = [v for n, v in names.items() if n != "labels"]
    for res, fut in admin.describe_configs([ConfigResource("topic", v) for v in created]).items():
        conf = fut.result(30)
        assert conf["retention.ms"].value == "3600000" and conf["max.message.bytes"].value == "200000", res
    # a second run creates nothing and still succeeds
    again = _cli("topics", "create", "-c", str(path))
    assert again.returncode == 0 and "created" not in again.stdout
    admin.delete_topics(list(names.values()))


def test_run_refuses_to_start_and_lists_the_missing_topics(stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    path, names = _config(tmp_path, stack, run)
    admin = AdminClient({"bootstrap.servers": stack.kafka["bootstrap.servers"]})
    present = [names["inference"], names["labels"], names["drift_events"]]
    for fut in admin.create_topics([NewTopic(v, 2, 1) for v in present]).values():
        fut.result(30)
    out = _cli("run", "-c", str(path), "--max-seconds", "5")
    assert out.returncode == 2
    line = next(ln for ln in out.stderr.splitlines() if "missing topics" in ln)
    listed = line.split("missing topics on ")[1].split(": ", 1)[1].split(";")[0].split(", ")
    # every absent topic but the optional control topic, in config order, and how to create them
    assert listed == [v for n, v in names.items() if v not in present and n != "control"]
    assert "driftstream topics create -c FILE" in line
    admin.delete_topics(present)


def test_a_second_instance_on_the_same_metrics_port_stops_with_a_clear_message(stack, tmp_path):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    run = uuid.uuid4().hex[:8]
    path, names = _config(tmp_path, stack, run, "partitions = 1")
    path.write_text(path.read_text() + f"\n[metrics]\nport = {port}\n")
    try:
        assert _cli("topics", "create", "-c", str(path)).returncode == 0
        out = _cli("run", "-c", str(path), "--max-seconds", "5")
    finally:
        taken.close()
        AdminClient({"bootstrap.servers": stack.kafka["bootstrap.servers"]}).delete_topics(list(names.values()))
    assert out.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1, port {port}" in out.stderr
    assert "another driftstream instance on this host" in out.stderr and "Traceback" not in out.stderr
