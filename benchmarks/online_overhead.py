"""What the online model adds to the service in-process: the default configuration vs the online model off.

    python benchmarks/online_overhead.py [--events 40000] [--partitions 8] [--rounds 3] [--profile on|off]

The workload and the in-process loop are ``benchmarks/scope_overhead.py``'s (the demo's workload split over P
partitions by a hash of the event id, one ``PartitionProcessor`` per partition, micro-batches of
``processing.micro_batch_records`` round-robin, every output encoded with orjson as the publisher does), with
``[scope]`` off on both sides so only the online model differs. Kafka (consume, produce) is left out, so the
ratio printed is an upper bound of the end-to-end ratio. CPU seconds are ``time.process_time``; median of the
rounds, both variants measured alternately in the same run. ``--profile on`` (or ``off``) runs that variant
once more under cProfile and prints the top functions by cumulative and own time. Nothing is asserted.
Issue 18's target: default config CPU per event at most 1.3x model off.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import os
import pstats
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import detectors  # noqa: E402
from scope_overhead import _records, _run  # noqa: E402
from stream.config import load_config  # noqa: E402


def _model_off(cfg):
    dm = cfg.default_model
    om = lambda m: m if getattr(m, "online_model", None) is None else dataclasses.replace(  # noqa: E731
        m, online_model=dataclasses.replace(m.online_model, enabled=False))
    return dataclasses.replace(cfg, default_model=om(dm), models={k: om(m) for k, m in cfg.models.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", choices=("on", "off"), default=None)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    detectors.warm_up()
    base = load_config(None, {})
    on_cfg = dataclasses.replace(base, scope=dataclasses.replace(base.scope, enabled=False))
    off_cfg = _model_off(on_cfg)
    dm = on_cfg.default_model
    quiet_cfg = dataclasses.replace(on_cfg, default_model=dataclasses.replace(
        dm, online_model=dataclasses.replace(dm.online_model, publish_predictions="off")))
    per = _records(args.events, args.partitions)
    n = args.events
    warm = _records(2000, args.partitions)
    _run(on_cfg, warm, False)  # compile, load caches and import everything first
    _run(off_cfg, warm, False)
    ons, offs, quiets = [], [], []
    for _ in range(args.rounds):
        offs.append(_run(off_cfg, per, False)[0])
        ons.append(_run(on_cfg, per, False)[0])
        quiets.append(_run(quiet_cfg, per, False)[0])
    on, off = statistics.median(ons), statistics.median(offs)
    print(f"{n:,} inference events + labels over {args.partitions} partitions, scope off, median of "
          f"{args.rounds} rounds, CPU µs per inference event (in-process, no Kafka)")
    print(f"  online model off        {off / n * 1e6:8.1f}   (rounds: {', '.join(f'{x / n * 1e6:.1f}' for x in offs)})")
    print(f"  default (model on)      {on / n * 1e6:8.1f}   (rounds: {', '.join(f'{x / n * 1e6:.1f}' for x in ons)})")
    quiet = statistics.median(quiets)
    print(f"  model on, online predictions not published (publish_predictions = \"off\")"
          f" {quiet / n * 1e6:.1f}   (rounds: {', '.join(f'{x / n * 1e6:.1f}' for x in quiets)}; "
          f"ratio to model off {quiet / off:.2f})")
    print(f"  difference              {(on - off) / n * 1e6:8.1f}")
    print(f"  ratio on/off            {on / off:8.2f}   (target <= 1.3x) -> {'met' if on / off <= 1.3 else 'NOT met'}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        _run(on_cfg if args.profile == "on" else off_cfg, per, False)
        prof.disable()
        st = pstats.Stats(prof)
        st.sort_stats("cumulative").print_stats(args.top)
        st.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
