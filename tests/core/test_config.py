from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, ValidationError

from thor.config import ThorConfig, load_config, validate_config
from thor.errors import ConfigError


class Inner(ThorConfig):
    lr: float = Field(1e-6, gt=0)
    name: str = "x"


class Outer(ThorConfig):
    steps: int = 10
    inner: Inner = Field(default_factory=Inner)


def test_unknown_nested_field_is_named() -> None:
    with pytest.raises(ConfigError, match=r"inner\.lrr"):
        validate_config(Outer, {"inner": {"lrr": 1.0}})


def test_assignment_is_validated() -> None:
    cfg = Outer()
    with pytest.raises(ValidationError):
        cfg.steps = "many"  # type: ignore[assignment]


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_load_formats(tmp_path: Path, suffix: str) -> None:
    text = {
        ".yaml": "steps: 3\ninner:\n  lr: 0.5\n",
        ".toml": "steps = 3\n[inner]\nlr = 0.5\n",
        ".json": '{"steps": 3, "inner": {"lr": 0.5}}',
    }[suffix]
    p = tmp_path / f"run{suffix}"
    p.write_text(text)
    cfg = load_config(Outer, p)
    assert cfg.steps == 3 and cfg.inner.lr == 0.5


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(Outer, bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("stepz: 3\n")
    with pytest.raises(
        ConfigError, match=r"typo\.yaml.*unknown field 'stepz' \(did you mean 'steps'\?\)"
    ):
        load_config(Outer, typo)
    weird = tmp_path / "x.ini"
    weird.write_text("a=1")
    with pytest.raises(ConfigError, match="unknown config format"):
        load_config(Outer, weird)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, listy)


@given(steps=st.integers(), lr=st.floats(min_value=1e-12, max_value=1e3), name=st.text())
def test_round_trip(steps: int, lr: float, name: str) -> None:
    cfg = Outer(steps=steps, inner=Inner(lr=lr, name=name))
    assert validate_config(Outer, cfg.model_dump()) == cfg
    assert Outer.model_validate_json(cfg.model_dump_json()) == cfg
