"""One registry style for everything a user names: grids, budgets, methods, backbones and tasks.

A ``Registry`` is a read-only mapping from name to entry that refuses a second entry of the same name
and answers an unknown name with the same one line everywhere: ``unknown KIND 'NAME'; accepted: A, B,
C`` (plus what else the kind accepts, such as a local model folder). It imports nothing heavy, so
``python -m bench list`` and input checks run without torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name no registry entry has; the message lists what is accepted (exit 2 on the command line)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Mapping[str, T], Generic[T]):
    """Entries by name, in registration order."""

    def __init__(self, kind: str, also_accepted: str = ""):
        self.kind, self.also_accepted = kind, also_accepted
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def accepted(self) -> str:
        names = ", ".join(self) or "(none registered)"
        return f"{names}{', or ' + self.also_accepted if self.also_accepted else ''}"

    def unknown(self, *names: object) -> str:
        """The one-line message for names that are not registered."""
        return f"unknown {self.kind} {', '.join(map(repr, names))}; accepted: {self.accepted()}"

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable value from a malformed file
            return False


class LazyRegistry(Registry[T]):
    """A registry whose entries are named up front and loaded on first use, each once: a broken entry (a grid
    file with a typo) breaks only the commands that use it, never ``report``, ``migrate`` or ``--help``.
    Names, order, duplicates and unknown names are the base registry's; only the loading is added."""

    def __init__(self, kind: str, names: Iterable[str], load: Callable[[str], T], also_accepted: str = ""):
        super().__init__(kind, also_accepted)
        self._load = load
        for name in dict.fromkeys(names):
            self._entries[name] = _NOT_LOADED

    def __getitem__(self, name: str) -> T:
        entry = super().__getitem__(name)
        if entry is _NOT_LOADED:
            entry = self._entries[name] = self._load(name)
        return entry


_NOT_LOADED: Any = object()  # a LazyRegistry entry not read yet


def submodules(package_file: str, package: str, packages: bool = False, skip: Iterable[str] = ()) -> list[ModuleType]:
    """The modules of the package ``package`` (the folder holding ``package_file``, any of its files), imported
    in name order: its subpackages with ``packages``, else its plain modules but those in ``skip``. How the
    method, launcher and task registries find their entries, so adding one never edits a shared list."""
    skipped = set(skip)
    found = sorted(pkgutil.iter_modules([str(Path(package_file).parent)]), key=lambda m: m.name)
    return [importlib.import_module(f"{package}.{m.name}") for m in found
            if m.ispkg == packages and m.name not in skipped]
