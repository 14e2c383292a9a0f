"""Lazy package exports (PEP 562): a name is imported from its module on first access.

Why: ``import voorbeelden`` (and ``voorbeelden.sim``, ``.bench``, ``.strategies``) must stay cheap, so the CLI
and the simulator process do not pay for openai, pandas or matplotlib they never use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``namespace`` (the package's ``globals()``) that imports
    ``exports[name]`` on first access and keeps the value in the namespace, so later access is direct."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


def lazy_dir(namespace: dict[str, Any], exports: Mapping[str, str]) -> Callable[[], list[str]]:
    """A module ``__dir__`` that lists the lazy ``exports`` beside what is already loaded: without it
    ``dir(package)`` (and so Jupyter's tab completion) offers none of the names not yet accessed."""

    def __dir__() -> list[str]:
        # The public names (lazy or not), the module's dunders and its loaded submodules; not the helpers it
        # imported for itself (``lazy_exports``, ``annotations``).
        public = set(exports) | set(namespace.get("__all__", ()))
        own = {
            n
            for n, v in namespace.items()
            if n.startswith("__") or (isinstance(v, ModuleType) and n[0] != "_")
        }
        return sorted(public | own)

    return __dir__


def by_module(modules: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """The ``exports`` of :func:`lazy_exports` written module by module (``{module: names}``), so a package
    that takes several names from one module names that module once."""
    return {name: module for module, names in modules.items() for name in names}
