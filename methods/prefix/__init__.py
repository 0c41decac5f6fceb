"""Deep prefix tuning (P-Tuning v2), declared: its settings and training defaults. Implementation:
``methods/prefix/model.py``."""

from __future__ import annotations

from dataclasses import dataclass

from methods.registry import MethodEntry, declare
from methods.settings import FROZEN_BACKBONE, Settings, boolean, positive_int, positive_number, setting


@dataclass(frozen=True)
class PrefixSettings(Settings):
    kind = "prefix"
    prefix_len: int = setting(16, positive_int, "key/value vectors added to every attention layer")
    projection: bool = setting(False, boolean, "produce the prefixes with an MLP (P-Tuning v2's reparameterisation)")
    projection_hidden: int = setting(512, positive_int, "the MLP's hidden width (read only with projection)")
    init_std: float = setting(0.5, positive_number, "std of the prefixes' initial values (without projection)")


declare(MethodEntry("prefix", "methods.prefix.model:PrefixTuning",
                    "P key/value vectors in every layer, backbone frozen", PrefixSettings, FROZEN_BACKBONE))
