from __future__ import annotations

import random

import orjson
import pytest
from scipy import stats

from stream.champion import ChampionChallenger
from stream.policy import Position, RetrainPolicy, RetrainPolicyConfig


def pos(ts, i=None, l=None):
    return Position(i, l, ts)


def test_concept_drift_gives_one_retrain_per_incident_with_change_point_window():
    p = RetrainPolicy(RetrainPolicyConfig(cooldown_seconds=100))
    p.observe_label(0.0, 0.0)
    p.observe_warning(pos(10.0, 5, 3))
    p.observe_concept_drift("d1", pos(12.0, 7, 4))
    d = p.decide_at(12.0)
    assert d.reasons == ["concept_drift"] and d.evidence == ["d1"]
    assert d.window_source == "change_point" and d.window_from == {"inference_offset": 5, "labels_offset": 3, "ts": 10.0}
    # a second detector alarming on the same incident, inside the cooldown: no second event
    p.observe_concept_drift("d2", pos(20.0, 9, 6))
    assert p.decide_at(20.0) is None
    # after the cooldown a new incident (the error came back, then rose again) is a new event, with its own
    # change point and evidence only (regression: the cooldown alarm's change point and evidence leaked into
    # the next incident)
    p.observe_concept_drift("up", pos(150.0, 50, 40), direction="improvement")
    p.observe_concept_drift("d3", pos(200.0, 90, 60))
    d = p.decide_at(200.0)
    assert d.reasons == ["concept_drift"] and d.evidence == ["d3"]
    assert d.window_from == {"inference_offset": 90, "labels_offset": 60, "ts": 200.0}


def test_concept_drift_trigger_can_be_off():
    p = RetrainPolicy(RetrainPolicyConfig(on_concept_drift=False))
    p.observe_concept_drift("d1", pos(1.0))
    assert p.decide_at(1.0) is None


def test_performance_threshold_fires_once_and_rearms():
    p = RetrainPolicy(RetrainPolicyConfig(on_concept_drift=False, performance_threshold=0.3, performance_window=10,
                                          cooldown_seconds=0))
    fired = []
    for i in range(60):
        err = 1.0 if 10 <= i < 30 else 0.0
        p.observe_label(float(i), err)
        d = p.decide_at(float(i))
        if d:
            fired.append((i, d.reasons, d.window_source))
    assert len(fired) == 1 and fired[0][1] == ["performance"] and fired[0][2] == "fallback"
    for i in range(60, 80):
        p.observe_label(float(i), 1.0)
        if p.decide_at(float(i)):
            fired.append(i)
    assert len(fired) == 2  # re-armed after the error went back under the threshold


