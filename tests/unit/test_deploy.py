"""The deployment files agree with the code: compose ↔ config keys, CLI and port defaults; Dockerfile ↔
pyproject; alert rules and dashboard ↔ the metrics the app exports. No servers needed; promtool must be
installed (CI installs it) and its absence is a failure, not a skip.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

import stream.tools.cli
import stream.config
import stream.topics
from stream.tools import workload_producer
from stream.config import AppConfig, MetricsConfig, env_overrides, load_config
from stream.metrics import Metrics
from stream.tools.workload import Workload, events, produce
from tests.fakes import FakeBroker, FakeProducer

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
PROM_DIR = REPO / "deploy" / "prometheus"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "driftstream.json"

REQUIRED_SERVICES = {"kafka", "redis", "driftstream", "topics", "demo-producer", "prometheus", "grafana"}
# services that run the driftstream image (and so read DRIFTSTREAM_* variables)
APP_SERVICES = ("driftstream", "topics", "demo-producer")
# labels Prometheus attaches to every scraped series
TARGET_LABELS = {"job", "instance"}
METRIC_TOKEN = re.compile(r"\bdriftstream_[A-Za-z0-9_:]+")
SELECTOR = re.compile(r"\b(driftstream_[A-Za-z0-9_:]+)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*", "$model": ".*"}


# -- helpers ----------------------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: Any, environ: dict[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` substitution (enough for our file)."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in environ and (environ[name] or op is None):
            return environ[name]
        if op == ":-":
            return arg
        if op == ":?":
            raise AssertionError(f"required variable {name} unset: {arg}")
        return ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", sub, str(value)).replace("$$", "$")


def service_env(service: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(v, environ) for k, v in env.items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port for short-syntax port mappings ("[ip:]host:container")."""
    out = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        assert len(parts) >= 2, f"port {spec!r} should publish a fixed host port"
        out[int(parts[-1].split("/")[0])] = int(parts[-2])
    return out


