"""The partition's saved state: the only code that knows the payload layout.

A checkpoint payload is one JSON document (orjson, numpy arrays as lists) with everything a partition needs
to continue exactly: the join, the per-model pipelines (concept monitor, data quality, data drift, policy,
challenger, watches, waiting policy inputs), sequence counters and the next input offsets. River models,
which have no plain-data state, are pickled inside it; :class:`~stream.checkpoint.CheckpointStore` checks
the payload's HMAC before anything here runs, so a model is only ever unpickled from a payload this
service wrote (see ``state.hmac_key``).
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

import orjson

from stream.errors import StateRefused

STATE_FORMAT = 1


def _pickled(model: Any) -> str:
    return base64.b64encode(pickle.dumps(model, protocol=5)).decode()


def _unpickled(blob: str) -> Any:
    # only called on payloads whose HMAC the checkpoint store verified
    return pickle.loads(base64.b64decode(blob))


def encode_partition(proc: Any) -> bytes:
    """The payload of a :class:`~stream.partition.PartitionProcessor` between micro-batches."""
    monitors, models, backgrounds = {}, {}, {}
    quality, data_drift, policies, delay_watch, volume_watch, challengers, pending = {}, {}, {}, {}, {}, {}, {}
    disabled: dict[str, list[str]] = {}
    for name, mp in proc.models.items():
        mon = mp.monitor
        monitors[name] = mon.to_state()
        if mon.online is not None:
            models[name] = _pickled(mon.online)
        if mon.background is not None:
            backgrounds[name] = _pickled(mon.background)
        quality[name] = mp.quality.to_state()
        data_drift[name] = mp.data_drift.to_state()
        policies[name] = mp.policy.to_state()
        delay_watch[name] = mp.delay_watch.to_state()
        volume_watch[name] = mp.volume_watch.to_state()
        challengers[name] = mp.challenger.to_state()
        if mp.pending:
            pending[name] = mp.stored_pending()
        if mp.disabled:
            disabled[name] = sorted(mp.disabled)
    state = {
        "format": STATE_FORMAT,
        "quality": quality,
        "data_drift": data_drift,
        "partition": proc.partition,
        "next_offsets": proc.next_offsets,
        "join": proc.join.to_state(),
        "monitors": monitors,
        "models": models,
        "backgrounds": backgrounds,
        "policies": policies,
        "delay_watch": delay_watch,
        "volume_watch": volume_watch,
        "challengers": challengers,
        "policy_inputs": pending,
        "disabled": disabled,
        "seq": proc.seq,
        "last_ts": proc.last_ts,
        "expired_predictions": proc.expired_predictions,
        "unmatched_labels": proc.unmatched_labels,
    }
    return orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY)


def load_partition(proc: Any, payload: bytes) -> None:
    """Load a payload whose HMAC was already verified by the checkpoint store into a fresh processor."""
    state = orjson.loads(payload)
    if state.get("format") != STATE_FORMAT or state.get("partition") != proc.partition:
        raise StateRefused(
            f"checkpoint for partition {proc.partition} has format {state.get('format')!r} "
            f"and partition {state.get('partition')!r}; refusing it"
        )
    proc.next_offsets = {k: int(v) for k, v in state["next_offsets"].items()}
    proc.join.load_state(state["join"])
    for name, mstate in state["monitors"].items():
        mp = proc.add_model(name)
        mon = mp.monitor
        blob = state["models"].get(name)
        model = _unpickled(blob) if blob is not None and mon.online is not None else None
        bblob = state.get("backgrounds", {}).get(name)
        background = _unpickled(bblob) if bblob is not None and mon.online is not None else None
        mon.load_state(mstate, model, background)
        # checkpoints written before a component existed have no state for it: it starts fresh
        for key, component in (("policies", mp.policy), ("delay_watch", mp.delay_watch),
                               ("volume_watch", mp.volume_watch), ("challengers", mp.challenger),
                               ("quality", mp.quality), ("data_drift", mp.data_drift)):
            if name in state.get(key, {}):
                component.load_state(state[key][name])
        mp.load_pending(state.get("policy_inputs", {}).get(name, []))
        if name in state.get("disabled", {}):  # components that raised stay off
            mp.apply_disabled(set(state["disabled"][name]))
    proc.seq = state.get("seq", 0)
    proc.last_ts = state.get("last_ts", 0.0)
    proc.expired_predictions = state["expired_predictions"]
    proc.unmatched_labels = state["unmatched_labels"]


def online_model(payload: bytes | None, model: str) -> Any | None:
    """The online model of ``model`` in a verified payload (None if it has none): for the retrain worker."""
    if payload is None:
        return None
    blob = orjson.loads(payload).get("models", {}).get(model)
    return None if blob is None else _unpickled(blob)
