"""Full fine-tuning: every backbone parameter and the head train. The reference row per backbone."""

from __future__ import annotations

import torch

from methods.base import Method


class FineTune(Method):
    """Trainable: every parameter (+ head)."""

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
