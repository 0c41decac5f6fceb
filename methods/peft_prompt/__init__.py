"""PEFT's prompt tuning, a cross-check of the harness's own ``prompt``. Its settings build the PEFT
config; ``methods.peft_adapter.PeftAdapter`` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.families import Family, hidden_size, num_heads, num_layers
from methods.registry import declare_peft
from methods.settings import FROZEN_BACKBONE, PeftSettings, one_of, positive_int, setting


@dataclass(frozen=True)
class PeftPromptSettings(PeftSettings):
    kind = "peft-prompt"
    adds_positions = True
    prompt_len: int = setting(16, positive_int, "virtual tokens PEFT puts before the tokens")
    init: str = setting("vocab", one_of("vocab", "normal"),
                        "vocab: PEFT's SAMPLE_VOCAB (random word-embedding rows); normal: PEFT's RANDOM")

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit

        init = PromptTuningInit.SAMPLE_VOCAB if self.init == "vocab" else PromptTuningInit.RANDOM
        return PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=self.prompt_len,
                                  prompt_tuning_init=init, token_dim=hidden_size(backbone),
                                  num_attention_heads=num_heads(backbone), num_layers=num_layers(backbone))

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        return self.prompt_len * hidden_size(backbone)


declare_peft("peft-prompt", "PEFT prompt tuning (cross-check of prompt)", PeftPromptSettings, FROZEN_BACKBONE)