def config_mount(service: dict[str, Any]) -> tuple[Path, str]:
    for vol in service.get("volumes", []):
        src, dst = str(vol).split(":")[:2]
        if src.endswith(".toml"):
            return (REPO / src).resolve(), dst
    raise AssertionError(f"service mounts no .toml config: {service.get('volumes')}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerfile(instruction: str) -> list[str]:
    return [rest for word, rest in dockerfile_instructions() if word == instruction]


def exported_metric_names() -> set[str]:
    """Every sample name the app can export, from the types of the metrics ``Metrics`` registers."""
    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
    names = set()
    for family in registry.collect():
        names |= {family.name + s for s in suffixes[family.type]}
    return names


def exercised_registry() -> CollectorRegistry:
    """A registry where every metric has at least one labelled child, through the app's own helpers."""
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.message("inference", 0, "processed")
    m.dead_letter("inference", "invalid_json")
    m.output("drift-events")
    m.joined("fraud", 3.0)
    m.join_expired(1)
    m.pending(0, 5, 1)
    m.alarm("fraud", "concept", "ADWIN", warning=False)
    m.model_errors("fraud", 0.1, 0.05)
    m.checkpoint(0, 0.01, 1024)
    m.checkpoint_failures.labels("redis_unavailable").inc()
    m.lag.labels("inference", "0").set(10)
    m.batch_seconds.observe(0.01)
    m.assigned.set(1)
    m.quality_issue("fraud", "missing_feature")
    m.drift_statistic("fraud", "amount", "KS", 0.2)
    m.retrain("fraud", ["concept_drift"])
    m.model_swap("fraud")
    m.recalibration("fraud", "PageHinkley", "recalibrated")
    m.component_failed("fraud", "online_model")
    m.output_rejected("drift-events", "MSG_SIZE_TOO_LARGE")
    m.scope_output("drift_events", "fraud", {"kind": "concept", "severity": "critical"})
    m.scope_output("retrain_events", "fraud", {"reasons": ["concept_drift"]})
    m.scope_output("model_updates", "fraud", {"type": "challenger-better"})
    m.scope_status("fraud", late=0, forced=0)
    m.scope_waiting_partitions("fraud", 1)
    m.scope_late_items("fraud", 1, 3)
    m.scope_invalid.inc()
    m.scope_parts_dropped.labels("out_of_sequence").inc()
    m.scope_recalibrations.labels("fraud", "PageHinkley", "recalibrated").inc()
    m.flush()  # per-message counts are published per micro-batch
    return registry


def sample_labels() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for family in exercised_registry().collect():
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def check_metric_names(exprs: dict[str, str]) -> list[str]:
    """Problems with the metric names and label matchers in ``{where: promql}``."""
    names, labels = exported_metric_names(), sample_labels()
    problems = []
    for where, expr in exprs.items():
        for token in METRIC_TOKEN.findall(expr):
            if token not in names:
                problems.append(f"{where}: {token} is not exported (exported: {', '.join(sorted(names))})")
        for metric, matchers in SELECTOR.findall(expr):
            for label in MATCHER_LABEL.findall(matchers):
                if metric in labels and label not in labels[metric] | TARGET_LABELS:
                    problems.append(f"{where}: {metric} has no label {label!r} (labels: {sorted(labels[metric])})")
    return problems


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not on PATH: install it (Debian/Ubuntu: apt-get install prometheus, or the "
                    "promtool binary from a Prometheus release); CI installs it, so this test never skips")
    return subprocess.run([exe, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120)


def assert_promtool_ok(*args: str | Path) -> None:
    res = promtool(*args)
    assert res.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{res.stdout}\n{res.stderr}"


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> dict[str, str]:
    """PromQL of every panel target, annotation and template variable (label_values() unwrapped)."""
    out = {}
    for path, key, value in walk(dashboard()):
        if key == "expr" and isinstance(value, str):
            out[f"{path}.expr"] = value
        elif key == "query" and ".templating" in path and isinstance(value, dict) and "query" in value:
            q = value["query"]
            m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", q)
            out[f"{path}.query"] = m.group(1) if m else q
    return out


# -- docker-compose.yml -----------------------------------------------------------------------------
def test_compose_parses_and_has_every_service() -> None:
    doc = compose()
    missing = REQUIRED_SERVICES - set(doc["services"])
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"
    kafka = doc["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = service_env(kafka, {})
    for key in ("KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_LISTENERS",
                "KAFKA_ADVERTISED_LISTENERS", "KAFKA_CONTROLLER_LISTENER_NAMES"):
        assert key in env, f"kafka service: {key} missing (KRaft combined mode)"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    redis_cmd = doc["services"]["redis"]["command"]
    redis_cmd = " ".join(redis_cmd) if isinstance(redis_cmd, list) else redis_cmd
    assert doc["services"]["redis"]["image"].startswith("redis:7")
    # the same durability as deploy/local/stack.sh, which the checkpoint guarantees are written against
    assert "--appendonly yes" in redis_cmd and "--appendfsync everysec" in redis_cmd


def test_compose_app_services_use_the_dockerfile_and_a_config_that_loads() -> None:
    services = compose()["services"]
    for name in APP_SERVICES:
        svc = services[name]
        assert (REPO / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE, name
        host, container = config_mount(svc)
        assert host.is_file(), f"{name} mounts {host}, which does not exist"
        load_config(host, environ={})  # raises ConfigError on unknown keys


def test_compose_hmac_key_is_a_required_variable() -> None:
    env = compose()["services"]["driftstream"]["environment"]
    assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?.+\}", env["DRIFTSTREAM_STATE__HMAC_KEY"]), \
        "DRIFTSTREAM_STATE__HMAC_KEY must come from the environment with ${VAR:?message}"
    with pytest.raises(AssertionError, match="required variable"):
        service_env(compose()["services"]["driftstream"], {})


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_env_vars_are_real_config_keys(name: str) -> None:
    svc = compose()["services"][name]
    env = service_env(svc, {"DRIFTSTREAM_STATE__HMAC_KEY": "test-key"})
    ours = {k: v for k, v in env.items() if k.startswith(stream.config.ENV_PREFIX)}
    assert ours, f"{name} sets no DRIFTSTREAM_* variable"
    cfg = load_config(None, environ=ours)  # ConfigError on an unknown section or key
    defaults = AppConfig()
    for var, value in ours.items():
        overrides = env_overrides({var: value})
        section, rest = next(iter(overrides.items()))
        if section in stream.config.PASS_THROUGH:
            # pass-through sections accept any key: only keys the defaults set are expected here
            (key, parsed), = rest.items()
            assert key in getattr(defaults, section), f"{var} -> {section}.{key} is not a known {section} key"
            assert getattr(cfg, section)[key] == parsed
        else:
            node: Any = cfg
            path = [section]
            while isinstance(rest, dict):
                (k, rest), = rest.items()
                path.append(k)
            for p in path:
                node = getattr(node, p)
            assert node == rest, f"{var} did not set {'.'.join(path)}"
    kafka_env = service_env(compose()["services"]["kafka"], {})
    assert f"PLAINTEXT://{cfg.kafka['bootstrap.servers']}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    redis_url = urlsplit(cfg.redis["url"])
    assert redis_url.hostname in compose()["services"] and redis_url.port == 6379


def test_driftstream_service_listens_beyond_loopback_and_sets_the_hmac_key() -> None:
    env = service_env(compose()["services"]["driftstream"], {"DRIFTSTREAM_STATE__HMAC_KEY": "k"})
    cfg = load_config(None, environ=env)
    assert cfg.metrics.host == "0.0.0.0" and cfg.state.hmac_key == "k"


def test_compose_driftstream_command_is_a_real_cli_subcommand() -> None:
    svc = compose()["services"]["driftstream"]
    argv = svc.get("command") or json.loads(dockerfile("CMD")[-1])
    argv = shlex.split(argv) if isinstance(argv, str) else argv
    try:
        args = stream.tools.cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`driftstream {' '.join(argv)}` is not accepted by the CLI (exit {exc.code})")
    assert args.fn is stream.tools.cli.cmd_run
    assert args.config == config_mount(svc)[1], "the service must read the mounted config file"
    assert "entrypoint" not in svc, "the driftstream service uses the image's entrypoint"


def test_compose_topics_job_creates_every_configured_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    svc = compose()["services"]["topics"]
    assert svc["entrypoint"] == ["python", "-c"]
    code = svc["command"][0] if isinstance(svc["command"], list) else svc["command"]
    host, container = config_mount(svc)
    real_load = stream.config.load_config
    created: list[str] = []
    loaded: list[AppConfig] = []

    def load(path: Any = None, environ: Any = None) -> AppConfig:
        assert path == container, f"the topics job reads {path}, but the config is mounted at {container}"
        loaded.append(real_load(host, environ=service_env(svc, {})))
        return loaded[-1]

    class Admin:
        def list_topics(self, timeout: float) -> Any:
            return type("Md", (), {"topics": {}})()

        def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Any]:
            created.extend(t.topic for t in topics)
            return {t.topic: type("F", (), {"result": lambda self, timeout=None: None})() for t in topics}

    monkeypatch.setattr(stream.config, "load_config", load)
    monkeypatch.setattr(stream.topics, "admin_client", lambda cfg: Admin())
    exec(compile(code, "docker-compose.yml:topics", "exec"), {})
    assert loaded and sorted(created) == sorted(stream.topics.all_topics(loaded[0]))


def test_compose_demo_producer_runs_the_workload_producer() -> None:
    svc = compose()["services"]["demo-producer"]
    assert svc["entrypoint"] == ["python", "-m", "stream.tools.workload_producer"]
    args = workload_producer.build_parser().parse_args([str(a) for a in svc["command"]])
    assert args.config == config_mount(svc)[1]
    assert args.events > 0 and args.rate > 0


def test_compose_ports_match_config_defaults() -> None:
    services = compose()["services"]
    defaults = AppConfig()
    metrics_port = MetricsConfig().port
    assert published(services["driftstream"]) == {metrics_port: metrics_port}
    # the host CLI with default settings reaches the compose Kafka and Redis
    kafka_port = int(defaults.kafka["bootstrap.servers"].rsplit(":", 1)[1])
    assert kafka_port in published(services["kafka"]).values()
    advertised = service_env(services["kafka"], {})["KAFKA_ADVERTISED_LISTENERS"]
    assert f"127.0.0.1:{kafka_port}" in advertised, "the host-facing listener must advertise the published port"
    redis_port = urlsplit(defaults.redis["url"]).port
    assert published(services["redis"]) == {6379: redis_port}
    scrape = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] if job["job_name"] == "driftstream"
               for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"driftstream:{metrics_port}"]
    assert dockerfile("EXPOSE") == [str(metrics_port)]


