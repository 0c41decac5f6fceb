"""Input prompt tuning (the fastNLP SST-2 tutorial's method; Lester et al. style).

``prompt_len`` trainable vectors are concatenated in front of the token embeddings and the attention
mask is extended to cover them; the backbone is frozen. The head trains unless ``train_head=False``,
which reproduces the tutorial exactly (its head stays frozen at random init).

``init``: ``vocab`` starts each vector as a randomly chosen row of the word-embedding table (on the
embedding scale, which trains faster); ``normal`` is ``nn.Embedding``'s N(0, 1), the tutorial's choice.
Trainable: ``prompt_len x hidden`` (+ head). Training FLOPs per token: ``4 N + 2 N_head`` over the
sentence's tokens plus the ``prompt_len`` prompt positions (the gradient reaches the input, so every
layer's activation gradients are computed; only the head's weights get weight gradients).
"""

from __future__ import annotations

import torch
from torch import nn

from methods.base import Method
from methods.families import hidden_size


class PromptTuning(Method):
    """Settings: ``methods.prompt.PromptSettings``."""

    def setup(self) -> None:
        self.backbone.requires_grad_(False)
        length, hidden = self.settings.prompt_len, hidden_size(self.backbone)
        embeddings = self.backbone.get_input_embeddings().weight
        if self.settings.init == "vocab":
            rows = torch.randint(0, embeddings.shape[0], (length,))
            start = embeddings.detach()[rows].clone()
        elif self.settings.init == "normal":
            start = torch.randn(length, hidden)
        else:
            raise ValueError(f"prompt init '{self.settings.init}' unknown; accepted: vocab, normal")
        self.prompt = nn.Parameter(start)

    def extra_input_tokens(self) -> int:
        return self.prompt.shape[0]

    def trains(self, name: str) -> bool:
        return name == "prompt"

    def expected_trainable(self) -> int:
        return self.settings.prompt_len * hidden_size(self.backbone)

    def train_flops_per_token(self) -> float:
        return self.shared_flops_per_token(self.head_matmul_params())

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape[0], self.prompt.shape[0]
        tokens = self.backbone.get_input_embeddings()(input_ids)
        embeds = torch.cat([self.prompt.unsqueeze(0).expand(batch, -1, -1).to(tokens.dtype), tokens], 1)
        mask = torch.cat([attention_mask.new_ones(batch, length), attention_mask], 1)
        hidden = self.backbone(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return hidden[:, length:]
