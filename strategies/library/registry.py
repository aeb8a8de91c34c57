"""Registry of the strategies: every ``Strategy`` subclass declaring its own ``key`` in a module of the
``strategies.library`` package, found by importing those modules (built-in and user-written).

Adding a strategy = dropping a module into ``strategies/library/`` (no other file to edit). Modules
whose name starts with ``_`` are ignored. A module that fails to import does not break the others:
it is skipped with a warning and reported by ``import_errors()``. Two classes with the same key are
an error. Pure Python, no Django.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading
import traceback
import warnings
from typing import Any

import strategies.library as _package
from strategies.library.base import Strategy

_INTERNAL_MODULES = frozenset({"base", "registry", "numeric"})

_lock = threading.RLock()
_registry: dict[str, type[Strategy]] | None = None
_errors: dict[str, str] = {}


class RegistryError(RuntimeError):
    """The strategy modules are inconsistent (e.g. two strategies share a key)."""


class UnknownStrategyError(KeyError):
    """No strategy has this key."""

    def __init__(self, key: str, known: list[str]) -> None:
        super().__init__(key)
        self.key = key
        self.message = f"알 수 없는 전략입니다: {key!r} (사용 가능: {', '.join(known) or '없음'})"

    def __str__(self) -> str:
        return self.message


def _import_modules() -> dict[str, str]:
    errors: dict[str, str] = {}
    for info in pkgutil.walk_packages(_package.__path__, prefix=f"{_package.__name__}."):
        short = info.name.rsplit(".", 1)[-1]
        if short.startswith("_") or short in _INTERNAL_MODULES:
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # a broken user module must not hide the others
            errors[info.name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            warnings.warn(f"strategy module {info.name} could not be imported: {errors[info.name]}", stacklevel=3)
    return errors


def _strategy_classes() -> list[type[Strategy]]:
    """Strategy subclasses with a key defined in the imported modules of the package."""
    prefix = f"{_package.__name__}."
    found = []
    for name, module in sorted(sys.modules.items()):
        if not name.startswith(prefix) or module is None:
            continue
        for obj in vars(module).values():
            if (
                isinstance(obj, type) and issubclass(obj, Strategy) and obj is not Strategy
                and obj.__module__ == name and obj.__dict__.get("key")
            ):
                found.append(obj)
    return found


def discover(refresh: bool = False) -> dict[str, type[Strategy]]:
    """{key: class} of every strategy in the package (imported once; ``refresh=True`` rescans)."""
    global _registry, _errors
    with _lock:
        if _registry is not None and not refresh:
            return _registry
        if refresh:
            importlib.invalidate_caches()
        errors = _import_modules()
        found: dict[str, type[Strategy]] = {}
        for cls in _strategy_classes():
            other = found.get(cls.key)
            if other is not None and other is not cls:
                raise RegistryError(
                    f"strategy key {cls.key!r} is used twice: {other.__module__}.{other.__qualname__} "
                    f"and {cls.__module__}.{cls.__qualname__}"
                )
            found[cls.key] = cls
        _registry = dict(sorted(found.items()))
        _errors = errors
        return _registry


def all_strategies() -> dict[str, type[Strategy]]:
    """Every registered strategy class, by key (sorted)."""
    return dict(discover())


def get_strategy(key: str) -> type[Strategy]:
    """The strategy class for ``key``; ``UnknownStrategyError`` (a KeyError, Korean message) if none."""
    registry = discover()
    try:
        return registry[key]
    except KeyError:
        raise UnknownStrategyError(key, list(registry)) from None


def create_strategy(key: str, params: dict[str, Any] | None = None) -> Strategy:
    """An instance of the strategy ``key`` with validated ``params`` (``ParameterError`` if invalid)."""
    return get_strategy(key)(params)


def import_errors() -> dict[str, str]:
    """Modules of the package that failed to import at the last scan: {module: error}."""
    discover()
    return dict(_errors)
