"""IA3 from PEFT (Liu et al., 2022): learned scales of the keys, the values and the feed-forward
activations. Its settings build the PEFT config; ``methods.peft_adapter.PeftAdapter`` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.families import Family, hidden_size, inner_size, num_layers
from methods.registry import declare_peft
from methods.settings import ADAPTER, PeftSettings


@dataclass(frozen=True)
class IA3Settings(PeftSettings):
    kind = "ia3"

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import IA3Config

        return IA3Config(target_modules=family.ia3_targets, feedforward_modules=family.ia3_feedforward,
                         task_type="FEATURE_EXTRACTION")

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        return num_layers(backbone) * (2 * hidden_size(backbone) + inner_size(backbone))


declare_peft("ia3", "PEFT IA3: learned scales of keys, values, FFN", IA3Settings, {**ADAPTER, "lr": 1e-2})
