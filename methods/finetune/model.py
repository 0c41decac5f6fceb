"""Full fine-tuning: every backbone parameter and the head train. The reference row per backbone.

Trainable: every parameter. Training FLOPs per token: ``6 N`` (N = Linear weights of backbone and
head): 2 N forward, 2 N for activation gradients, 2 N for weight gradients.
"""

from __future__ import annotations

import torch

from methods.base import Method


class FineTune(Method):
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def trains(self, name: str) -> bool:
        return True

    def expected_trainable(self) -> int:
        return sum(p.numel() for p in self.backbone.parameters())

    def train_flops_per_token(self) -> float:
        return self.shared_flops_per_token(self.matmul_params())  # 4 N + 2 N
