from __future__ import annotations

import pytest

from stream.config import ConfigError, env_overrides, load_config, redacted


def test_defaults_point_at_local_stack():
    cfg = load_config(None, {})
    assert cfg.kafka["bootstrap.servers"] == "127.0.0.1:31092"
    assert cfg.redis["url"] == "redis://127.0.0.1:31379/0"
    assert cfg.topics.inference == "inference" and cfg.topics.dead_letter == "dead-letter"


def test_toml_and_env_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        """
[kafka]
"bootstrap.servers" = "broker:9092"
"security.protocol" = "SASL_SSL"

[join]
ttl_seconds = 60

[models.fraud]
task = "classification"
error_detectors = [{name = "PageHinkley", params = {threshold = 10.0}}]
"""
    )
    env = {"DRIFTSTREAM_KAFKA__SASL_MECHANISM": "PLAIN", "DRIFTSTREAM_JOIN__MAX_PENDING": "10",
           "DRIFTSTREAM_REDIS__PASSWORD": "s3cret", "DRIFTSTREAM_STATE__HMAC_KEY": "k"}
    cfg = load_config(f, env)
    assert cfg.kafka == {"bootstrap.servers": "broker:9092", "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert cfg.redis["password"] == "s3cret" and cfg.redis["url"].startswith("redis://")
    assert cfg.join.ttl_seconds == 60.0 and cfg.join.max_pending == 10
    spec = cfg.model_spec("fraud")
    assert spec.error_detectors[0].name == "PageHinkley" and spec.error_detectors[0].params == {"threshold": 10.0}
    assert cfg.model_spec("other") == cfg.default_model
    with pytest.raises(Exception):
        cfg.join.ttl_seconds = 5  # frozen


def test_unknown_key_is_an_error_naming_it(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[join]\nttl_secnds = 5\n")
    with pytest.raises(ConfigError, match="ttl_secnds"):
        load_config(f, {})
    with pytest.raises(ConfigError, match="bogus"):
        load_config(None, {"DRIFTSTREAM_PROCESSING__BOGUS": "1"})


def test_wrong_types_and_values_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="integer"):
        load_config(None, {"DRIFTSTREAM_PROCESSING__BATCH_SIZE": "many"})
    with pytest.raises(ConfigError, match="label_delay_window"):  # a 0 window divided by zero at the first label
        load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__DATA_QUALITY__LABEL_DELAY_WINDOW": "0"})
    with pytest.raises(ConfigError, match="micro_batch_records"):
        load_config(None, {"DRIFTSTREAM_PROCESSING__MICRO_BATCH_RECORDS": "0"})
    with pytest.raises(ConfigError, match="unknown detector"):
        load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__ERROR_DETECTORS": '[{name = "Nope"}]'})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", {})


def test_env_override_parsing():
    out = env_overrides({"DRIFTSTREAM_KAFKA__SSL_CA_LOCATION": "/ca.pem", "DRIFTSTREAM_METRICS__PORT": "9",
                         "OTHER": "x", "DRIFTSTREAM_DEMO__X": "true"})
    assert out == {"kafka": {"ssl.ca.location": "/ca.pem"}, "metrics": {"port": 9}, "demo": {"x": True}}


def test_redaction_hides_secrets():
    r = redacted({"sasl.password": "p", "url": "redis://user:pw@host:1/0", "ssl.ca.location": "/ca"})
    assert r == {"sasl.password": "***", "url": "redis://***@host:1/0", "ssl.ca.location": "/ca"}


def test_example_config_file_loads():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "driftstream.toml"
    cfg = load_config(example, {})
    assert cfg.topics.inference == "inference"


def test_example_config_documents_every_key():
    """The reference example cannot go stale: every setting of the dataclasses appears in it."""
    import re
    from pathlib import Path

    from stream.tools.config_reference import markdown, rows

    text = (Path(__file__).resolve().parents[2] / "driftstream.toml").read_text()
    missing = []
    for path, _, _, _ in rows():
        leaf = path.split(".")[-1]
        if leaf in ("*", "<name>"):
            continue
        if not re.search(r'(^|[\s#{,])"?%s"?\s*=' % re.escape(leaf), text, re.M):
            missing.append(path)
    assert not missing, f"driftstream.toml does not mention: {missing}"
    md = markdown()
    assert "`processing.batch_size`" in md and "`default_model.retrain.cooldown_seconds`" in md


# -- choices (Literal fields) and section checks ------------------------------------------------------
import dataclasses  # noqa: E402
import typing  # noqa: E402

from detectors import registry  # noqa: E402
from stream import config as config_module  # noqa: E402
from stream.config import AppConfig  # noqa: E402


