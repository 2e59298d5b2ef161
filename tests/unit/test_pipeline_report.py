"""The pipeline benchmark's summary of repeated rounds (pure parts; the runs themselves are in
tests/integration/test_pipeline_bench.py)."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.pipeline import (
    VariantResult,
    median_run,
    ratios,
    report,
    scaling_report,
    summarize,
    variant_config,
)
from stream.config import load_config


def _run(variant: str, seconds: float | None, consumed: int = 1000, cpu: float = 1.0) -> VariantResult:
    return VariantResult(variant=variant, consumed=consumed, seconds=seconds, cpu_seconds=cpu, peak_rss_mib=100.0,
                         start_seconds=0.5, exit_code=0, extra={})


def test_median_run_is_the_middle_window_and_an_unfinished_run_counts_as_slowest():
    runs = [_run("driftstream", 3.0), _run("driftstream", 1.0), _run("driftstream", 2.0)]
    assert median_run(runs).seconds == 2.0
    assert median_run([_run("quix", 2.0), _run("quix", 1.0)]).seconds == 1.0  # the lower of two
    assert median_run([_run("quix", None), _run("quix", 5.0), _run("quix", 4.0)]).seconds == 5.0


def test_report_compares_medians_and_lists_every_round():
    rounds = {"ceiling": [_run("ceiling", 1.0), _run("ceiling", 1.0), _run("ceiling", 1.0)],
              "driftstream": [_run("driftstream", 2.0), _run("driftstream", 8.0), _run("driftstream", 4.0)]}
    medians = {v: median_run(rs) for v, rs in rounds.items()}
    text = report(medians, 1000, 500, None, {}, markdown=True, rounds=rounds)
    assert "| 2 / 1 events/s (default config vs ceiling) | 25% |" in text  # 1000/4 s against 1000/1 s
    assert ("| events/s of each round, 2 driftstream default config | 0.5k, 0.1k, 0.2k (median in the tables) |"
            in text)
    assert "events/s of each round, 1 ceiling" in text


def test_cpu_per_event_is_the_median_over_rounds_on_its_own_and_unfinished_rounds_do_not_count():
    # the median window is the 2 s run (CPU 9 s), but the median CPU over the rounds is 3 s
    runs = [_run("driftstream", 1.0, cpu=3.0), _run("driftstream", 2.0, cpu=9.0), _run("driftstream", 3.0, cpu=2.0),
            _run("driftstream", None, consumed=10, cpu=0.001)]
    s = summarize({"driftstream": median_run(runs)}, 1000, {"driftstream": runs})["driftstream"]
    assert s["rate"] == 1000 / 2.0
    assert s["cpu_per_million"] == 3.0 / 1000 * 1e6  # 3 finished rounds: 2, 3, 9 s; the unfinished one left out
    unfinished = [_run("quix", None, consumed=10)]
    assert summarize({"quix": unfinished[0]}, 1000, {"quix": unfinished})["quix"] == {"rate": None,
                                                                                        "cpu_per_million": None}


def _medians(**cpu_and_seconds: tuple[float, float]) -> dict[str, VariantResult]:
    names = {"default": "driftstream", "no_model": "driftstream-no-model", "quix": "quix", "quix_model": "quix+model"}
    return {names[k]: _run(names[k], seconds, cpu=cpu) for k, (cpu, seconds) in cpu_and_seconds.items()}


def test_headline_ratios_against_quix_with_model_and_model_off_with_their_targets():
    # CPU per event: default 10, model off 8, quix 40, quix+model 60; windows 1, 1, 4, 2.5 s
    results = _medians(default=(0.010, 1.0), no_model=(0.008, 1.0), quix=(0.040, 4.0), quix_model=(0.060, 2.5))
    q = ratios(summarize(results, 1000))
    assert q["cpu_quix_model_over_default"] == pytest.approx(6.0)
    assert q["rate_default_over_quix_model"] == pytest.approx(2.5)
    assert q["cpu_default_over_no_model"] == pytest.approx(1.25)
    assert q["cpu_quix_over_no_model"] == pytest.approx(5.0)
    text = report(results, 1000, 500, None, {}, markdown=True)
    assert "| 5 / 2 CPU per event (Quix + River + model vs default config) | 6.00x | >= 5x | met |" in text
    assert "| 2 / 5 events/s (default config vs Quix + River + model) | 2.50x | >= 3x | NOT met |" in text
    assert "| 2 / 3 CPU per event (default config vs model off) | 1.25x | <= 1.3x | met |" in text
    assert "| 5 driftstream default config" not in text  # only measured variants get rows
    assert "| 5 Quix + River + model | 1000 | 0.4k | 60.0 |" in text  # events/s and CPU µs per event


def test_a_ratio_with_a_missing_side_is_left_out():
    text = report(_medians(default=(0.010, 1.0)), 1000, 500, None, {}, markdown=True)
    assert "5 / 2 CPU per event" not in text and "2 / 3 CPU per event" not in text


def test_the_default_config_variant_keeps_the_configured_online_model_and_model_off_turns_it_off_everywhere():
    base = load_config(None)
    declared = dataclasses.replace(base, models={"fraud": base.default_model})
    on = variant_config(declared, "driftstream", "g")
    off = variant_config(declared, "driftstream-no-model", "g")
    assert on.default_model.online_model == base.default_model.online_model  # whatever the defaults say
    assert on.models["fraud"].online_model == base.default_model.online_model
    assert not off.default_model.online_model.enabled and not off.models["fraud"].online_model.enabled
    # otherwise the two are the same configuration
    assert dataclasses.replace(off.default_model, online_model=on.default_model.online_model) == on.default_model
    assert on.processing.group_id == "g" and on.default_model.data_drift.enabled


def test_scaling_report_has_a_row_per_setting_with_model_on_over_off():
    cells = []
    for features, models, on, off in ((5, 1, 0.012, 0.010), (100, 1, 0.030, 0.020)):
        results = {"driftstream": _run("driftstream", 1.0, cpu=on), "driftstream-no-model": _run("x", 0.5, cpu=off)}
        cells.append({"features": features, "models": models, "summary": summarize(results, 1000)})
    text = scaling_report(cells, 500, markdown=True)
    assert "| 5 | 1 | 12.0 | 10.0 | 1.20x | 1.0k | 2.0k |" in text
    assert "| 100 | 1 | 30.0 | 20.0 | 1.50x |" in text


def test_the_model_stage_share_is_the_cpu_and_throughput_it_adds_to_the_same_config_without_it():
    res = {"driftstream": _run("driftstream", 2.2, cpu=2.2),
           "driftstream-no-scope": _run("driftstream-no-scope", 2.0, cpu=2.0)}
    q = ratios(summarize(res, 1000))
    assert q["stage_share_cpu"] == pytest.approx(1 - 2.0 / 2.2)
    assert q["stage_share_rate"] == pytest.approx(1 - (1000 / 2.2) / (1000 / 2.0))
    text = report(res, 1000, 500, None, {}, markdown=True)
    assert "| 1 - 2c / 2 CPU per event (the model stage's share, end to end) | 9.1% | <= 10% | met |" in text
    assert ratios(summarize({"driftstream": res["driftstream"]}, 1000))["stage_share_cpu"] is None
    cfg = load_config(None, {})
    assert cfg.scope.enabled and not variant_config(cfg, "driftstream-no-scope", "g").scope.enabled
    assert variant_config(cfg, "driftstream", "g").scope.enabled
