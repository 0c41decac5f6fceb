"""The method registry: every method declared as data, without importing torch.

A ``MethodEntry`` says what a method is called, where its implementation lives (``module:Class``,
imported only when a run builds the model), one line on what it does, its own typed settings class,
and its defaults for the shared training settings. ``METHODS`` holds the entries. Each method is a
folder of this package, ``methods/<name>/``: its ``__init__.py`` declares it (no torch import) and,
for a native method, ``model.py`` implements it; ``discover`` imports every such folder, so adding a
method edits no shared file. Everything outside ``methods/`` reaches a method through its entry
(``resolve``, ``problems``, ``load``), never by its name.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from bench.registry import Registry, submodules
from methods.settings import NoSettings, PeftSettings, Settings, TrainingSettings


@dataclasses.dataclass(frozen=True)
class MethodEntry:
    name: str
    implementation: str  # "module:Class", a methods.base.Method subclass
    description: str
    settings: type[Settings] = NoSettings  # the method's own settings
    training: dict[str, Any] = dataclasses.field(default_factory=dict)  # its training-setting defaults

    def setting_names(self) -> list[str]:
        return [*TrainingSettings.fields(), *self.settings.fields()]

    def defaults(self) -> dict[str, Any]:
        """Every setting's default for this method (before a budget or a grid changes any)."""
        return {**TrainingSettings.defaults(), **self.training, **self.settings.defaults()}

    def problems(self, values: dict[str, Any], where: str | None = None) -> list[str]:
        """Every problem of ``values`` (unknown names, wrong types, out of range), each starting with
        ``where`` (default: the method's name) and saying what is accepted; empty when all are valid."""
        where = where or self.name
        out = []
        unknown = [key for key in values if key not in self.setting_names()]
        if unknown:
            out.append(f"{where}: no setting {unknown}; accepted: {', '.join(self.setting_names())}")
        return out + TrainingSettings.problems(values, where) + self.settings.problems(values, where)

    def resolve(self, values: dict[str, Any]) -> tuple[TrainingSettings, Settings]:
        """The typed settings a run uses: defaults, then the method's training defaults, then ``values``.
        Raises ValueError listing every problem."""
        problems = self.problems(values)
        if problems:
            raise ValueError("; ".join(problems))
        merged = {**self.training, **values}
        return TrainingSettings.build(merged), self.settings.build(merged)

    def load(self) -> type:
        """The implementation class (this imports torch)."""
        module, _, attribute = self.implementation.partition(":")
        return getattr(importlib.import_module(module), attribute)


METHODS: Registry[MethodEntry] = Registry("method")
PEFT_ADAPTER = "methods.peft_adapter:PeftAdapter"  # the one implementation of every PEFT-backed method


def declare(entry: MethodEntry) -> MethodEntry:
    """Add ``entry`` to ``METHODS``, refusing a duplicate name, a setting that shadows a training
    setting, a training default the shared settings do not have, and defaults that fail their checks."""
    clash = sorted(set(entry.settings.fields()) & set(TrainingSettings.fields()))
    if clash:
        raise ValueError(f"method '{entry.name}' settings {clash} shadow training settings of the same name")
    unknown = sorted(set(entry.training) - set(TrainingSettings.fields()))
    if unknown:
        raise ValueError(f"method '{entry.name}' training defaults {unknown} are not training settings; "
                         f"accepted: {', '.join(TrainingSettings.fields())}")
    if entry.implementation == PEFT_ADAPTER and not issubclass(entry.settings, PeftSettings):
        raise ValueError(f"method '{entry.name}' runs through PEFT, so its settings must subclass "
                         "methods.settings.PeftSettings (peft_config, expected_trainable)")
    problems = entry.problems(entry.defaults())
    if problems:
        raise ValueError(f"method '{entry.name}' defaults are invalid: {'; '.join(problems)}")
    return METHODS.add(entry.name, entry)


def declare_peft(name: str, description: str, settings: type[PeftSettings],
                 training: dict[str, Any] | None = None) -> MethodEntry:
    """Declare a method that PEFT implements: only its settings class (``PeftSettings``) is its own."""
    return declare(MethodEntry(name, PEFT_ADAPTER, description, settings, dict(training or {})))


def discover() -> None:
    """Import every method folder of this package (``methods/<name>/__init__.py`` declares it), in name
    order; a folder imported before is not imported twice."""
    submodules(__file__, __package__, packages=True)
