"""The baseline of ``benchmarks/pipeline.py``: the drift job a user would write with Quix Streams + River.

    python benchmarks/quix_baseline.py --inference T1 --labels T2 --drift-topic T3 --group G --expect N

It is the idiomatic Quix Streams 3.x job, written as its documentation teaches:

* an ``Application`` with ``consumer_group`` and ``auto_offset_reset="earliest"``;
* one ``StreamingDataFrame`` per input topic (key = event id, JSON values), joined with ``concat`` (Quix
  aligns the two topics by timestamp and keeps per-key state for the merged stream);
* a stateful ``apply``: the prediction (the whole event, features included) waits in the state store
  under its key until the label comes, or the label waits for the prediction;
* per joined event, River's ``ADWIN`` and ``HDDMA`` ``.update`` on the served model's 0/1 error, one pair
  per (partition, model) in a dict, as a user would keep them;
* alarms go to a drift topic with ``to_topic``;
* with ``--model`` (the ``quix+model`` variant), also the online model a user would add next to the
  detectors: River's scaled + one-hot logistic pipeline (:func:`river_model`, the same features the
  service's model gets), one per (partition, model), ``predict_proba_one`` then ``learn_one`` per joined
  event. Its head is River's binary ``LogisticRegression`` on ``label == 1``, what a user writes for a 0/1
  label (cheaper than the one-vs-rest head of the service's ``kind = "river"`` model: two regressions).

What it leaves out, on purpose, because a first user job does too: data-quality checks, feature drift,
expiry of predictions whose label never comes, dead-lettering of bad messages, and checkpointing of the
detectors (they live only in memory, so a restart forgets them). ``commit_interval`` is set to the
driftstream checkpoint interval of the benchmark (1 s) so that both commit state equally often.

Stop condition: a counter of consumed input messages; at ``--expect`` the job calls ``app.stop()``. The
last line printed is a JSON object with the counts and the processing window (first to last message,
wall and CPU seconds).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from typing import Any

import orjson


class DriftJob:
    """The user's functions, with the counters the benchmark reads."""

    def __init__(self, expect: int, app: Any = None, model: bool = False) -> None:
        self.expect = expect
        self.app = app
        self.model = model
        #: the online model's 0/1 errors (predicted before it learns the label), with ``model``
        self.model_errors = 0
        self.consumed = 0
        self.joined = 0
        self.alarms = 0
        self.first_at: float | None = None
        self.first_cpu = 0.0
        self.done_at: float | None = None
        self.done_cpu = 0.0
        self.detectors: dict[tuple[int, str], tuple[Any, Any]] = {}
        self.models: dict[tuple[int, str], Any] = {}

    def join(self, value: dict[str, Any], state: Any) -> dict[str, Any] | None:
        """Stateful step: remember whichever side came first under the event id, emit the pair."""
        self._count()
        if "label" in value:
            prediction = state.get("prediction")
            if prediction is None:
                state.set("label", value)
                return None
            state.delete("prediction")
            label = value
        else:
            label = state.get("label")
            if label is None:
                state.set("prediction", value)
                return None
            state.delete("label")
            prediction = value
        self.joined += 1
        joined = {"id": prediction["id"], "model": prediction["model"], "ts": label["ts"],
                  "error": float(prediction["prediction"] != label["label"])}
        if self.model:
            joined.update(features=prediction["features"], label=label["label"])
        return joined

    def detect(self, joined: dict[str, Any]) -> dict[str, Any] | None:
        """River's detectors, one pair per (partition, model), updated once per joined event."""
        from quixstreams import message_context
        from river.drift import ADWIN
        from river.drift.binary import HDDMA

        key = (message_context().partition, joined["model"])
        if self.model:
            self.learn(key, joined)
        pair = self.detectors.get(key)
        if pair is None:
            pair = self.detectors[key] = (ADWIN(), HDDMA())
        alarm = None
        for det in pair:
            det.update(joined["error"])
            if det.drift_detected:
                alarm = type(det).__name__
        if alarm is None:
            return None
        self.alarms += 1
        return {"type": "drift", "model": joined["model"], "partition": key[0], "detector": alarm,
                "event_id": joined["id"], "ts": joined["ts"]}

    def learn(self, key: tuple[int, str], joined: dict[str, Any]) -> None:
        """The online model of (partition, model): predict the event, then learn its label."""
        model = self.models.get(key)
        if model is None:
            model = self.models[key] = river_model()
        x, y = joined["features"], joined["label"] == 1
        proba = model.predict_proba_one(x)
        self.model_errors += (proba.get(True, 0.0) >= 0.5) != y
        model.learn_one(x, y)

    def _count(self) -> None:
        self.consumed += 1
        if self.first_at is None:
            self.first_at, self.first_cpu = time.monotonic(), time.process_time()
        if self.consumed == self.expect:
            self.done_at, self.done_cpu = time.monotonic(), time.process_time()
            if self.app is not None:
                self.app.stop()


