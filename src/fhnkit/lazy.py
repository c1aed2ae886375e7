"""Lazy exports for a subpackage's curated API (PEP 562), so that a job imports only what it uses.

A compile job needs torch and the compiled builds, not numba, scipy and the benchmark; with
`lazy_exports` the subpackage's `__init__` still lists its whole API (`__all__`), and each name is
imported from its module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, list[str]]) -> tuple[Callable, Callable, list[str]]:
    """(`__getattr__`, `__dir__`, `__all__`) for `package` exporting, per module (relative name, e.g.
    ".compiled"), the names it lists; a module listed with no names is exported itself."""
    where = {}
    for module, names in exports.items():
        for name in names or [module.lstrip(".")]:
            where[name] = (module, bool(names))

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, is_member = where[name]
        module = importlib.import_module(module_name, package)
        return getattr(module, name) if is_member else module

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
