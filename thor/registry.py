"""Typed registries: versioned names, validated configs, did-you-mean errors, entry-point plugins.

Every registrable part of thor (envs, tools, sandboxes, policies, agents, rewards, algorithms,
datasets) lives in a :class:`Registry`. An entry pairs a name with a pydantic config class and a
factory that builds the part from a validated config, so ``make(name, **kwargs)`` rejects a bad
field by name before anything is built.

Third-party packages add entries through the entry-point group ``thor.plugins``: each entry point
names a module or a zero-argument callable that registers what it brings; plugins load on the first
lookup that misses or the first listing.

Example:
    >>> from pydantic import BaseModel, ConfigDict
    >>> class EchoConfig(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     word: str = "hi"
    >>> TOYS: Registry[str] = Registry("toy", versioned=True)
    >>> @TOYS.register("demo/Echo-v0", config=EchoConfig)
    ... def make_echo(cfg: EchoConfig) -> str:
    ...     return cfg.word * 2
    >>> TOYS.make("demo/Echo-v0", word="ho")
    'hoho'
    >>> TOYS.make("demo/Eho-v0")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    thor.errors.UnknownNameError: unknown toy 'demo/Eho-v0'; did you mean 'demo/Echo-v0'?
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, SerializeAsAny, model_validator

from thor.config import validate_config
from thor.errors import ConfigError, UnknownNameError

__all__ = ["PLUGIN_GROUP", "Entry", "PartSpec", "Registry", "load_plugins"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

PLUGIN_GROUP = "thor.plugins"
VERSIONED_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z][A-Za-z0-9_.]*-v\d+$")
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.:/-]+$")

log = logging.getLogger(__name__)
_plugins_lock = threading.RLock()
_plugins_loaded = False


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered part: its name, its config class and the factory that builds it."""

    name: str
    config: type[BaseModel]
    factory: Callable[[Any], T]
    description: str = ""

    def build(self, config: BaseModel | dict[str, Any] | None = None, /, **kwargs: Any) -> T:
        """Validate ``config`` (or ``kwargs``) against this entry's config class and build the part."""
        if config is not None and kwargs:
            raise ConfigError(f"{self.name}: pass a config object or keyword arguments, not both")
        cfg = validate_config(self.config, config if config is not None else kwargs)
        return self.factory(cfg)


class Registry(Generic[T]):
    """A named collection of factories for one kind of part.

    Args:
        kind: what the entries are ("env", "reward", ...); used in messages.
        versioned: require names of the form ``namespace/Name-vN`` (gymnasium's convention).
        modules: modules that register thor's own entries, imported on the first lookup (so that
            ``import thor`` stays light and heavy parts load only when used).
    """

    def __init__(
        self, kind: str, *, versioned: bool = False, modules: tuple[str, ...] = ()
    ) -> None:
        self.kind = kind
        self.versioned = versioned
        self._modules = modules
        self._populated = not modules
        self._entries: dict[str, Entry[T]] = {}
        self._lock = threading.RLock()
        self._hooks: list[Callable[[Entry[T]], None]] = []

    def _populate(self) -> None:
        if self._populated:
            return
        with self._lock:
            if self._populated:
                return
            self._populated = True
            for mod in self._modules:
                importlib.import_module(mod)

    # -- registration -----------------------------------------------------------------------
    def register(
        self,
        name: str,
        *,
        config: type[BaseModel],
        factory: Callable[[Any], T] | None = None,
        description: str = "",
    ) -> Callable[[F], F]:
        """Register ``factory`` (or, used as a decorator, the decorated callable) under ``name``.

        The factory receives one argument, the validated config. A class whose ``__init__`` takes
        its config is a factory.

        Raises:
            ValueError: the name is malformed or already registered.
        """
        self._check_name(name)
        if not (isinstance(config, type) and issubclass(config, BaseModel)):
            raise TypeError(f"{self.kind} {name!r}: config must be a pydantic model class")
        if config.model_config.get("extra") != "forbid":
            raise TypeError(f"{self.kind} {name!r}: {config.__name__} must set extra='forbid'")

        def add(fn: F) -> F:
            entry: Entry[T] = Entry(name, config, fn, description or _first_line(fn.__doc__))
            with self._lock:
                if name in self._entries:
                    raise ValueError(f"{self.kind} {name!r} is already registered")
                self._entries[name] = entry
                hooks = list(self._hooks)
            for hook in hooks:
                hook(entry)
            return fn

        if factory is not None:
            add(factory)
        return add

    def on_register(self, hook: Callable[[Entry[T]], None]) -> None:
        """Call ``hook`` for every entry registered from now on, and for those already present."""
        with self._lock:
            self._hooks.append(hook)
            present = list(self._entries.values())
        for entry in present:
            hook(entry)

    # -- lookup ------------------------------------------------------------------------------
    def entry(self, name: str) -> Entry[T]:
        """The entry registered as ``name``; an unknown name raises with suggestions."""
        found = self._entries.get(name)
        if found is None:
            self._populate()
            found = self._entries.get(name)
        if found is None:
            load_plugins()
            found = self._entries.get(name)
        if found is None:
            raise UnknownNameError(self._unknown_message(name))
        return found

    def make(
        self, name: str, /, config: BaseModel | dict[str, Any] | None = None, **kwargs: Any
    ) -> T:
        """Build the part registered as ``name`` from a config object or keyword arguments."""
        return self.entry(name).build(config, **kwargs)

    def config(self, name: str, /, **kwargs: Any) -> BaseModel:
        """The validated config of ``name`` for ``kwargs`` (defaults filled in)."""
        return validate_config(self.entry(name).config, kwargs)

    def names(self) -> list[str]:
        """Sorted names of every entry, plugins included."""
        self._populate()
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        self._populate()
        if name in self._entries:
            return True
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    # -- helpers ------------------------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if self.versioned and not VERSIONED_NAME.match(name):
            raise ValueError(
                f"{self.kind} name {name!r} must look like 'namespace/Name-v0' (a version is required)"
            )
        if not self.versioned and not PLAIN_NAME.match(name):
            raise ValueError(
                f"{self.kind} name {name!r} may use letters, digits and _ . : / - only"
            )

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        if not close:
            lowered = {k.lower(): k for k in known}
            close = [lowered[k] for k in difflib.get_close_matches(str(name).lower(), lowered, n=3)]
        msg = f"unknown {self.kind} {name!r}"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif known:
            msg += f"; known: {', '.join(known)}"
        return msg