def test_compose_mounts_the_prometheus_and_grafana_provisioning() -> None:
    services = compose()["services"]
    prom_mounts = {str(v).split(":")[0]: str(v).split(":")[1] for v in services["prometheus"]["volumes"]}
    assert prom_mounts.get("./deploy/prometheus") == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    graf_mounts = {str(v).split(":")[0]: str(v).split(":")[1] for v in services["grafana"]["volumes"]}
    assert graf_mounts.get("./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "driftstream.yml").read_text())
    assert graf_mounts.get("./deploy/grafana/dashboards") == provider["providers"][0]["options"]["path"]


# -- Dockerfile -------------------------------------------------------------------------------------
def test_dockerfile_runs_the_console_script_as_non_root_with_a_healthcheck() -> None:
    assert dockerfile("FROM") == ["python:3.11-slim"]
    assert any("pip install ." in r for r in dockerfile("RUN"))
    users = dockerfile("USER")
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    health = dockerfile("HEALTHCHECK")
    assert len(health) == 1 and " CMD " in f" {health[0]}", "one HEALTHCHECK ... CMD"
    assert f"http://127.0.0.1:{MetricsConfig().port}/metrics" in health[0] and "python" in health[0]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    (entry,) = dockerfile("ENTRYPOINT")
    argv = json.loads(entry)
    assert len(argv) == 1 and argv[0] in scripts, f"ENTRYPOINT {argv} is not a console script of {scripts}"
    module, func = scripts[argv[0]].split(":")
    assert (module, func) == ("stream.tools.cli", "main") and callable(stream.tools.cli.main)
    (cmd,) = dockerfile("CMD")
    args = stream.tools.cli.build_parser().parse_args(json.loads(cmd))
    assert args.fn is stream.tools.cli.cmd_run and args.config == "/etc/driftstream/driftstream.toml"


def test_dockerfile_copies_every_package_of_the_distribution() -> None:
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = " ".join(dockerfile("COPY"))
    for pkg in {p.split(".")[0] for p in include}:
        assert re.search(rf"\b{pkg}\b", copied), f"deploy/Dockerfile does not COPY package {pkg}"


# -- Prometheus -------------------------------------------------------------------------------------
def test_promtool_check_rules() -> None:
    assert_promtool_ok("check", "rules", PROM_DIR / "alerts.yml")


def test_promtool_rule_unit_tests() -> None:
    assert_promtool_ok("test", "rules", PROM_DIR / "alerts_test.yml")


def test_promtool_check_config() -> None:
    assert_promtool_ok("check", "config", PROM_DIR / "prometheus.yml")


def test_alert_rules_name_only_exported_metrics() -> None:
    rules = alert_rules()
    assert rules
    problems = check_metric_names({r["alert"]: r["expr"] for r in rules})
    assert not problems, "\n".join(problems)


def test_alert_rules_have_severity_and_templated_annotations() -> None:
    for r in alert_rules():
        assert r.get("labels", {}).get("severity") in ("critical", "warning", "info"), r["alert"]
        ann = r.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), f"{r['alert']}: summary and description"
        assert "$labels." in ann["summary"] + ann["description"], f"{r['alert']}: annotations should name labels"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    doc = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())
    fires, quiet = set(), set()
    for case in doc["tests"]:
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert not names - fires, f"alerts without a firing test: {sorted(names - fires)}"
    assert not names - quiet, f"alerts without a non-firing test: {sorted(names - quiet)}"


