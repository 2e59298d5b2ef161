"""``driftstream config-reference`` prints the defaults the loader uses (issue 20: it printed
``default_model.data_drift.enabled`` as True while the loader, the code and the README say off)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from stream.config import load_config
from stream.tools.config_reference import markdown, rows, shown

#: every table of named sections declared once, empty, so that its entries get the loader's defaults
DECLARED = """
[models.m]
[models.m.features.f]
[default_model.features.f]
"""


def _value(cfg, path: str):
    node = cfg
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node[part]
        else:
            node = getattr(node, part)
    return node


def test_every_default_in_the_reference_is_the_loaders(tmp_path: Path):
    path = tmp_path / "declared.toml"
    path.write_text(DECLARED)
    cfg = load_config(path, environ={})
    checked = 0
    for key, _, default, _ in rows():
        if key.endswith(".*") or key.endswith("<name>"):
            continue
        # models.<name>.features.<name>.type -> models.m.features.f.type
        parts = key.split(".")
        named = [i for i, p in enumerate(parts) if p == "<name>"]
        for i in named:
            parts[i] = "m" if parts[i - 1] == "models" else "f"
        value = _value(cfg, ".".join(parts))
        assert default == shown(value), f"{key}: the reference says {default}, the loader gives {shown(value)}"
        checked += 1
    assert checked > 120  # every leaf, not a few


def test_data_drift_is_off_for_undeclared_models_and_on_for_declared_ones():
    md = markdown()
    assert "| `default_model.data_drift.enabled` | bool | `False` |" in md
    assert "| `models.<name>.data_drift.enabled` | bool | `True` |" in md
    assert load_config(None, environ={}).default_model.data_drift.enabled is False


def test_choices_are_listed():
    md = markdown()
    assert "| `processing.start_from` | one of 'earliest', 'latest' | `'earliest'` |" in md
