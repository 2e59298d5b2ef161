"""The command line: help, config errors and infrastructure errors are clear and exit non-zero."""

from __future__ import annotations

import pytest

from stream.tools.cli import build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("run", "demo", "check-config", "state"):
        assert cmd in out


def test_wrong_config_key_is_named(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text("[processing]\nbatch_sise = 10\n")
    assert main(["check-config", "-c", str(f)]) == 2
    err = capsys.readouterr().err
    assert "batch_sise" in err and "allowed" in err


def test_check_config_redacts_secrets(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DRIFTSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("DRIFTSTREAM_REDIS__URL", "redis://user:topsecret@127.0.0.1:1/0")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "topsecret" not in out and "***" in out
    assert "hmac_key is empty" in out


def test_run_with_missing_broker_says_so(capsys, monkeypatch):
    monkeypatch.setenv("DRIFTSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("DRIFTSTREAM_STATE__HMAC_KEY", "k")
    assert main(["run", "--connect-timeout", "2"]) == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in capsys.readouterr().err


def test_state_commands_parse():
    args = build_parser().parse_args(["state", "show", "-p", "3"])
    assert args.partition == 3
    args = build_parser().parse_args(["state", "reset", "--all"])
    assert args.all


def test_demo_takes_a_seed():
    assert build_parser().parse_args(["demo"]).seed == 42
    assert build_parser().parse_args(["demo", "--seed", "7"]).seed == 7


def test_json_logs_carry_partition_context(capsys):
    import logging

    import orjson

    from stream.tools.cli import setup_logging
    from stream.config import load_config

    setup_logging(load_config(None, {"DRIFTSTREAM_LOGGING__JSON": "true"}))
    logging.getLogger("driftstream").error("partition %d fenced", 3, extra={"partition": 3, "offset": 17})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    rec = orjson.loads(line)
    assert rec["msg"] == "partition 3 fenced" and rec["partition"] == 3 and rec["offset"] == 17
    assert rec["level"] == "ERROR"
    logging.getLogger().handlers.clear()