def test_required_alerts_exist() -> None:
    exprs = " ".join(r["expr"] for r in alert_rules())
    for metric in ("driftstream_detector_alarms_total", "driftstream_served_model_error",
                   "driftstream_online_model_error", "driftstream_dead_letter_total",
                   "driftstream_consumer_lag_messages", "driftstream_messages_total",
                   "driftstream_checkpoint_failures_total", "driftstream_join_expired_total"):
        assert metric in exprs, f"no alert on {metric}"


def test_drift_and_retrain_alerts_page_at_model_scope() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for r in rules.values():
        for token in set(METRIC_TOKEN.findall(r["expr"])):
            by_metric.setdefault(token, []).append(r)
    for metric in ("driftstream_model_incidents_total", "driftstream_model_retrain_events_total",
                   "driftstream_scope_partitions_skipped", "driftstream_scope_partitions_waited",
                   "driftstream_scope_late_items", "driftstream_scope_invalid_summaries_total"):
        assert metric in by_metric, f"no alert on {metric}"
    # the incident page: critical, and one per model (no instance label: the model's stage can move)
    pages = [r for r in by_metric["driftstream_model_incidents_total"] if r["labels"]["severity"] == "critical"]
    assert pages, "a model-scope incident must page"
    for r in pages:
        assert not re.search(r"by \([^)]*\binstance\b", r["expr"]), f"{r['alert']} would page once per instance"
    # partition-scope drift signals stay, but never page
    for r in by_metric["driftstream_detector_alarms_total"]:
        assert r["labels"]["severity"] == "info", f"{r['alert']} pages per partition's instance"


