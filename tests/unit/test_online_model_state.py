"""The online model in the partition's checkpoint: the compiled model as plain data, River models pickled,
River-pipeline checkpoints migrated (or refused with the setting to use), the background model and the
swap surviving a restore, and the retrain worker training the configured kind."""

from __future__ import annotations

import base64
import dataclasses
import pickle
import random

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.errors import StateRefused
from stream.events import Record
from stream.learner import OnlineLinearModel
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from stream.state import online_model
from tests.fakes import MemoryPublisher


def _cfg(task: str = "classification", **online):
    cfg = load_config(None, {})
    dm = cfg.default_model
    dm = dataclasses.replace(dm, task=task, online_model=dataclasses.replace(dm.online_model, **online))
    return dataclasses.replace(cfg, default_model=dm)


def _proc(cfg, pub=None):
    pub = MemoryPublisher() if pub is None else pub
    return PartitionProcessor(0, cfg, 1, pub, Metrics(CollectorRegistry())), pub


def _records(task: str, n: int = 2400, seed: int = 5) -> list[Record]:
    """Inference events and their labels (2 events later), a concept flip at n/2 so that the online model's
    error drifts (warning -> background model -> swap); numeric, categorical, boolean and missing features."""
    rng = random.Random(seed)
    out, labels = [], {}
    for i in range(n):
        ts = 100.0 + i
        a = rng.gauss(0.0, 1.0)
        c = rng.choice(["DE", "FR", "NL", "IT"] if i < n // 3 else ["DE", "FR", "NL", "IT", "ES"])
        f = {"amount": a, "country": c, "vip": rng.random() < 0.3, "age": rng.randint(18, 90),
             "note": None if rng.random() < 0.8 else "x"}
        flipped = i >= n // 2
        if task == "classification":
            label = int((a > 0) != flipped) if rng.random() < 0.9 else int(rng.random() < 0.5)
            pred = int(a > 0)
        else:
            label = (3.0 * a if not flipped else -3.0 * a) + rng.gauss(0.0, 0.3)
            pred = 3.0 * a
        labels[i] = label
        eid = f"e{i}"
        v = {"id": eid, "model": "m", "ts": ts, "features": f, "prediction": pred}
        out.append(Record("inference", 0, i, int(ts * 1000), eid.encode(), orjson.dumps(v)))
        if i >= 2:
            k = i - 2
            out.append(Record("labels", 0, k, int((ts + 0.5) * 1000), f"e{k}".encode(),
                              orjson.dumps({"id": f"e{k}", "model": "m", "ts": ts + 0.5, "label": labels[k]})))
    out.sort(key=lambda r: (r.timestamp_ms, r.topic != "inference", r.offset))
    return out


def _cuts(n: int, seed: int = 11, sizes: tuple[int, ...] = (1, 7, 64, 200)) -> list[int]:
    rng = random.Random(seed)
    cuts, at = [], 0
    while at < n:
        k = rng.choice(sizes)
        cuts.append(min(k, n - at))
        at += k
    return cuts


def _run(cfg, records, restore_cfg=None, restore_at: set[int] | None = None, every: bool = False,
         sizes: tuple[int, ...] = (1, 7, 64, 200)):
    """Process ``records`` in random micro-batches; after the batches in ``restore_at`` (or every batch), the
    processor is replaced by a fresh one loaded from its payload (with ``restore_cfg`` if given). Returns the
    published events, the final payload and what the payloads held along the way."""
    pub = MemoryPublisher()
    proc, _ = _proc(cfg, pub)
    start, seen = 0, {"background": 0, "payloads": 0}
    for b, k in enumerate(_cuts(len(records), sizes=sizes)):
        proc.process(records[start:start + k], 0.0)
        start += k
        if every or (restore_at and b in restore_at):
            payload = proc.to_payload()
            state = orjson.loads(payload)
            seen["payloads"] += 1
            seen["background"] += "m" in state["backgrounds"]
            proc, _ = _proc(restore_cfg or cfg, pub)
            proc.load_payload(payload)
    return [orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in pub.sent], orjson.loads(proc.to_payload()), seen


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_restore_at_every_micro_batch_continues_like_the_uninterrupted_run(task: str) -> None:
    cfg = _cfg(task)
    records = _records(task)
    small = (1, 2, 5, 30)  # small batches, so that some restores fall while a background model trains
    plain, plain_state, _ = _run(cfg, records, sizes=small)
    restored, restored_state, seen = _run(cfg, records, every=True, sizes=small)
    assert restored == plain
    assert restored_state == plain_state
    kinds = {orjson.loads(e)["type"] for e in plain}
    assert "model-swap" in kinds, kinds
    if task == "classification":  # HDDMA warns: restores met a background model in training
        assert seen["background"] > 0
    stored = plain_state["models"]["m"]
    assert stored["kind"] == "online_linear" and stored["task"] == task  # plain data, not a pickle
    assert isinstance(stored["weights_numeric"], list)


def test_the_river_kind_is_pickled_and_continues_after_a_restore() -> None:
    cfg = _cfg(kind="river")
    records = _records("classification", n=1200)
    plain, plain_state, _ = _run(cfg, records)
    restored, restored_state, _ = _run(cfg, records, restore_at={3, 10, 25})
    assert restored == plain
    # a pickle's bytes depend on the objects' sharing, not only their values: compare the rest
    assert {**restored_state, "models": None} == {**plain_state, "models": None}
    assert isinstance(plain_state["models"]["m"], str)
    assert type(pickle.loads(base64.b64decode(plain_state["models"]["m"]))).__name__ == "Pipeline"


def test_a_river_pipeline_checkpoint_migrates_to_the_compiled_model_exactly() -> None:
    """A checkpoint written with River's pipeline (every checkpoint before the compiled model) loads into
    kind "logistic" with head "ovr" and continues exactly as River would have."""
    records = _records("classification")
    river = _cfg(kind="river")
    plain, _, _ = _run(river, records)
    migrated, state, _ = _run(river, records, restore_cfg=_cfg(kind="logistic", head="ovr"), restore_at={20})
    # the compiled model's online predictions and swaps go out at the end of their micro-batch
    assert sorted(migrated) == sorted(plain)
    assert state["models"]["m"]["kind"] == "online_linear"


def test_a_river_pipeline_checkpoint_migrates_to_the_binary_head() -> None:
    records = _records("classification", n=1200)
    river = _cfg(kind="river")
    proc, _ = _proc(river)
    proc.process(records[:800], 0.0)
    payload = proc.to_payload()
    pipeline = pickle.loads(base64.b64decode(orjson.loads(payload)["models"]["m"]))
    restored, _ = _proc(_cfg(kind="logistic", head="auto"))
    restored.load_payload(payload)
    model = restored.models["m"].monitor.online
    assert type(model) is OnlineLinearModel and model.n_heads == 1
    expected = OnlineLinearModel.from_river(pipeline, head="auto")
    assert model.to_state().keys() == expected.to_state().keys()
    x = {"amount": 0.3, "country": "FR", "vip": "True", "age": 40}
    assert model.predict_proba_one(x) == expected.predict_proba_one(x)


def test_a_model_the_configured_kind_cannot_continue_is_refused_with_the_setting_to_use() -> None:
    records = _records("classification", n=300)
    for written, configured, hint in (("hoeffding_tree", "logistic", "'river' for River's pipeline, 'hoeffding_tree'"),
                                      ("logistic", "river", "kind = 'logistic'")):
        proc, _ = _proc(_cfg(kind=written))
        proc.process(records, 0.0)
        payload = proc.to_payload()
        fresh, _ = _proc(_cfg(kind=configured))
        with pytest.raises(StateRefused, match="models.m.online_model.kind") as info:
            fresh.load_payload(payload)
        assert hint in str(info.value)


def test_the_retrain_worker_reads_the_compiled_model_and_trains_the_configured_kind(monkeypatch) -> None:
    from stream.tools import retrain_worker

    cfg = _cfg()
    records = _records("classification", n=600)
    proc, _ = _proc(cfg)
    proc.process(records, 0.0)
    payload = proc.to_payload()
    stored = online_model(payload, "m")
    assert type(stored) is OnlineLinearModel
    assert stored.to_state().keys() == proc.models["m"].monitor.online.to_state().keys()

    inference = [orjson.loads(r.value) for r in records if r.topic == "inference"]
    labels = [orjson.loads(r.value) for r in records if r.topic == "labels"]
    ranges = {cfg.topics.inference: (0, len(inference)), cfg.topics.labels: (0, len(labels))}
    monkeypatch.setattr(retrain_worker, "_window_offsets", lambda cfg, ev: ranges)
    monkeypatch.setattr(retrain_worker, "_read_range",
                        lambda cfg, topic, p, a, b: inference if topic == cfg.topics.inference else labels)
    built = []
    real = retrain_worker.build_online_model
    monkeypatch.setattr(retrain_worker, "build_online_model", lambda c, t: built.append(real(c, t)) or built[-1])

    class Store:
        def load(self, partition):
            return type("Checkpoint", (), {"payload": payload})()

    result = retrain_worker.evaluate_retrain_event(cfg, {"id": "r1", "model": "m", "partition": 0, "window": {}},
                                                  Store())
    assert [type(m) for m in built] == [OnlineLinearModel] and built[0].head == cfg.default_model.online_model.head
    assert result["trained_on"] + result["evaluated_on"] == len(labels)
    hold = sorted((e["ts"], e["features"], e["label"]) for e in
                  ({**i, "label": lab["label"]} for i, lab in zip(inference, labels)))[-result["evaluated_on"]:]
    want = sum(0.0 if stored.predict_one(x) == y else 1.0 for _, x, y in hold) / len(hold)
    assert result["online_error"] == want
    # the candidate (trained in one replay) is what learn_one row by row trains
    rows = sorted((e["ts"], e["features"], e["label"]) for e in
                  ({**i, "label": lab["label"]} for i, lab in zip(inference, labels)))
    one_by_one = OnlineLinearModel("classification", cfg.default_model.online_model.learning_rate)
    for _, x, y in rows[: len(rows) - result["evaluated_on"]]:
        one_by_one.learn_one(x, y)
    assert built[0].to_state().keys() == one_by_one.to_state().keys()
    assert orjson.dumps(built[0].to_state(), option=orjson.OPT_SERIALIZE_NUMPY) == \
        orjson.dumps(one_by_one.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
    want = sum(0.0 if one_by_one.predict_one(x) == y else 1.0 for _, x, y in hold) / len(hold)
    assert result["candidate_error"] == want


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("sizes", [(1, 2, 5, 30), (64, 300)])
def test_the_batched_replay_gives_what_the_per_event_calls_give(task: str, sizes, monkeypatch) -> None:
    """The compiled model replays each micro-batch's predictions and learns in one call (with swaps and a
    background model mid-batch); the per-event path, record by record, is the reference."""
    from stream.detect import ModelMonitor

    records = _records(task)
    monkeypatch.setattr(ModelMonitor, "batch_online", False)
    per_event, per_event_state, _ = _run(_cfg(task), records, sizes=(1,))
    monkeypatch.setattr(ModelMonitor, "batch_online", True)
    batched, batched_state, _ = _run(_cfg(task), records, sizes=sizes)
    assert sorted(batched) == sorted(per_event)
    assert batched_state == per_event_state
    swaps = [orjson.loads(e) for e in per_event if orjson.loads(e)["type"] == "model-swap"]
    assert swaps and (task == "regression" or any(s["background_trained_on"] > 0 for s in swaps))
    assert sum(orjson.loads(e)["type"] == "online-prediction" for e in batched) == len(records) // 2 + 1


def test_the_service_replays_the_compiled_model_per_batch(monkeypatch) -> None:
    """The batched path is the one the service takes: per-event predict_one / learn_one are not called."""
    calls = []
    for name in ("predict_one", "learn_one"):
        monkeypatch.setattr(OnlineLinearModel, name, lambda self, *a, _n=name: calls.append(_n))
    proc, pub = _proc(_cfg())
    proc.process(_records("classification", n=200), 0.0)
    assert calls == []
    assert sum(e["type"] == "online-prediction" for _, e in pub.sent) == 200
    # and the joins are handed over once per batch with the model on (classification)
    assert proc.models["m"].monitor.defers_joins
