from __future__ import annotations

import importlib.metadata

import pytest
from pydantic import BaseModel, ConfigDict

import thor
from thor import registry as registry_mod
from thor.errors import ConfigError, UnknownNameError
from thor.registry import Registry


class CounterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: int = 0
    step: int = 1


def make_counter(cfg: CounterConfig) -> list[int]:
    return [cfg.start + i * cfg.step for i in range(3)]


def test_make_validates_and_builds() -> None:
    reg: Registry[list[int]] = Registry("counter", versioned=True)
    reg.register("t/Counter-v0", config=CounterConfig, factory=make_counter)
    assert reg.make("t/Counter-v0") == [0, 1, 2]
    assert reg.make("t/Counter-v0", start=5, step=2) == [5, 7, 9]
    assert reg.make("t/Counter-v0", CounterConfig(start=1)) == [1, 2, 3]
    assert reg.make("t/Counter-v0", {"step": 3}) == [0, 3, 6]


def test_bad_field_is_named_with_suggestion() -> None:
    reg: Registry[list[int]] = Registry("counter", versioned=True)
    reg.register("t/Counter-v0", config=CounterConfig, factory=make_counter)
    with pytest.raises(ConfigError, match=r"unknown field 'stpe' \(did you mean 'step'\?\)"):
        reg.make("t/Counter-v0", stpe=2)
    with pytest.raises(ConfigError, match="field 'start'"):
        reg.make("t/Counter-v0", start="many")
    with pytest.raises(ConfigError, match="not both"):
        reg.make("t/Counter-v0", CounterConfig(), start=1)


def test_unknown_name_suggests() -> None:
    reg: Registry[list[int]] = Registry("counter", versioned=True)
    reg.register("t/Counter-v0", config=CounterConfig, factory=make_counter)
    with pytest.raises(UnknownNameError, match=r"did you mean 't/Counter-v0'"):
        reg.make("t/Countr-v0")
    with pytest.raises(KeyError):  # UnknownNameError is a KeyError too
        reg.entry("nothing/Like-v9")


def test_duplicate_and_malformed_names() -> None:
    reg: Registry[list[int]] = Registry("counter", versioned=True)
    reg.register("t/Counter-v0", config=CounterConfig, factory=make_counter)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("t/Counter-v0", config=CounterConfig, factory=make_counter)
    with pytest.raises(ValueError, match="version is required"):
        reg.register("t/Counter", config=CounterConfig, factory=make_counter)
    plain: Registry[int] = Registry("plain")
    with pytest.raises(ValueError):
        plain.register("has space", config=CounterConfig, factory=make_counter)


def test_config_must_forbid_extra() -> None:
    class Loose(BaseModel):
        x: int = 0

    with pytest.raises(TypeError, match="extra='forbid'"):
        Registry("loose").register("loose", config=Loose, factory=lambda c: c)


def test_decorator_and_names_and_hooks() -> None:
    reg: Registry[list[int]] = Registry("counter")
    seen: list[str] = []
    reg.on_register(lambda e: seen.append(e.name))

    @reg.register("b", config=CounterConfig)
    def make_b(cfg: CounterConfig) -> list[int]:
        """Counts from start."""
        return make_counter(cfg)

    reg.register("a", config=CounterConfig, factory=make_counter)
    assert reg.names() == ["a", "b"]
    assert "a" in reg and "zzz" not in reg
    assert len(reg) == 2 and list(reg) == ["a", "b"]
    assert seen == ["b", "a"]
    assert reg.entry("b").description == "Counts from start."
    assert make_b(CounterConfig()) == [0, 1, 2]  # the decorator returns the function unchanged


def test_lazy_modules_are_imported_on_first_lookup() -> None:
    reg: Registry[object] = Registry("lazy", modules=("json",))
    assert not reg._populated
    reg.names()
    assert reg._populated


def test_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    reg: Registry[list[int]] = Registry("plugged")
    calls: list[str] = []

    def plugin() -> None:
        calls.append("loaded")
        reg.register("from-plugin", config=CounterConfig, factory=make_counter)

    class FakeEP:
        name, value = "demo", "demo_pkg:plugin"

        def load(self) -> object:
            return plugin

    class BrokenEP:
        name, value = "broken", "broken_pkg:oops"

        def load(self) -> object:
            raise ImportError("no module named broken_pkg")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [BrokenEP(), FakeEP()])
    monkeypatch.setattr(registry_mod, "_plugins_loaded", False)
    assert reg.make("from-plugin", start=2) == [
        2,
        3,
        4,
    ]  # the miss loads plugins; broken one skipped
    assert calls == ["loaded"]
    reg.names()
    assert calls == ["loaded"]  # loaded once


def test_thor_exposes_registries() -> None:
    for reg in (
        thor.ENVS,
        thor.TOOLS,
        thor.SANDBOXES,
        thor.REWARDS,
        thor.POLICIES,
        thor.AGENTS,
        thor.ALGORITHMS,
        thor.DATASETS,
    ):
        assert isinstance(reg, Registry)
    assert "math500" in thor.DATASETS
