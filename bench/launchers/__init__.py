"""How a grid's runs are launched: the driver every launcher shares, and the launchers themselves.

The driver (``bench.launchers.driver``) is written once: the checks before any work, the run log, the
plan of distinct runs, reuse of recorded rows, per-run claims, recording each row and the summary. A
launcher is only the strategy that gets the planned runs executed (one after another here, or as Ray
tasks): one module of this package that defines ``LAUNCHER``, a ``Launcher`` with its name, one line of
help, its own command-line options (typed: a dataclass built from them) and its ``run``. ``LAUNCHERS``
finds every such module, so adding a launcher is one file: ``--launcher NAME``, its options, their
"goes with" checks and the summary come with it. Importing this package imports no torch and no Ray.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry, submodules

SHARED = ("driver", "log")  # modules of this package that are not launchers


@dataclass(frozen=True)
class Option:
    """One command-line option of one launcher (``argparse`` keyword arguments beside the flag)."""

    flag: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Launcher:
    """A launch strategy: ``run(grid, results, settings, options, say)`` runs the grid's missing runs through
    a ``bench.launchers.driver.Driver`` and returns its ``GridOutcome``; ``options`` is built by ``parse``
    from this launcher's own option values (raising GridError with what is accepted)."""

    name: str
    help: str
    options: tuple[Option, ...]
    parse: Callable[[dict[str, Any]], Any]
    run: Callable[..., Any]

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        for option in self.options:
            parser.add_argument(option.flag, type=option.type, default=option.default, metavar=option.metavar,
                                help=f"with --launcher {self.name}: {option.help}")

    def given(self, args: argparse.Namespace) -> list[str]:
        """The flags of this launcher's options that ``args`` sets to something other than their default."""
        return [o.flag for o in self.options if getattr(args, o.dest, o.default) not in (None, o.default)]

    def options_of(self, args: argparse.Namespace) -> Any:
        return self.parse({o.dest: getattr(args, o.dest, o.default) for o in self.options})


LAUNCHERS: Registry[Launcher] = Registry("launcher")


def discover() -> None:
    """Import every launcher module of this package (each defines ``LAUNCHER``), in name order."""
    for module in submodules(__file__, __name__, skip=SHARED):
        if module.LAUNCHER.name not in LAUNCHERS:
            LAUNCHERS.add(module.LAUNCHER.name, module.LAUNCHER)


discover()
