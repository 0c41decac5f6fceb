"""BitFit (Ben Zaken et al., 2022): only the backbone's bias terms and the head train.

Trainable: every ``*.bias`` of the backbone, in closed form ``H + L (7 H + I)`` for BERT, MPNet and
DistilBERT (embedding LayerNorm; per layer the q, k, v and output projections, two LayerNorms, and the
two feed-forward layers of widths I and H) (+ head). Training FLOPs per token: ``4 N + 2 N_head``:
the bias gradients need the activation gradients of every layer but no weight gradients.
"""

from __future__ import annotations

import torch

from methods.base import Method
from methods.families import hidden_size, inner_size, num_layers


class BitFit(Method):
    def setup(self) -> None:
        for name, param in self.backbone.named_parameters():
            param.requires_grad_(name.endswith(".bias"))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def trains(self, name: str) -> bool:
        return name.startswith("backbone.") and name.endswith(".bias")

    def expected_trainable(self) -> int:
        hidden, layers = hidden_size(self.backbone), num_layers(self.backbone)
        return hidden + layers * (7 * hidden + inner_size(self.backbone))

    def train_flops_per_token(self) -> float:
        return self.shared_flops_per_token(self.head_matmul_params())
