"""Produce a synthetic drifting workload into the configured topics at a steady rate.

Used by the ``demo-producer`` service of ``docker-compose.yml`` to feed the real service, and handy
against any cluster::

    python -m stream.tools.workload_producer --config driftstream.toml --events 200000 --rate 500

Events come from :mod:`stream.tools.workload` (the true concept changes every ``--change-every`` events, so
the served model's error jumps there) and are produced with :func:`stream.tools.workload.produce`. Event time
starts at the wall clock and advances at ``--rate``, so label delays and join expiry look like
production. Event ids carry a per-run prefix: a restarted producer sends new events, not duplicates.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Callable

from stream.config import ConfigError, load_config
from stream.tools.workload import Workload, produce

log = logging.getLogger("driftstream.workload_producer")


class PacedProducer:
    """Wraps a producer so that messages to ``paced_topic`` leave at ``rate`` per second.

    ``stream.tools.workload.produce`` produces as fast as it can; pacing in ``produce()`` keeps that
    function the single place that knows how events become Kafka messages.
    """

    def __init__(self, producer: Any, paced_topic: str, rate: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.producer = producer
        self.paced_topic = paced_topic
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.paced = 0
        self._t0: float | None = None

    def produce(self, topic: str, **kwargs: Any) -> None:
        if topic == self.paced_topic:
            if self._t0 is None:
                self._t0 = self.clock()
            ahead = self.paced / self.rate - (self.clock() - self._t0)
            if ahead > 0:
                self.producer.poll(0)  # serve delivery callbacks while we wait
                self.sleep(ahead)
        self.producer.produce(topic, **kwargs)
        if topic == self.paced_topic:
            self.paced += 1

    def poll(self, timeout: float = 0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float = -1) -> int:
        return self.producer.flush(timeout)


def build_workload(args: argparse.Namespace, now: float) -> Workload:
    every = args.change_every
    change_points = tuple(range(every, args.events, every)) if every > 0 else ()
    return Workload(
        n_events=args.events,
        change_points=change_points,
        models=tuple(args.models),
        seed=args.seed,
        spacing=1.0 / args.rate,
        label_delay=args.label_delay,
        noise=args.noise,
        missing_labels=args.missing_labels,
        t0=now,
        id_prefix=f"{args.id_prefix}{int(now * 1000)}",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m stream.tools.workload_producer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", "-c", default=None, help="TOML config file (default: built-in defaults + env)")
    ap.add_argument("--events", type=int, default=100_000, help="inference events to produce (labels follow)")
    ap.add_argument("--rate", type=float, default=200.0, help="inference events per second")
    ap.add_argument("--change-every", type=int, default=20_000,
                    help="the true concept changes every this many events (0: never)")
    ap.add_argument("--models", nargs="+", default=["fraud"], help="model names, round-robin over events")
    ap.add_argument("--label-delay", type=float, default=5.0, help="event-time seconds from prediction to label")
    ap.add_argument("--noise", type=float, default=0.05, help="share of served predictions wrong before drift")
    ap.add_argument("--missing-labels", type=float, default=0.0, help="share of events that never get a label")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--id-prefix", default="w", help="event ids are <prefix><run start ms>-<i>")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.events < 1 or args.rate <= 0:
        print("workload_producer: --events must be >= 1 and --rate > 0", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"workload_producer: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.logging.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from confluent_kafka import Producer

    from stream.clients import producer_config

    w = build_workload(args, time.time())
    log.info("producing %d events at %.0f/s to %s + %s on %s; concept changes at %s", w.n_events, args.rate,
             cfg.topics.inference, cfg.topics.labels, cfg.kafka.get("bootstrap.servers"), list(w.change_points))
    producer = PacedProducer(Producer(producer_config(cfg)), cfg.topics.inference, args.rate)
    n = produce(producer, w, inference_topic=cfg.topics.inference, labels_topic=cfg.topics.labels,
                poll_every=max(1, int(args.rate)))
    log.info("produced %d messages", n)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
