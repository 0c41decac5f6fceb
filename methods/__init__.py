"""Tuning methods, registered by name in ``METHODS``. Each import below registers one method."""

from methods import finetune, prefix, prompt  # noqa: F401  (importing registers them)
from methods.base import METHODS, Method, register

__all__ = ["METHODS", "Method", "register"]
