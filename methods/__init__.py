"""Tuning methods: ``METHODS`` maps each name to its declaration, importable without torch; ``build``
makes a model of one. Each method is a folder, ``methods/<name>/`` (declaration in ``__init__.py``,
implementation in ``model.py``), found by ``methods.registry.discover``."""

from __future__ import annotations

from typing import Any

from methods.registry import METHODS, MethodEntry, discover

__all__ = ["METHODS", "MethodEntry", "build"]

discover()


def build(name: str, backbone: Any, num_labels: int, **settings: Any) -> Any:
    """Method ``name`` around ``backbone`` with ``settings`` over its defaults (ValueError listing every
    problem); the budget's caps do not apply here, a run applies them (``bench.plan.RunSpec``)."""
    entry = METHODS[name]
    training, own = entry.resolve(settings)
    return entry.load()(backbone, num_labels, own, training)
