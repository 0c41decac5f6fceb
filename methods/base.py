"""Method base class: what every tuning method shares and how the loop sees it.

A method wraps a backbone encoder and owns the classification head and the loss, written once here:
masked mean pooling over the sentence's own tokens (the pooling the packaged sentence-embedding
backbones were trained with), dropout, one linear layer, cross-entropy. A subclass only says how it
encodes a batch (``encode``) and what it adds or freezes (``setup``), reading its typed settings from
``self.settings`` (the shared training settings are ``self.train_settings``); the training loop sees
``train_step`` / ``evaluate_step`` (fastNLP matches batch keys to their argument names), the parameters
that require grad, and ``trainable_state`` for epoch selection. It never asks which method it runs.
Methods are declared in ``methods/catalog.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from methods.settings import Settings, TrainingSettings


def hidden_size(backbone: nn.Module) -> int:
    config = backbone.config
    return getattr(config, "hidden_size", None) or config.dim


def num_layers(backbone: nn.Module) -> int:
    config = backbone.config
    return getattr(config, "num_hidden_layers", None) or config.n_layers


class ClassifierHead(nn.Module):
    """Masked mean pooling -> dropout -> linear. Shared by every method."""

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
        pooled = (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))


class Method(nn.Module):
    """Base class: backbone + method-specific parameters + shared head and loss."""

    def __init__(self, backbone: nn.Module, num_labels: int, settings: Settings, training: TrainingSettings):
        super().__init__()
        self.settings, self.train_settings = settings, training  # nn.Module owns .training
        self.backbone = backbone
        self.head = ClassifierHead(hidden_size(backbone), num_labels, training.head_dropout)
        self.setup()
        if not training.train_head:
            self.head.requires_grad_(False)

    # --- what a method provides -------------------------------------------------------------
    def setup(self) -> None:
        """Add the method's parameters and freeze what it does not train."""

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, tokens, hidden)`` aligned with ``input_ids``."""
        raise NotImplementedError

    # --- shared by all methods ---------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(input_ids, attention_mask), attention_mask)

    def train_step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   target: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self(input_ids, attention_mask)
        return {"loss": nn.functional.cross_entropy(logits, target)}

    def evaluate_step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      target: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            pred = self(input_ids, attention_mask).argmax(-1)
        return {"pred": pred, "target": target}

    def extra_input_tokens(self) -> int:
        """Positions the method adds to every sequence (counted in FLOP estimates)."""
        return 0

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """A detached copy of every trainable tensor (what epoch selection keeps)."""
        return {k: v.detach().clone() for k, v in self.named_parameters() if v.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.named_parameters())
        with torch.no_grad():
            for key, value in state.items():
                params[key].copy_(value)

    def parameter_counts(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.trainable_parameters())
        head = sum(p.numel() for p in self.head.parameters() if p.requires_grad)
        return {"total_params": total, "trainable_params": trainable,
                "trainable_params_excl_head": trainable - head}
