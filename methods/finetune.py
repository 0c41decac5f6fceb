"""Full fine-tuning: every backbone parameter and the head train. The reference row per backbone."""

from __future__ import annotations

import torch

from methods.base import Method, register


@register("finetune")
class FineTune(Method):
    description = "all parameters train"
    defaults = {"lr": 5e-5, "epochs": 3, "weight_decay": 0.01, "warmup_ratio": 0.06,
                "head_dropout": 0.1, "train_head": True}

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