def river_model(learning_rate: float = 0.05) -> Any:
    """River's scaled numeric + one-hot categorical features into a logistic regression (SGD), the
    pipeline of the service's ``kind = "river"`` online model with a binary head."""
    from river import compose, linear_model, optim, preprocessing

    numeric = compose.SelectType(int, float) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return (numeric + categorical) | linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))


def build_app(bootstrap: str, group: str, inference: str, labels: str, drift_topic: str, state_dir: str,
              job: DriftJob, commit_interval: float = 1.0) -> Any:
    from quixstreams import Application

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=commit_interval,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    job.app = app
    predictions = app.dataframe(app.topic(inference, key_deserializer="str", value_deserializer="json"))
    label_events = app.dataframe(app.topic(labels, key_deserializer="str", value_deserializer="json"))
    sdf = predictions.concat(label_events)
    sdf = sdf.apply(job.join, stateful=True)
    sdf = sdf.filter(lambda v: v is not None)
    sdf = sdf.apply(job.detect)
    sdf = sdf.filter(lambda v: v is not None)
    sdf.to_topic(app.topic(drift_topic, key_deserializer="str", value_serializer="json"))
    return app


def run(bootstrap: str, group: str, inference: str, labels: str, drift_topic: str, expect: int,
        commit_interval: float = 1.0, timeout: float = 3600.0, model: bool = False) -> dict[str, Any]:
    """Run the job until ``expect`` input messages are consumed (or ``timeout`` seconds without one);
    with ``model``, River's online model learns every joined event too."""
    state_dir = tempfile.mkdtemp(prefix="quix-bench-state-")
    job = DriftJob(expect, model=model)
    try:
        app = build_app(bootstrap, group, inference, labels, drift_topic, state_dir, job, commit_interval)
        app.run(timeout=timeout)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    out: dict[str, Any] = {"consumed": job.consumed, "joined": job.joined, "alarms": job.alarms}
    if model:
        out.update(models=len(job.models), model_errors=job.model_errors)
    if job.first_at is not None:
        end, end_cpu = (job.done_at, job.done_cpu) if job.done_at is not None else (time.monotonic(), time.process_time())
        out.update(first_at=job.first_at, seconds=end - job.first_at, cpu_seconds=end_cpu - job.first_cpu)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:31092")
    ap.add_argument("--group", required=True)
    ap.add_argument("--inference", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--drift-topic", required=True)
    ap.add_argument("--expect", type=int, required=True, help="stop after this many consumed input messages")
    ap.add_argument("--commit-interval", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=120.0, help="stop after this many seconds without a message")
    ap.add_argument("--model", action="store_true", help="also River's online model per (partition, model)")
    args = ap.parse_args(argv)
    result = run(args.bootstrap, args.group, args.inference, args.labels, args.drift_topic, args.expect,
                 args.commit_interval, args.timeout, model=args.model)
    print(orjson.dumps(result).decode())
    return 0 if result["consumed"] == args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