def test_performance_rate_is_the_window_mean_and_survives_a_reload():
    # the running sum gives the same decisions as the plain mean over the window (0/1 errors: exact)
    cfg = RetrainPolicyConfig(on_concept_drift=False, performance_threshold=0.3, performance_window=25,
                              cooldown_seconds=0)
    rng = random.Random(9)
    errors = [float(rng.random() < (0.5 if (i // 200) % 2 else 0.1)) for i in range(2000)]
    p, fired = RetrainPolicy(cfg), []
    expect, armed = [], True
    for i, e in enumerate(errors):
        p.observe_label(float(i), e)
        if p.decide_at(float(i)):
            fired.append(i)
        if i >= 24:
            rate = sum(errors[i - 24:i + 1]) / 25
            if rate > 0.3 and armed:
                armed = False
                expect.append(i)
            elif rate <= 0.3:
                armed = True
    assert fired == expect and len(fired) >= 3
    a, b = RetrainPolicy(cfg), RetrainPolicy(cfg)
    for i, e in enumerate(errors[:1010]):
        a.observe_label(float(i), e)
        a.decide_at(float(i))
    b.load_state(orjson.loads(orjson.dumps(a.to_state())))
    for i, e in enumerate(errors[1010:], start=1010):
        a.observe_label(float(i), e)
        b.observe_label(float(i), e)
        assert (a.decide_at(float(i)) is None) == (b.decide_at(float(i)) is None)
    assert a.to_state() == b.to_state()


def test_schedule_and_new_labels():
    p = RetrainPolicy(RetrainPolicyConfig(on_concept_drift=False, every_seconds=100, cooldown_seconds=0))
    hits = []
    for i in range(0, 350, 10):
        p.observe_label(float(i), 0.0)
        if p.decide_at(float(i)):
            hits.append(i)
    assert hits == [100, 200, 300]
    q = RetrainPolicy(RetrainPolicyConfig(on_concept_drift=False, every_labels=25, cooldown_seconds=0))
    n = 0
    for i in range(100):
        q.observe_label(float(i), 0.0)
        n += q.decide_at(float(i)) is not None
    assert n == 4


def test_sustained_data_drift_and_on_demand_ignores_cooldown():
    p = RetrainPolicy(RetrainPolicyConfig(on_concept_drift=False, data_drift_sustained_seconds=50,
                                          cooldown_seconds=1e9))
    p.observe_data_drift("feature:amount", "f1", 10.0, True)
    assert p.decide_at(40.0) is None
    d = p.decide_at(61.0)
    assert d.reasons == ["data_drift_sustained"] and d.evidence == ["f1"]
    p.request()
    assert p.decide_at(62.0).reasons == ["on_demand"]


def test_policy_state_round_trip():
    p = RetrainPolicy(RetrainPolicyConfig(performance_threshold=0.5, performance_window=5))
    for i in range(7):
        p.observe_label(float(i), float(i % 2))
    p.observe_warning(pos(3.0, 1, 2))
    p.observe_data_drift("feature:x", "x", 4.0, True)
    q = RetrainPolicy(p.cfg)
    q.load_state(orjson.loads(orjson.dumps(p.to_state())))
    assert q.to_state() == p.to_state()


def test_mcnemar_matches_scipy_and_detects_a_better_challenger():
    rng = random.Random(1)
    cc = ChampionChallenger("classification", window=1000, alpha=0.01, min_pairs=100)
    for _ in range(1000):
        champ = 1.0 if rng.random() < 0.30 else 0.0
        chall = 1.0 if rng.random() < 0.20 else 0.0
        cc.add(champ, chall)
    r = cc.compare()
    expected = stats.chi2.sf((abs(r.b - r.c) - 1) ** 2 / (r.b + r.c), 1)
    assert r.p_value == pytest.approx(expected, rel=1e-9)
    assert r.challenger_better and r.challenger_error < r.champion_error


def test_no_difference_is_not_significant_and_regression_paired_test():
    rng = random.Random(2)
    cc = ChampionChallenger("classification", window=500, min_pairs=100)
    for _ in range(500):
        cc.add(float(rng.random() < 0.2), float(rng.random() < 0.2))
    assert not cc.compare().challenger_better
    reg = ChampionChallenger("regression", window=500, min_pairs=100)
    for _ in range(500):
        reg.add(abs(rng.gauss(0, 2.0)), abs(rng.gauss(0, 1.0)))
    r = reg.compare()
    assert r.test == "paired_z" and r.challenger_better
    assert ChampionChallenger("classification", min_pairs=10).compare() is None


def test_stale_warning_is_not_the_change_point_and_schedules_use_the_fallback_window():
    # regression: an old warning episode without drift became the window of a later, unrelated retrain
    p = RetrainPolicy(RetrainPolicyConfig(every_labels=1000, cooldown_seconds=0, fallback_window_seconds=50))
    p.observe_warning(pos(1.0, 1, 1))
    for i in range(500):
        p.observe_label(float(i), 0.0)
        assert p.decide_at(float(i)) is None
    p.observe_concept_drift("d", pos(600.0, 60, 50))
    d = p.decide_at(600.0)
    assert d.window_from == {"inference_offset": 60, "labels_offset": 50, "ts": 600.0}
    p.observe_warning(pos(700.0, 70, 70))
    for i in range(1000):
        p.observe_label(700.0 + i, 0.0)
        d = p.decide_at(700.0 + i)
    assert d is not None and d.reasons == ["new_labels"] and d.window_source == "fallback"
    assert d.window_from["ts"] == 1699.0 - 50


def _episode_policy(**cfg):
    p = RetrainPolicy(RetrainPolicyConfig(cooldown_seconds=100, **cfg))
    p.observe_label(0.0, 0.0)
    p.observe_concept_drift("d1", pos(12.0, 7, 4), error_before=0.1, error_after=0.4)
    assert p.decide_at(12.0).window_from == {"inference_offset": 7, "labels_offset": 4, "ts": 12.0}
    return p


def test_one_degradation_episode_gives_one_retrain_event_past_the_cooldown():
    # regression (issue 20): the served model stayed wrong past the cooldown and a second retrain event
    # followed for the same incident, with a window starting thousands of events after the change point
    p = _episode_policy()
    p.observe_concept_drift("d2", pos(500.0, 3000, 2900), error_before=0.38, error_after=0.42)
    assert p.decide_at(500.0) is None


def test_a_retrain_inside_an_open_episode_trains_from_the_episode_change_point():
    p = _episode_policy(performance_threshold=0.3, performance_window=2)
    for t in (400.0, 401.0):
        p.observe_label(t, 1.0)
    d = p.decide_at(401.0)
    assert d.reasons == ["performance"]
    assert d.window_source == "change_point" and d.window_from["inference_offset"] == 7


def test_an_improvement_closes_the_episode_and_does_not_retrain_by_default():
    p = _episode_policy()
    p.observe_concept_drift("up", pos(300.0, 200, 190), direction="improvement", error_before=0.4,
                            error_after=0.1)
    assert p.decide_at(300.0) is None and p.episode is None
    p.observe_concept_drift("d2", pos(500.0, 400, 390), error_before=0.1, error_after=0.4)
    d = p.decide_at(500.0)
    assert d.reasons == ["concept_drift"] and d.window_from["inference_offset"] == 400


def test_improvements_retrain_when_configured_and_escalations_are_new_incidents():
    p = _episode_policy(retrain_on_improvement=True)
    p.observe_concept_drift("up", pos(300.0, 200, 190), direction="improvement")
    assert p.decide_at(300.0).reasons == ["concept_drift"]
    q = _episode_policy()
    q.observe_concept_drift("worse", pos(500.0, 400, 390), error_before=0.4, error_after=0.7)
    assert q.decide_at(500.0).window_from["inference_offset"] == 400


def test_every_degradation_past_the_cooldown_retrains_without_episodes():
    p = _episode_policy(one_retrain_per_episode=False)
    p.observe_concept_drift("d2", pos(500.0, 3000, 2900), error_before=0.38, error_after=0.42)
    assert p.decide_at(500.0).reasons == ["concept_drift"]


def test_the_episode_survives_a_state_round_trip():
    p = _episode_policy()
    q = RetrainPolicy(RetrainPolicyConfig(cooldown_seconds=100))
    q.load_state(p.to_state())
    q.observe_concept_drift("d2", pos(500.0, 3000, 2900), error_before=0.38, error_after=0.42)
    assert q.decide_at(500.0) is None
