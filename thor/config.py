"""Configuration conventions: pydantic v2 models that reject unknown fields, loadable from files.

Every component is built from one config model (which pickles, so components can be rebuilt in
other processes or on other machines). Unknown fields fail early and name the field.

Example:
    >>> from thor.config import ThorConfig, validate_config
    >>> class Demo(ThorConfig):
    ...     rounds: int = 5
    >>> Demo(rounds=3).rounds
    3
    >>> validate_config(Demo, {"round": 3})
    Traceback (most recent call last):
    ...
    thor.errors.ConfigError: Demo: unknown field 'round' (did you mean 'rounds'?)
"""

from __future__ import annotations

import difflib
import json
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from thor.errors import ConfigError

__all__ = [
    "PresetConfig",
    "ThorConfig",
    "format_validation_error",
    "load_config",
    "load_mapping",
    "merge_mappings",
    "validate_config",
]

C = TypeVar("C", bound=BaseModel)


class ThorConfig(BaseModel):
    """Base of every thor config: unknown fields are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class PresetConfig(ThorConfig):
    """A config with named presets: ``preset: NAME`` fills the fields the input leaves out.

    thor's one preset mechanism. A preset is a mapping of field values (nested mappings are merged
    field by field); values given explicitly always win; the field defaults apply last. The
    preset's values are validated like any others.

    Example:
        >>> class Run(PresetConfig):
        ...     presets: ClassVar[dict[str, dict[str, Any]]] = {"fast": {"steps": 2}}
        ...     steps: int = 100
        ...     lr: float = 1e-6
        >>> Run(preset="fast").steps, Run(preset="fast", steps=5).steps, Run().steps
        (2, 5, 100)
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    preset: str | None = Field(None, description="A named set of field values (see presets)")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        name = data["preset"]
        if name not in cls.presets:
            close = difflib.get_close_matches(str(name), list(cls.presets), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown preset {name!r}{hint} (known: {', '.join(cls.presets)})")
        return merge_mappings(cls.presets[name], data)


def merge_mappings(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, nested mappings merged key by key (neither is changed).

    Example:
        >>> merge_mappings({"a": 1, "b": {"x": 1, "y": 2}}, {"b": {"y": 3}})
        {'a': 1, 'b': {'x': 1, 'y': 3}}
    """
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge_mappings(old, value)
        else:
            out[key] = value
    return out


def format_validation_error(cls: type[BaseModel], err: ValidationError) -> str:
    """Render a pydantic error as one readable message that names each bad field.

    Unknown fields get a did-you-mean suggestion drawn from the model's field names.
    """
    lines: list[str] = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            leaf = str(e["loc"][-1]) if e["loc"] else loc
            fields = _fields_at(cls, e["loc"][:-1])
            close = difflib.get_close_matches(leaf, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"unknown field {loc!r}{hint}")
        elif e["type"] == "value_error":  # raised by a validator: its message says it all
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"field {loc!r}: {msg}")
        else:
            lines.append(f"field {loc!r}: {e['msg']} (got {e.get('input')!r:.80})")
    return f"{cls.__name__}: " + "; ".join(lines)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``M``, ``M | None``, ``list[M]``...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _fields_at(cls: type[BaseModel], path: Sequence[Any]) -> list[str]:
    """Field names of the (nested) model at ``path`` (list indices skipped); [] when unknown."""
    model: type[BaseModel] | None = cls
    for part in path:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(str(part)) if model is not None else None
        model = _model_in(info.annotation) if info is not None else None
        if model is None:
            return []
    return list(model.model_fields) if model is not None else []


def validate_config(cls: type[C], data: Any) -> C:
    """Build ``cls`` from a mapping (or return it if already built), raising :class:`ConfigError`."""
    if isinstance(data, cls):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump()
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(cls, err)) from None


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML, TOML or JSON file into a dict, with a clear error on bad syntax."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{p}: unknown config format {p.suffix!r}; use .yaml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{p}: cannot parse: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[C], path: str | Path) -> C:
    """Load and validate a config file (YAML, TOML or JSON) into ``cls``."""
    try:
        return validate_config(cls, load_mapping(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
