"""Tuning methods: ``METHODS`` maps each name to its declaration (``methods/catalog.py``), importable
without torch; ``build`` makes a model of one. Implementations live one per file in this package."""

from __future__ import annotations

from typing import Any

from methods import catalog  # noqa: F401  (importing declares the methods)
from methods.registry import METHODS, MethodEntry

__all__ = ["METHODS", "MethodEntry", "build"]


def build(name: str, backbone: Any, num_labels: int, **settings: Any) -> Any:
    """Method ``name`` around ``backbone`` with ``settings`` over its defaults (ValueError listing every
    problem); the budget's caps do not apply here, a run applies them (``bench.train.RunSpec``)."""
    entry = METHODS[name]
    training, own = entry.resolve(settings)
    return entry.load()(backbone, num_labels, own, training)
