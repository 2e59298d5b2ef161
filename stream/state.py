"""The partition's saved state: the only code that knows the payload layout.

A checkpoint payload is one JSON document (orjson, numpy arrays as lists) with everything a partition needs
to continue exactly: the join, the per-model pipelines (concept monitor, data quality, data drift, policy,
challenger, watches, waiting policy inputs), sequence counters and the next input offsets.

Online models (``models`` and ``backgrounds``, by model name): the compiled
:class:`~stream.learner.OnlineLinearModel` is its plain-data ``to_state()`` (an object with
``"kind": "online_linear"``); River models (``kind`` "river" / "hoeffding_tree"), which have no plain-data
state, are pickled inside the payload (a base64 string). :class:`~stream.checkpoint.CheckpointStore` checks
the payload's HMAC before anything here runs, so a model is only ever unpickled from a payload this service
wrote (see ``state.hmac_key``).

Migration: a checkpoint written while the online model was River's pipeline (every checkpoint before the
compiled model, whose kind "logistic" / "linear" was River's) loads into the compiled model with
:meth:`~stream.learner.OnlineLinearModel.from_river` (exact with ``head = "ovr"``; with ``"auto"`` a binary
label keeps the first of River's two regressions). A stored model the configured kind cannot continue (a
Hoeffding tree for a compiled kind, a compiled state for kind "river") is refused with a message that names
the setting to use.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

import orjson

from stream.errors import StateRefused
from stream.learner import OnlineLinearModel

STATE_FORMAT = 1


def _pickled(model: Any) -> str:
    return base64.b64encode(pickle.dumps(model, protocol=5)).decode()


def _unpickled(blob: str) -> Any:
    # only called on payloads whose HMAC the checkpoint store verified
    return pickle.loads(base64.b64decode(blob))


#: the kinds whose model is the compiled OnlineLinearModel (stream.learner.build_online_model)
COMPILED_KINDS = ("logistic", "linear")


def _stored_model(model: Any) -> Any:
    return model.to_state() if type(model) is OnlineLinearModel else _pickled(model)


def _decoded_model(stored: Any) -> Any:
    """The model as stored (a River model for a pickle), whatever the configuration says."""
    return OnlineLinearModel.from_state(stored) if isinstance(stored, dict) else _unpickled(stored)


def _loaded_model(stored: Any, spec: Any, name: str, partition: int) -> Any:
    """The stored online model of ``name``, as the configured kind continues it (see the module docstring)."""
    cfg = spec.online_model
    model = _decoded_model(stored)
    compiled = cfg.kind in COMPILED_KINDS
    if compiled and type(model) is not OnlineLinearModel:
        try:
            return OnlineLinearModel.from_river(model, head=cfg.head)
        except ValueError as exc:
            raise StateRefused(
                f"checkpoint of partition {partition}: model {name!r} has a River {type(model).__name__} online "
                f"model, which online_model.kind = {cfg.kind!r} (the compiled model) cannot continue ({exc}); "
                f"set models.{name}.online_model.kind to the kind it was written with ('river' for River's "
                "pipeline, 'hoeffding_tree') to keep it") from exc
    if not compiled and type(model) is OnlineLinearModel:
        raise StateRefused(
            f"checkpoint of partition {partition}: model {name!r} has a compiled online model (kind 'logistic' "
            f"/ 'linear'), which online_model.kind = {cfg.kind!r} cannot continue; set "
            f"models.{name}.online_model.kind = 'logistic' (or 'linear' for regression) to keep it")
    if compiled and model.task != spec.task:
        raise StateRefused(f"checkpoint of partition {partition}: model {name!r} has a {model.task} online model, "
                           f"the configured task is {spec.task}")
    return model


def encode_partition(proc: Any) -> bytes:
    """The payload of a :class:`~stream.partition.PartitionProcessor` between micro-batches."""
    monitors, models, backgrounds = {}, {}, {}
    quality, data_drift, policies, delay_watch, volume_watch, challengers, pending = {}, {}, {}, {}, {}, {}, {}
    disabled: dict[str, list[str]] = {}
    for name, mp in proc.models.items():
        mon = mp.monitor
        monitors[name] = mon.to_state()
        if mon.online is not None:
            models[name] = _stored_model(mon.online)
        if mon.background is not None:
            backgrounds[name] = _stored_model(mon.background)
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
        stored, bstored = state["models"].get(name), state.get("backgrounds", {}).get(name)
        on = mon.online is not None
        model = _loaded_model(stored, mp.spec, name, proc.partition) if stored is not None and on else None
        background = _loaded_model(bstored, mp.spec, name, proc.partition) if bstored is not None and on else None
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
    stored = orjson.loads(payload).get("models", {}).get(model)
    return None if stored is None else _decoded_model(stored)
