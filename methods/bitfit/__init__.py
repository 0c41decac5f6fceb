"""BitFit, declared: only the backbone's bias terms and the head train. Implementation:
``methods/bitfit/model.py``."""

from methods.registry import MethodEntry, declare
from methods.settings import ADAPTER

declare(MethodEntry("bitfit", "methods.bitfit.model:BitFit", "only the backbone's bias terms (+ head)",
                    training=ADAPTER))
