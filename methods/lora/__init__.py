"""LoRA from PEFT (Hu et al., 2021): rank-r updates of attention Linears. Its settings build the PEFT
config; ``methods.peft_adapter.PeftAdapter`` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.families import Family, hidden_size, inner_size, num_layers
from methods.registry import declare_peft
from methods.settings import ADAPTER, PeftSettings, fraction, one_of, positive_int, positive_number, setting


@dataclass(frozen=True)
class LoraSettings(PeftSettings):
    kind = "lora"
    r: int = setting(8, positive_int, "rank of each low-rank update")
    alpha: float = setting(16.0, positive_number, "scale: the update is multiplied by alpha / r")
    dropout: float = setting(0.1, fraction, "dropout on the LoRA branch's input")
    targets: str = setting("qv", one_of("qv", "all"),
                           "qv: query and value projections (the LoRA paper); all: every Linear of every layer")

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=family.lora_targets[self.targets], task_type="FEATURE_EXTRACTION")

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        hidden, layers, inner = hidden_size(backbone), num_layers(backbone), inner_size(backbone)
        per_layer = 2 * (hidden + hidden) if self.targets == "qv" else 4 * 2 * hidden + 2 * (hidden + inner)
        return self.r * layers * per_layer


declare_peft("lora", "PEFT LoRA: rank-r updates of attention Linears", LoraSettings, ADAPTER)
