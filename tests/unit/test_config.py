from __future__ import annotations

import pytest

from stream.config import ConfigError, env_overrides, load_config, redacted


def test_defaults_point_at_local_stack():
    cfg = load_config(None, {})
    assert cfg.kafka["bootstrap.servers"] == "127.0.0.1:39092"
    assert cfg.redis["url"] == "redis://127.0.0.1:36379/0"
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