class PartSpec(BaseModel):
    """A registered part chosen by name, with its typed config, validated when it is built.

    A spec is written as a name (``"thor"``), as ``{"name": "thor", "max_retries": 2}`` (the
    part's config fields beside its name) or as ``{"name": "thor", "config": {...}}``. The name is
    looked up in the subclass's :attr:`registry` (with did-you-mean) and the fields are validated by
    that part's own config class, so a typo anywhere fails when the enclosing config is built,
    before anything heavy loads.

    Example:
        >>> class ToySpec(PartSpec):
        ...     registry = Registry("toy")
        >>> from pydantic import BaseModel, ConfigDict
        >>> class C(BaseModel):
        ...     model_config = ConfigDict(extra="forbid")
        ...     n: int = 1
        >>> _ = ToySpec.registry.register("box", config=C, factory=lambda c: [0] * c.n)
        >>> spec = ToySpec.model_validate({"name": "box", "n": 3})
        >>> spec.name, spec.config.n, spec.build()
        ('box', 3, [0, 0, 0])
        >>> ToySpec.model_validate({"name": "bx"})  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        pydantic_core._pydantic_core.ValidationError: unknown toy 'bx'; did you mean 'box'?
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    registry: ClassVar[Registry[Any]]
    default_name: ClassVar[str | None] = None
    """The name used when a mapping gives none (e.g. ``grpo`` for a loss)."""

    name: str
    config: SerializeAsAny[BaseModel]

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict):
            return data
        fields = dict(data)
        name = fields.pop("name", cls.default_name)
        if not isinstance(name, str):
            raise ValueError(f"a {cls.registry.kind} needs a 'name' (one of the registered names)")
        nested = fields.pop("config", None)
        if nested is not None and fields:
            raise ValueError(f"give {name!r}'s fields beside its name or under 'config', not both")
        try:
            entry = cls.registry.entry(name)
            config = validate_config(entry.config, nested if nested is not None else fields)
        except UnknownNameError as err:
            raise ValueError(str(err)) from None
        return {"name": entry.name, "config": config}

    def build(self) -> Any:
        """Build the part from its validated config."""
        return self.registry.entry(self.name).factory(self.config)

    def fields(self) -> dict[str, Any]:
        """The config's fields as a plain dict (for merging overrides)."""
        return self.config.model_dump(mode="python", exclude_unset=False)

    def with_fields(self, **fields: Any) -> PartSpec:
        """A copy with some config fields replaced (validated again)."""
        return type(self).model_validate({"name": self.name, **self.fields(), **fields})


def load_plugins(*, force: bool = False) -> None:
    """Load every entry point of the group ``thor.plugins`` once (idempotent, thread-safe).

    A plugin that fails to load is logged with its name and skipped: one broken third-party
    package must not take thor down.
    """
    global _plugins_loaded
    with _plugins_lock:
        if _plugins_loaded and not force:
            return
        _plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
            try:
                obj = ep.load()
                if callable(obj):
                    obj()
            except Exception as err:  # a broken plugin is reported, not fatal
                log.warning("thor plugin %r (%s) failed to load: %s", ep.name, ep.value, err)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0]
