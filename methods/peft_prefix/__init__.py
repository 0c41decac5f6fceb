"""PEFT's prefix tuning, a cross-check of the harness's own ``prefix``. Its settings build the PEFT
config; ``methods.peft_adapter.PeftAdapter`` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.families import Family, hidden_size, num_heads, num_layers
from methods.registry import declare_peft
from methods.settings import FROZEN_BACKBONE, PeftSettings, positive_int, setting


@dataclass(frozen=True)
class PeftPrefixSettings(PeftSettings):
    """PEFT's prefix tuning passes its prefixes as ``past_key_values``: BERT uses them, MPNet and
    DistilBERT ignore them (no effect: the run fails its effect check) or fail on padded batches."""

    kind = "peft-prefix"
    prefix_len: int = setting(16, positive_int, "key/value vectors PEFT adds to every attention layer")

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import PrefixTuningConfig

        from methods.base import MethodRefused

        if not family.uses_past_key_values:
            raise MethodRefused(f"PEFT prefix tuning hands its prefixes to the model as past_key_values, which "
                                f"{family.model_type} attention does not read (it would train nothing, or fail on "
                                "padded batches); use prefix, the harness's own, on this backbone")

        return PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=self.prefix_len,
                                  token_dim=hidden_size(backbone), num_attention_heads=num_heads(backbone),
                                  num_layers=num_layers(backbone), prefix_projection=False)

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        return self.prefix_len * num_layers(backbone) * 2 * hidden_size(backbone)


declare_peft("peft-prefix", "PEFT prefix tuning (cross-check of prefix)", PeftPrefixSettings, FROZEN_BACKBONE)