# -- Grafana ----------------------------------------------------------------------------------------
def test_exported_metric_names_match_what_the_registry_really_exports() -> None:
    # guards exported_metric_names(): computed names must cover the real samples of an exercised registry
    computed = exported_metric_names()
    real = {s.name for family in exercised_registry().collect() for s in family.samples}
    assert real <= computed, f"not predicted: {sorted(real - computed)}"
    assert {n for n in computed if not n.endswith("_created")} <= real
    assert {"driftstream_messages_total", "driftstream_label_delay_seconds_bucket",
            "driftstream_checkpoint_duration_seconds_sum", "driftstream_batch_processing_seconds_count"} <= computed


def test_dashboard_queries_name_only_exported_metrics() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    problems = check_metric_names(queries)
    assert not problems, "\n".join(problems)


def test_dashboard_shows_every_exported_metric() -> None:
    used = {t for q in dashboard_queries().values() for t in METRIC_TOKEN.findall(q)}
    families = {family.name for family in exercised_registry().collect()}
    unused = {f for f in families if not any(u.startswith(f) for u in used)}
    assert not unused, f"metrics without a panel in {DASHBOARD.name}: {sorted(unused)}"


def test_dashboard_has_drift_annotations_on_the_alarm_counter() -> None:
    annotations = [a for a in dashboard()["annotations"]["list"] if a.get("expr")]
    assert any('driftstream_detector_alarms_total{level="drift"' in a["expr"] for a in annotations)


def test_dashboard_shows_model_scope_first() -> None:
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]

    def top(metric: str) -> int:
        ys = [p["gridPos"]["y"] for p in panels if any(metric in t.get("expr", "") for t in p.get("targets", []))]
        assert ys, f"no panel on {metric}"
        return min(ys)

    model = [top(m) for m in ("driftstream_model_incidents_total", "driftstream_model_retrain_events_total",
                              "driftstream_scope_partitions_skipped")]
    partition = [top(m) for m in ("driftstream_detector_alarms_total", "driftstream_retrain_events_total",
                                  "driftstream_served_model_error")]
    assert max(model) < min(partition), f"model-scope panels at y={model}, partition panels at y={partition}"
    on = [a for a in dashboard()["annotations"]["list"] if a.get("expr") and a.get("enable")]
    assert on and all("driftstream_model_incidents_total" in a["expr"] for a in on), \
        "the annotations shown by default are the model-scope incidents"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = []
    for i, q in enumerate(dashboard_queries().values()):
        for var, value in GRAFANA_VARIABLES.items():
            q = q.replace(var, value)
        assert "$" not in q, f"unknown Grafana variable in {q!r}"
        rules.append({"record": f"dashboard:query_{i}", "expr": q})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert_promtool_ok("check", "rules", path)


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = provisioned["datasources"]
    assert ds["type"] == "prometheus" and urlsplit(ds["url"]).hostname in compose()["services"]
    d = dashboard()
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == ds["uid"]
    for path, key, value in walk(d):
        if key == "datasource" and isinstance(value, dict) and value.get("type") == "prometheus":
            assert value.get("uid") in ("${datasource}", ds["uid"]), f"{path}: datasource {value}"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


# -- stream/workload_producer.py --------------------------------------------------------------------
def test_paced_producer_keeps_the_rate_of_the_paced_topic_only() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    inner = FakeProducer(FakeBroker())
    p = workload_producer.PacedProducer(inner, "inference", rate=10.0, clock=lambda: now[0], sleep=sleep)
    for i in range(5):
        p.produce("inference", key=f"e-{i}", value=b"{}")
        p.produce("labels", key=f"e-{i}", value=b"{}")
    assert now[0] == pytest.approx(0.4)  # 5 messages at 10/s: the 5th leaves at t = 0.4 s
    assert inner.produced == 10


def test_workload_producer_produces_the_whole_workload() -> None:
    args = workload_producer.build_parser().parse_args(["--events", "300", "--rate", "1000", "--change-every", "100"])
    w = workload_producer.build_workload(args, now=1_800_000_000.0)
    assert isinstance(w, Workload) and w.change_points == (100, 200) and w.t0 == 1_800_000_000.0
    assert w.spacing == pytest.approx(0.001)
    broker = FakeBroker()
    inner = FakeProducer(broker)
    p = workload_producer.PacedProducer(inner, "inference", rate=1e9)
    n = produce(p, w, inference_topic="inference", labels_topic="labels")
    assert n == len(list(events(w))) == inner.delivered and inner.flushes and len(inner) == 0
    assert len(broker.messages("inference")) == 300
    # a second run uses new ids, so it is never mistaken for a replay
    w2 = workload_producer.build_workload(args, now=1_800_000_001.0)
    assert next(events(w2))[2]["id"] != next(events(w))[2]["id"]
