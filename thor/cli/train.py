"""``thor train --config run.yaml``: RL training (a thin layer over thor.algos.loop.train).

The run config is a YAML, TOML or JSON file validated by :class:`~thor.algos.loop.TrainConfig`
(a typo fails with the field named and a suggestion); ``--set key.path=value`` overrides a field
(the value is read as YAML: ``3e-3``, ``true``, ``[a, b]``); ``--import`` loads python modules or
files first, so that algorithms, rewards or envs they register can be named in the config. A run
killed at any moment resumes from its last checkpoint when the same command runs again.

The helpers here (:func:`load_run_config`, :func:`import_plugins`) serve ``thor sft`` too.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from thor.errors import ConfigError

C = TypeVar("C", bound=BaseModel)

__all__ = [
    "add_config_arguments",
    "apply_overrides",
    "import_plugins",
    "key_json_options",
    "load_run_config",
    "print_config",
    "register",
    "setup_run",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a policy with RL (GRPO, THOR...) from a run config (resumable)",
        description="Rollouts, rewards, batch, update, repeat. Checkpoints every save_every "
        "steps; run the same command again to resume. Metrics go to OUT_DIR/metrics.jsonl "
        "(`thor plot OUT_DIR` draws them) and the final policy to OUT_DIR/model.",
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--set``, ``--import``, ``--threads``, ``--print-config``."""
    p.add_argument("--config", type=Path, help="run config file (.yaml, .toml or .json)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. --set optim.lr=1e-5 --set steps=10 (VALUE is YAML)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a python module or file first (it may register algorithms, rewards, envs)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--print-config", action="store_true", help="print the validated config and exit"
    )


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` pairs in a nested mapping (in place); values are parsed as YAML.

    Example:
        >>> apply_overrides({"optim": {"lr": 1e-6}}, ["optim.lr=1e-5", "steps=3"])
        {'optim': {'lr': 1e-05}, 'steps': 3}
    """
    import yaml

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: cannot read the value: {err}") from None
        if isinstance(value, str):
            value = _number(value)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if isinstance(child, str):  # a part named by a string: its fields go beside the name
                child = node[part] = {"name": child}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


def key_json_options(pairs: list[str]) -> dict[str, object]:
    """``KEY=JSON`` pairs as a dict (a value that is not JSON is kept as text).

    Example:
        >>> key_json_options(['base_url="http://127.0.0.1:8000/v1"', "timeout_s=30", "name=x"])
        {'base_url': 'http://127.0.0.1:8000/v1', 'timeout_s': 30, 'name': 'x'}
    """
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _merge(data: dict[str, Any], fields: dict[str, Any]) -> None:
    """Merge nested ``fields`` into ``data`` (in place); a name given as a string becomes
    ``{"name": ...}`` when fields go beside it."""
    for key, value in fields.items():
        old = data.get(key)
        if isinstance(value, dict) and isinstance(old, str):
            old = {"name": old}
        if isinstance(value, dict) and isinstance(old, dict):
            data[key] = old
            _merge(old, value)
        else:
            data[key] = value


def _number(text: str) -> Any:
    """YAML 1.1 reads ``3e-3`` as text; numbers written so are numbers here."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def import_plugins(names: list[str]) -> None:
    """Import python modules (``pkg.mod``) or files (``path/to/file.py``) for their registrations."""
    for name in names:
        path = Path(name)
        if path.suffix == ".py":
            if not path.is_file():
                raise ConfigError(f"--import {name}: no such file")
            mod_name = f"thor_user_{path.stem}"
            loaded = sys.modules.get(mod_name)
            if loaded is not None and getattr(loaded, "__file__", None) == str(path.resolve()):
                continue  # imported already (a second command in the same process)
            spec = importlib.util.spec_from_file_location(mod_name, path.resolve())
            if spec is None or spec.loader is None:
                raise ConfigError(f"--import {name}: cannot load it")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(name)
            except ImportError as err:
                raise ConfigError(f"--import {name}: {err}") from None


def load_run_config(
    cls: type[C],
    path: Path | None,
    overrides: list[str],
    fields: dict[str, Any] | None = None,
) -> C:
    """A config from an optional file, shortcut flags (``fields``, over the file) and ``--set``
    overrides (last), validated; errors name where the bad value came from."""
    from thor.config import load_mapping, validate_config

    data = load_mapping(path) if path is not None else {}
    _merge(data, fields or {})
    where = str(path) if path is not None else "the command line"
    if overrides:  # a bad value is blamed on where it came from: the file and flags, or --set
        try:
            validate_config(cls, data)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        where = "--set"
    apply_overrides(data, overrides)
    try:
        return validate_config(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def setup_run(args: argparse.Namespace) -> None:
    """Import the --import modules and set --threads."""
    import_plugins(args.imports)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def print_config(cfg: BaseModel) -> None:
    """The validated config as YAML on stdout."""
    import yaml

    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")


def run(args: argparse.Namespace) -> int:
    from thor.algos.loop import TrainConfig, train

    setup_run(args)
    cfg = load_run_config(TrainConfig, args.config, args.overrides)
    if args.print_config:
        print_config(cfg)
        return 0
    out = train(cfg)
    print(f"run directory: {out}")
    print(f"  metrics:     {out / 'metrics.jsonl'}  (plot them: thor plot {out})")
    print(f"  checkpoints: {out / 'checkpoints'}")
    if cfg.export:
        print(f"  model:       {out / 'model'}")
    return 0
