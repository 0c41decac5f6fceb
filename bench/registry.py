"""One registry style for everything a user names: grids, budgets, methods, backbones and tasks.

A ``Registry`` is a read-only mapping from name to entry that refuses a second entry of the same name
and answers an unknown name with the same one line everywhere: ``unknown KIND 'NAME'; accepted: A, B,
C`` (plus what else the kind accepts, such as a local model folder). It imports nothing heavy, so
``python -m bench list`` and input checks run without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

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
    file with a typo) breaks only the commands that use it, never ``report``, ``migrate`` or ``--help``."""

    def __init__(self, kind: str, names: Iterable[str], load: Callable[[str], T], also_accepted: str = ""):
        super().__init__(kind, also_accepted)
        self._names = list(dict.fromkeys(names))
        self._load = load

    def add(self, name: str, entry: T) -> T:
        if name in self._names:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._names.append(name)
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise UnknownName(self.unknown(name))
        if name not in self._entries:
            self._entries[name] = self._load(name)
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._names
        except TypeError:
            return False
