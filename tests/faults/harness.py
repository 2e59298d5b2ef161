"""Shared machinery of the fault suite: run the real service, fault it, compare with a clean run.

Every fault test follows the crash-equivalence recipe of ``tests/integration/test_engine.py`` (whose
helpers are imported here): a workload is produced once, a clean uninterrupted run and a faulted run read
the same input topics with their own outputs, consumer group and Redis namespace, and the faulted run's
outputs (by deterministic id and content) and final per-partition state must equal the clean run's.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
from confluent_kafka import Consumer, TopicPartition

from stream.checkpoint import CheckpointStore
from stream.config import AppConfig
from stream.scope.service import OFFSET_KEY
from tests.integration.helpers import service_env
from tests.integration.conftest import STACK
from tests.integration.test_engine import (  # noqa: F401  (re-exported for the fault tests)
    OUTPUTS,
    _caught_up as caught_up,
    _end_offsets as end_offsets,
    _final_states as final_states,
    _sibling,
    _write_toml,
)

HMAC_KEY = "test-hmac-key"


# -- reading outputs ------------------------------------------------------------------------------
def read_exact(cfg: AppConfig, topic: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every message of ``topic`` up to its current high watermarks (no idle guessing: the writer has
    flushed before we read, so the watermarks are the end)."""
    c = Consumer({"bootstrap.servers": cfg.kafka["bootstrap.servers"], "group.id": f"fault-reader-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in md.partitions}
        todo = {p for p, (low, high) in ends.items() if high > low}
        c.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while todo:
            assert time.monotonic() < deadline, f"reading {topic}: partitions {sorted(todo)} did not reach their end"
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                out.append(orjson.loads(m.value()))
                if m.offset() + 1 >= ends[m.partition()][1]:
                    todo.discard(m.partition())
        return out
    finally:
        c.close()


#: with the model stage on, its decisions are compared too (partition-scope ones are not published then)
SCOPE_OUTPUTS = ("retrain_events", "model_updates")


def outputs(cfg: AppConfig, topics: tuple[str, ...] | None = None) -> dict[str, dict]:
    """id -> event over the output topics; a replayed duplicate must carry identical content."""
    if topics is None:
        topics = OUTPUTS + (SCOPE_OUTPUTS if cfg.scope.enabled else ())
    out: dict[str, dict] = {}
    for name in topics:
        for ev in read_exact(cfg, getattr(cfg.topics, name)):
            prev = out.setdefault(ev["id"], ev)
            assert prev == ev, f"replay produced a different event for id {ev['id']}:\n{prev}\n{ev}"
    return out


@dataclass
class Comparison:
    compared: int
    lost: list[str]
    extra: list[str]
    differing: list[str]
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra or self.differing)


def compare(expected: dict[Any, dict], got: dict[Any, dict]) -> Comparison:
    lost = sorted(map(str, set(expected) - set(got)))
    extra = sorted(map(str, set(got) - set(expected)))
    differing = sorted(str(k) for k in set(expected) & set(got) if expected[k] != got[k])
    examples = [f"expected {expected[k]}\n     got {got[k]}" for k in list(set(expected) & set(got))
                if str(k) in differing[:3]]
    return Comparison(len(expected), lost, extra, differing, examples)


def report(test: str, trials: int, cmp: Comparison, started: float, states_equal: bool | None = None,
           **extra: Any) -> str:
    line = (f"[faults] {test}: trials={trials} events_compared={cmp.compared} lost={len(cmp.lost)} "
            f"extra={len(cmp.extra)} differing={len(cmp.differing)}"
            + ("" if states_equal is None else f" final_state_equal={states_equal}")
            + "".join(f" {k}={v}" for k, v in extra.items())
            + f" seconds={time.monotonic() - started:.1f}")
    if not cmp.ok:
        line += (f"\n  lost (first 5): {cmp.lost[:5]}\n  extra (first 5): {cmp.extra[:5]}"
                 f"\n  differing (first 5): {cmp.differing[:5]}\n  " + "\n  ".join(cmp.examples))
    print(line, flush=True)
    return line


def differences(a: Any, b: Any, limit: int = 12) -> str:
    """Up to ``limit`` places where two plain-data trees differ, ``; ``-joined (for assertion messages: the
    first alone can hide what the others say, e.g. a counter before the list that explains it)."""
    found: list[str] = []
    _differences(a, b, "", found, limit)
    return "; ".join(found) if found else "none"


def _differences(a: Any, b: Any, path: str, found: list[str], limit: int) -> None:
    if len(found) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                found.append(f"{path}/{k}: only in {'expected' if k in a else 'got'}")
            else:
                _differences(a[k], b[k], f"{path}/{k}", found, limit)
            if len(found) >= limit:
                return
    elif isinstance(a, list) and isinstance(b, list) and len(a) != len(b):
        found.append(f"{path}: length {len(a)} != {len(b)}")
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            before = len(found)
            _differences(x, y, f"{path}[{i}]", found, limit)
            if len(found) > before:  # one element is enough: the rest of a shifted list differs too
                return
    elif a != b:
        found.append(f"{path}: {str(a)[:200]} != {str(b)[:200]}")


def assert_equivalent(test: str, expected: dict, got: dict, started: float, trials: int,
                      expected_states: dict | None = None, got_states: dict | None = None, **extra: Any) -> str:
    cmp = compare(expected, got)
    states_equal = None if expected_states is None else expected_states == got_states
    line = report(test, trials, cmp, started, states_equal, **extra)
    assert cmp.compared > 0, line
    assert cmp.ok, line
    if expected_states is not None:
        diff = [p for p in expected_states if expected_states[p] != (got_states or {}).get(p)]
        where = differences(expected_states[diff[0]], (got_states or {}).get(diff[0])) if diff else None
        assert states_equal, f"{line}\n  final state differs for partitions {diff}; in the first: {where}"
    return line


def assert_scope_equivalent(test: str, expected: dict, got: dict, expected_scope: dict, got_scope: dict) -> str:
    """After :func:`assert_equivalent` (which compares every event, model-scope ones included): the clean run
    had model-scope events to compare, and the model stage's final state equals the clean run's."""
    model = [e for e in expected.values() if e.get("scope") == "model"]
    kinds: dict[str, int] = {}
    for e in model:
        kinds[e["type"]] = kinds.get(e["type"], 0) + 1
    same = expected_scope == got_scope
    line = (f"[faults] {test}: model_scope_events={len(model)} {kinds} "
            f"model_scope_got={sum(1 for e in got.values() if e.get('scope') == 'model')} scope_state_equal={same}")
    print(line, flush=True)
    assert model, f"{line}: the clean run published no model-scope event"
    if not same:  # where it differs first, then per partition what the stage took in (for the diagnosis)
        per = {m: {k: (expected_scope[m].get(k), got_scope.get(m, {}).get(k)) for k in ("counts", "join_pos")}
               for m in expected_scope}
        ends = {m: (expected_scope[m]["merge"].get("end"), got_scope.get(m, {}).get("merge", {}).get("end"))
                for m in expected_scope}
        raise AssertionError(f"{line}; differences: {differences(expected_scope, got_scope)}; per partition "
                             f"(expected, got): {per}; merge ends: {ends}")
    return line


# -- running the real service as a subprocess -------------------------------------------------------
def write_toml(path: Path, cfg: AppConfig, kafka: dict[str, Any] | None = None, extra: str = "") -> Path:
    """test_engine's TOML writer plus librdkafka settings in ``[kafka]`` and extra sections."""
    _write_toml(path, cfg)
    idle = (f"idle_partition_seconds = {cfg.scope.idle_partition_seconds}\n"
            f"stalled_partition_seconds = {cfg.scope.stalled_partition_seconds}\n")
    text = path.read_text().replace("[scope]\n", "[scope]\n" + idle, 1)
    if kafka:
        lines = "".join(f'"{k}" = {orjson.dumps(v).decode()}\n' for k, v in kafka.items())
        text = text.replace("[kafka]\n", "[kafka]\n" + lines, 1)
    path.write_text(text + extra)
    return path


class Services:
    """``driftstream run`` subprocesses; every one still alive is SIGKILLed by :meth:`kill_all`."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def spawn(self, toml: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        full = service_env(DRIFTSTREAM_STATE__HMAC_KEY=HMAC_KEY, **(env or {}))
        p = subprocess.Popen([sys.executable, "-m", "stream.tools.cli", "run", "--config", str(toml)], env=full,
                             stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.kill()
                    p.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass


def store(cfg: AppConfig, redis_client: Any) -> CheckpointStore:
    return CheckpointStore(redis_client, cfg.state.key_prefix, cfg.processing.group_id, cfg.state.hmac_key.encode())


def progress(cfg: AppConfig, client: Any, ends: dict) -> float:
    """Fraction of the input that the checkpoints in Redis cover."""
    st = store(cfg, client)
    done = 0
    for p in range(cfg.topics.partitions):
        raw = st.read_raw(p).get(b"offsets")
        if raw:
            done += sum(orjson.loads(raw).values())
    return done / sum(ends.values())


# -- the model-level stage (stream/scope): its own checkpoints, key prefix <prefix>-scope -------------------
#: counters of the summaries a stage read, replays included (a faulted run reads more): not compared
REPLAY_COUNTERS = ("duplicates", "summaries")
#: the fault runs use the model stage's default idle rule (scope.idle_partition_seconds 30 s,
#: stalled_partition_seconds 300 s). A faulted run (batch_size 20, checkpoints every 40 messages) catches up
#: slowly and partition by partition (librdkafka hands out one partition's fetched backlog after the other):
#: with the plain wall-clock rule the stage took the partitions reached last for idle, decided without them
#: and their items came late, so its events differed from the clean run's (4 lost, 14 extra in one run; the
#: harness then set 3600 s). Now the stage asks the broker: a silent partition with unprocessed input is
#: waited for, so the defaults give the clean run's events.


def often(base: AppConfig) -> dict[str, Any]:
    """How often a faulted run checkpoints: every 40 input messages or 0.1 s. The model stage checkpoints every
    ``checkpoint_every_messages // 50`` summaries (stream.app), so with 40 it wrote its whole state after every
    summary and the run took 2-3x as long: with the stage on, 400 (every 8 summaries, or 0.1 s, as before)."""
    return {"checkpoint_every_messages": 400 if base.scope.enabled else 40, "checkpoint_every_seconds": 0.1}


def with_scope(cfg: AppConfig, enabled: bool) -> AppConfig:
    """``cfg`` with the model-level stage on or off (its other settings: the defaults)."""
    return dataclasses.replace(cfg, scope=dataclasses.replace(cfg.scope, enabled=enabled))


def sibling(cfg: AppConfig, base: AppConfig, **processing: Any) -> AppConfig:
    """test_engine's sibling (same inputs, own outputs, group and Redis namespace), with ``base``'s model stage
    setting."""
    return dataclasses.replace(_sibling(cfg, base, **processing), scope=base.scope)


def scope_store(cfg: AppConfig, redis_client: Any) -> CheckpointStore:
    """The model stage's checkpoints, as stream.app.build_service names them."""
    return CheckpointStore(redis_client, f"{cfg.state.key_prefix}-scope", f"{cfg.processing.group_id}-scope",
                           cfg.state.hmac_key.encode())


def topic_ends(cfg: AppConfig, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": cfg.kafka["bootstrap.servers"], "group.id": "fault-wm"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def scope_caught_up(cfg: AppConfig, client: Any) -> bool:
    """The model stage's checkpoints cover every summary on the internal topic (true at the end once the
    partitions' checkpoints cover the input: a checkpoint flushes their summaries first)."""
    st = scope_store(cfg, client)
    for p, high in topic_ends(cfg, cfg.topics.summaries).items():
        raw = st.read_raw(p).get(b"offsets") if high else None
        if high and (raw is None or orjson.loads(raw).get(OFFSET_KEY, 0) < high):
            return False
    return True


def scope_read_all(cfg: AppConfig, timeout: float = 60.0) -> Callable[[Any], None]:
    """A ``run_until(before_stop=)`` for an in-process run: wait until its model stage has read every summary
    (the stop then checkpoints it)."""
    def wait(svc: Any) -> None:
        def done() -> bool:
            owned = dict(svc.scope.owned)
            return all(p in owned and (owned[p].next_offset or 0) >= high
                       for p, high in topic_ends(cfg, cfg.topics.summaries).items() if high)
        if svc.scope is not None:
            wait_for("the clean run's model stage reads every summary", done, timeout)
    return wait


def drained(cfg: AppConfig, model: str, state: dict) -> dict:
    """A model stage's checkpointed state once every partition has promised that nothing earlier will come (a
    last, empty summary with an infinite watermark from each), with the outputs that release makes
    (``drained_outputs``). How far a stage has released when a run stops depends on the wall clock: when the
    partitions' last summaries were cut (``scope.summary_flush_seconds``, heartbeats) sets the watermarks
    they carry, so a faulted run can stop with a few items still buffered that the clean run had released
    (the broker-restart test: 3 of 15,158 outcomes, or one partition's watermark 0.07 s lower). What the
    stage holds and what it decides on it does not depend on that: drained, the two states and the outputs
    of the drain must be equal item for item."""
    from stream.scope.stage import ModelStage
    from stream.scope.summary import Summary

    stage = ModelStage(model, cfg.model_spec(model), state["merge"]["partitions"], cfg.scope,
                       (cfg.topics.inference, cfg.topics.labels))
    stage.load_state(state)
    out = []
    for p, end in enumerate(list(stage.merge.end)):
        at = [0, 0] if end is None else list(end)
        out += stage.add(Summary(model, p, at, at, float("inf")))
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS
    got = orjson.loads(orjson.dumps(stage.to_state(), option=opt))
    got["drained_outputs"] = [orjson.loads(orjson.dumps(dataclasses.asdict(o), option=opt)) for o in out]
    return got


def scope_states(cfg: AppConfig, client: Any) -> dict[str, dict]:
    """model -> its stage's checkpointed state, :func:`drained` (without :data:`REPLAY_COUNTERS`), after
    checking that each checkpoint of the stage is consistent: it loads (HMAC, payload of its own partition),
    it covers its partition of the summaries topic to the end (nothing unread), and each model is in exactly
    one."""
    st = scope_store(cfg, client)
    states: dict[str, dict] = {}
    for p, high in topic_ends(cfg, cfg.topics.summaries).items():
        cp = st.load(p)
        if not high:
            assert cp is None or not orjson.loads(cp.payload)["stages"], f"scope partition {p}: state without input"
            continue
        assert cp is not None, f"scope partition {p} holds {high} summaries but has no checkpoint"
        assert cp.offsets == {OFFSET_KEY: high}, f"scope partition {p}: checkpoint at {cp.offsets}, topic end {high}"
        payload = orjson.loads(cp.payload)
        assert payload["partition"] == p, f"scope partition {p} holds the state of {payload['partition']}"
        for model, stage in payload["stages"].items():
            assert model not in states, f"model {model} has state in two scope partitions"
            stage = drained(cfg, model, stage)
            for k in REPLAY_COUNTERS:
                stage["merge"].pop(k)
            states[model] = stage
    assert states, "the model stage checkpointed no model"
    return states


def wait_for(what: str, cond: Callable[[], bool], timeout: float, interval: float = 0.3,
             alive: list[subprocess.Popen] | None = None, log: Path | None = None,
             progress: Callable[[], float] | None = None, max_seconds: float = 900.0) -> None:
    """Poll ``cond`` until true; fail with ``what`` (and the log tail) at the deadline, or as soon as one
    of ``alive`` exits. With ``progress``, the deadline is ``timeout`` after the last time ``progress()``
    grew (at most ``max_seconds`` in all): a loaded machine makes a run slow, a stall still fails."""
    started = time.monotonic()
    deadline = started + timeout
    last = progress() if progress is not None else None
    while True:
        if cond():
            return
        for p in alive or []:
            if p.poll() is not None:
                raise AssertionError(f"{what}: service pid {p.pid} exited with {p.returncode}\n{tail(log)}")
        now = time.monotonic()
        if progress is not None:
            value = progress()
            if value > last:
                last, deadline = value, min(now + timeout, started + max_seconds)
        if now > deadline:
            moved = "" if progress is None else f" (no progress for {timeout:.0f} s, or {max_seconds:.0f} s in all; at {last})"
            raise AssertionError(f"{what}: not reached within {now - started:.0f} s{moved}\n{tail(log)}")
        time.sleep(interval)


def tail(log: Path | None, n: int = 4000) -> str:
    if log is None or not log.exists():
        return ""
    return "--- service log tail ---\n" + log.read_text(errors="replace")[-n:]


def stop(proc: subprocess.Popen, log: Path | None = None, timeout: float = 45.0) -> int:
    """SIGTERM (drain + checkpoint) and wait for the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"service pid {proc.pid} did not stop within {timeout} s after SIGTERM\n{tail(log)}")


# -- a private Kafka + Redis, for faults that would disturb the shared stack ----------------------------
class PrivateStack:
    """``deploy/local/stack.sh`` on its own run dir and ports; only its own processes are ever touched."""

    def __init__(self, run_dir: Path, kafka_port: int, controller_port: int, redis_port: int) -> None:
        self.run_dir = run_dir
        self.kafka_port = kafka_port
        self.redis_port = redis_port
        self.env = {**os.environ, "DRIFTSTREAM_RUN_DIR": str(run_dir), "DRIFTSTREAM_KAFKA_PORT": str(kafka_port),
                    "DRIFTSTREAM_KAFKA_CONTROLLER_PORT": str(controller_port),
                    "DRIFTSTREAM_REDIS_PORT": str(redis_port), "PYTHON": sys.executable}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _stack(self, cmd: str, timeout: float = 150) -> None:
        r = subprocess.run(["bash", str(STACK), cmd], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"stack.sh {cmd} (private, {self.run_dir}) failed:\n{r.stdout}\n{r.stderr}"

    def start(self) -> None:
        """Start whatever of the two is not running (stack.sh start is idempotent) and wait until both answer."""
        self._stack("start")

    def stop(self) -> None:
        self._stack("stop")

    def _pid(self, name: str) -> int | None:
        f = self.run_dir / name / f"{name}.pid"
        try:
            return int(f.read_text().strip())
        except (OSError, ValueError):
            return None

    def _kill(self, name: str, sig: int, wait: float = 30.0) -> None:
        pid = self._pid(name)
        assert pid is not None, f"no pid file for the private {name}"
        os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def stop_redis(self) -> None:
        """SIGTERM to the private redis-server: it writes its AOF and exits."""
        self._kill("redis", signal.SIGTERM)

    def stop_kafka(self) -> None:
        """SIGTERM to the private broker: a controlled shutdown."""
        self._kill("kafka", signal.SIGTERM, wait=60)


def with_redis(cfg: AppConfig, url: str) -> AppConfig:
    return dataclasses.replace(cfg, redis={**cfg.redis, "url": url})


def with_kafka(cfg: AppConfig, bootstrap: str) -> AppConfig:
    return dataclasses.replace(cfg, kafka={**cfg.kafka, "bootstrap.servers": bootstrap})
