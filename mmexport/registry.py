"""The one lazy registry: names -> objects declared in the modules of a package, imported on first
use. Connectors and precisions list their modules (one line each); families are found by reading
every module of their package (a declaration is the single source of truth) and may come from
other packages too (entry points, or `register` at run time)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Generic, Iterable, TypeVar

from .errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """`modules` maps a name to the module (in `package`) whose `attribute` it is (None: the module
    itself). Without it, every module of the package is read and `names_of(obj)` says which names
    each declares."""

    def __init__(
        self,
        kind: str,
        package: str,
        attribute: str | None,
        modules: dict[str, str] | None = None,
        names_of: Callable[[T], Iterable[str]] | None = None,
        entry_points: str | None = None,
        env: str | None = None,
    ):
        self.kind, self.package, self.attribute = kind, package, attribute
        self._modules = modules
        self._names_of = names_of
        self._entry_points, self._env = entry_points, env
        self._found: dict[str, T] | None = None
        self._added: dict[str, T] = {}

    def _discover(self) -> dict[str, T]:
        if self._found is None:
            found: dict[str, T] = {}
            package = importlib.import_module(self.package)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                declared = self._attribute(importlib.import_module(f"{self.package}.{info.name}"))
                if declared is not None:
                    found |= {name: declared for name in self._declared(declared)}
            self._found = found | self._from_entry_points()
        return self._found

    def _declared(self, obj: T) -> list[str]:
        assert self._names_of is not None
        return list(self._names_of(obj))

    def _from_entry_points(self) -> dict[str, T]:
        """Declarations other packages ship (`[project.entry-points."GROUP"] name = "pkg.module:OBJ"`),
        or a script names in the environment (ENV="pkg.module:OBJ,..."; a server process reads it too)."""
        import os
        from importlib.metadata import EntryPoint, entry_points

        points = list(entry_points(group=self._entry_points)) if self._entry_points else []
        named = os.environ.get(self._env, "") if self._env else ""
        points += [EntryPoint(value.strip(), value.strip(), self._env or "") for value in named.split(",") if value.strip()]
        found: dict[str, T] = {}
        for point in points:
            try:
                obj = point.load()
            except Exception as exc:  # a broken plug-in is named, in one line
                raise UsageError(f"the {self.kind} plug-in '{point.name}' ({point.value}) does not load: {exc}") from exc
            found |= {name: obj for name in self._declared(obj)}
        return found

    def names(self) -> list[str]:
        listed = list(self._modules) if self._modules is not None else list(self._discover())
        return listed + [n for n in self._added if n not in listed]

    def find(self, name: str) -> T | None:
        if name in self._added:
            return self._added[name]
        if self._modules is None:
            return self._discover().get(name)
        if name not in self._modules:
            return None
        return self._attribute(importlib.import_module(f"{self.package}.{self._modules[name]}"))

    def _attribute(self, module: Any) -> Any:
        return module if self.attribute is None else getattr(module, self.attribute, None)

    def get(self, name: str) -> T:
        found = self.find(name)
        if found is None:
            raise UsageError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}")
        return found

    def all(self) -> list[T]:
        seen: dict[int, T] = {}
        for name in self.names():
            obj = self.get(name)
            seen.setdefault(id(obj), obj)  # a declaration of several names is listed once
        return list(seen.values())

    def register(self, obj: T, names: Iterable[str] | None = None) -> T:
        """Add a declaration at run time (a user's own family); it takes precedence over a built-in one."""
        for name in names if names is not None else self._declared(obj):
            self._added[name] = obj
        return obj