def _literal_fields(cls: type = AppConfig, path: tuple[str, ...] = ()):
    """(path, choices) of every Literal setting reachable from ``cls``; "[]" marks a list of tables, "x" a key
    of a table of sections."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        tp, here = hints[f.name], (*path, f.name)
        bare = typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp
        args = typing.get_args(bare)
        if typing.get_origin(bare) is typing.Literal:
            yield here, args
        elif dataclasses.is_dataclass(tp):
            yield from _literal_fields(tp, here)
        elif typing.get_origin(tp) is tuple and dataclasses.is_dataclass(args[0]):
            yield from _literal_fields(args[0], (*here, "[]"))
        elif args and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            yield from _literal_fields(args[1], (*here, "x"))


LITERALS = list(_literal_fields())


def _env(path: tuple[str, ...], value: str) -> dict[str, str]:
    """The DRIFTSTREAM_* variable that sets ``path`` to the string ``value``."""
    if "[]" in path:  # a list of one table holding the leaf
        i = path.index("[]")
        assert i == len(path) - 2, path
        return {"DRIFTSTREAM_" + "__".join(path[:i]).upper(): f'[{{{path[-1]} = "{value}"}}]'}
    return {"DRIFTSTREAM_" + "__".join(path).upper(): f'"{value}"'}


def _get(cfg: AppConfig, path: tuple[str, ...]):
    node = cfg
    for part in path:
        node = node[0] if part == "[]" else node[part] if isinstance(node, typing.Mapping) else getattr(node, part)
    return node


def test_every_choice_setting_is_a_literal_found_by_the_walk():
    where = {".".join(p) for p, _ in LITERALS}
    assert {"processing.start_from", "processing.on_offset_out_of_range", "default_model.task",
            "default_model.error_detectors.[].name", "default_model.online_model.kind",
            "default_model.online_model.drift_detector", "default_model.features.x.type",
            "default_model.data_drift.numeric_test", "default_model.data_drift.categorical_test",
            "default_model.data_drift.mean_detector", "models.x.task"} <= where


@pytest.mark.parametrize("path, choices", LITERALS, ids=[".".join(p) for p, _ in LITERALS])
def test_a_value_outside_a_literal_is_refused_listing_the_choices(path, choices):
    with pytest.raises(ConfigError) as err:
        load_config(None, _env(path, "nope"))
    message = str(err.value)
    assert message.startswith(".".join(path).replace(".[]", "[0]"))
    assert "'nope'" in message and all(repr(c) in message for c in choices)
    for choice in choices:  # every listed choice is accepted, and lands where it was put
        assert _get(load_config(None, _env(path, choice)), path) == choice


def test_choice_messages_name_the_key_and_list_the_values():
    with pytest.raises(ConfigError, match=r"^processing\.start_from must be 'earliest' or 'latest', got 'middle'$"):
        load_config(None, {"DRIFTSTREAM_PROCESSING__START_FROM": "middle"})
    with pytest.raises(ConfigError, match=r"^default_model\.online_model\.kind must be one of 'logistic', "
                                          r"'linear', 'river' or 'hoeffding_tree', got 'svm'$"):
        load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__ONLINE_MODEL__KIND": "svm"})
    with pytest.raises(ConfigError, match=r"^models\.m\.error_detectors\[1\]\.name: unknown detector 'Nope'; "
                                          r"must be one of 'ADWIN', .* or 'HDDM_W'$"):
        load_config(None, {"DRIFTSTREAM_MODELS__M__ERROR_DETECTORS": '[{name = "DDM"}, {name = "Nope"}]'})


def test_a_choice_must_have_the_type_of_the_choices_too():
    with pytest.raises(ConfigError, match="got 1$"):  # TOML parses the variable as an integer
        load_config(None, {"DRIFTSTREAM_PROCESSING__START_FROM": "1"})
    with pytest.raises(ConfigError, match="got True$"):
        load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__TASK": "true"})


def test_aliases_are_accepted_where_detectors_are_named():
    env = {"DRIFTSTREAM_DEFAULT_MODEL__ERROR_DETECTORS": '[{name = "HDDM_A"}, {name = "HDDM_W"}]',
           "DRIFTSTREAM_DEFAULT_MODEL__ONLINE_MODEL__DRIFT_DETECTOR": "HDDM_A"}
    spec = load_config(None, env).default_model
    assert [d.name for d in spec.error_detectors] == ["HDDM_A", "HDDM_W"]


@pytest.mark.parametrize("name", registry.DETECTOR_NAMES)
def test_regression_refuses_exactly_the_binary_detectors_of_the_registry(name):
    env = {"DRIFTSTREAM_MODELS__R__TASK": "regression",
           "DRIFTSTREAM_MODELS__R__ERROR_DETECTORS": f'[{{name = "{name}"}}]'}
    online = {"DRIFTSTREAM_MODELS__R__TASK": "regression", "DRIFTSTREAM_MODELS__R__ONLINE_MODEL__DRIFT_DETECTOR": name}
    if name in registry.BINARY:
        with pytest.raises(ConfigError, match=rf"^models\.r\.error_detectors: {name} takes 0/1 errors"):
            load_config(None, env)
        with pytest.raises(ConfigError, match=rf"^models\.r\.online_model\.drift_detector: {name} takes 0/1"):
            load_config(None, online)
        # without adaptation the online model's detector does not run
        load_config(None, {**online, "DRIFTSTREAM_MODELS__R__ONLINE_MODEL__ADAPT": "false"})
    else:
        assert load_config(None, env).models["r"].error_detectors[0].name == name
        assert load_config(None, online).models["r"].online_model.drift_detector == name
    # classification takes every detector
    assert load_config(None, {"DRIFTSTREAM_MODELS__C__ERROR_DETECTORS": f'[{{name = "{name}"}}]'})


@pytest.mark.parametrize("env, message", [
    ({"DRIFTSTREAM_PROCESSING__BATCH_SIZE": "0"}, "processing.batch_size must be >= 1"),
    ({"DRIFTSTREAM_PROCESSING__GC_THRESHOLD": "-1"}, "processing.gc_threshold must be >= 0"),
    ({"DRIFTSTREAM_MODELS__M__ERROR_DETECTORS": '[{name = "ADWIN"}, {name = "DDM", false_alarm_every = -1}]'},
     "models.m.error_detectors[1]: false_alarm_every must be >= 0"),
    ({"DRIFTSTREAM_DEFAULT_MODEL__CHALLENGER__ALPHA": "1.0"}, "default_model.challenger: need 0 < alpha < 1"),
    ({"DRIFTSTREAM_MODELS__M__CHALLENGER__MIN_PAIRS": "5000"}, "models.m.challenger: need 0 < alpha < 1"),
    ({"DRIFTSTREAM_MODELS__M__RETRAIN__PERFORMANCE_WINDOW": "0"}, "models.m.retrain: thresholds must be >= 0"),
    ({"DRIFTSTREAM_DEFAULT_MODEL__RETRAIN__COOLDOWN_SECONDS": "-1"}, "default_model.retrain: thresholds"),
    ({"DRIFTSTREAM_MODELS__M__DATA_DRIFT__PSI_THRESHOLD": "0"}, "models.m.data_drift.psi_threshold must be > 0"),
    ({"DRIFTSTREAM_DEFAULT_MODEL__DATA_DRIFT__JS_THRESHOLD": "1.5"}, "default_model.data_drift.js_threshold"),
    ({"DRIFTSTREAM_MODELS__M__DATA_DRIFT__STEP": "0"}, "models.m.data_drift.step must be >= 1"),
    ({"DRIFTSTREAM_MODELS__M__DATA_QUALITY__RATE_LIMIT_EVENTS": "0"}, "models.m.data_quality.rate_limit_events"),
    ({"DRIFTSTREAM_MODELS__M__FEATURES__C__TYPE": "categorical",
      "DRIFTSTREAM_MODELS__M__FEATURES__C__CATEGORIES": '["a", "a"]'}, "models.m.features.c.categories has duplicates"),
    ({"DRIFTSTREAM_MODELS__M__FEATURES__" + "F" * 129 + "__TYPE": "numeric"},
     "models.m.features." + "f" * 129 + ": feature names have 1..128"),
])
def test_each_section_checks_itself_wherever_it_sits(env, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, env)
    assert str(err.value).startswith(message)  # the path of the section, wherever it sits


def _sections(cls: type = AppConfig, seen: set | None = None):
    seen = set() if seen is None else seen
    if cls in seen:
        return seen
    seen.add(cls)
    for tp in typing.get_type_hints(cls).values():
        for t in (tp, *typing.get_args(tp)):
            if dataclasses.is_dataclass(t):
                _sections(t, seen)
    return seen


def test_defaults_pass_every_section_check_and_checks_refuse_when_built_directly():
    sections = _sections()
    checked = {cls for cls in sections if hasattr(cls, "check")}
    assert {config_module.ProcessingConfig, config_module.DataDriftConfig, config_module.ModelSpec,
            config_module.FeatureSpec, AppConfig} <= checked
    for cls in checked:
        cls().check(cls.__name__)
    assert AppConfig.default_model.check("default_model") is None
    with pytest.raises(ConfigError, match="kafka.bootstrap.servers is required"):
        AppConfig(kafka={}).check("")
    with pytest.raises(ConfigError, match="redis.url is required"):
        AppConfig(redis={"password": "x"}).check("")


def test_detector_params_are_checked_against_the_detector_class():
    env = {"DRIFTSTREAM_MODELS__M__ERROR_DETECTORS": '[{name = "PageHinkley", params = {treshold = 3.0}}]'}
    with pytest.raises(ConfigError, match=r"^models\.m\.error_detectors\[0\]\.params: PageHinkley has no "
                                          r"parameter\(s\) treshold; allowed: .*threshold"):
        load_config(None, env)
    env = {"DRIFTSTREAM_MODELS__M__ERROR_DETECTORS": '[{name = "HDDM_A", params = {drift_confidence = 0.01}}]'}
    assert load_config(None, env).models["m"].error_detectors[0].params == {"drift_confidence": 0.01}


def test_an_unknown_input_format_and_a_negative_idle_expiry_are_refused_by_the_loader():
    with pytest.raises(ConfigError, match="input_format must be one of 'json'"):
        load_config(None, {"DRIFTSTREAM_PROCESSING__INPUT_FORMAT": "avro"})
    with pytest.raises(ConfigError, match="idle_expire_seconds must be >= 0"):
        load_config(None, {"DRIFTSTREAM_JOIN__IDLE_EXPIRE_SECONDS": "-1"})
