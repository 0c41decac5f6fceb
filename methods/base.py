"""Method base class and registry: what every tuning method shares and how the loop sees it.

A method wraps a backbone encoder and owns the classification head and the loss, written once here:
masked mean pooling over the sentence's own tokens (the pooling the packaged sentence-embedding
backbones were trained with), dropout, one linear layer, cross-entropy. A subclass only says how it
encodes a batch (``encode``) and what it adds or freezes (``setup``); the training loop sees
``train_step`` / ``evaluate_step`` (fastNLP matches batch keys to their argument names), the parameters
that require grad, and ``trainable_state`` for epoch selection. It never asks which method it runs.

Adding a method: one file in ``methods/`` with a ``@register("name")`` subclass, and one import line in
``methods/__init__.py``. Its ``defaults`` are its hyper-parameters (lr, epochs, anything of its own),
the same for every backbone; grids may override them and every row records the values used.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

METHODS: dict[str, type[Method]] = {}

# Hyper-parameters every method has; a method's ``defaults`` must give them all.
COMMON_HPARAMS = ("lr", "epochs", "weight_decay", "warmup_ratio", "head_dropout", "train_head")


def register(name: str):
    """Class decorator adding a method to ``METHODS``; a second method with the same name is refused."""

    def add(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method '{name}' is already registered by {METHODS[name].__qualname__}")
        missing = [k for k in COMMON_HPARAMS if k not in cls.defaults]
        if missing:
            raise ValueError(f"method '{name}' defaults lack {missing}")
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


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

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    description: ClassVar[str] = ""

    def __init__(self, backbone: nn.Module, num_labels: int, hparams: dict[str, Any] | None = None):
        super().__init__()
        self.hparams = self.resolve_hparams(hparams or {})
        self.backbone = backbone
        self.head = ClassifierHead(hidden_size(backbone), num_labels, self.hparams["head_dropout"])
        self.setup()
        if not self.hparams["train_head"]:
            self.head.requires_grad_(False)

    @classmethod
    def resolve_hparams(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """Defaults updated by ``overrides``; an unknown key is an error naming the accepted ones."""
        unknown = sorted(set(overrides) - set(cls.defaults))
        if unknown:
            raise ValueError(f"method '{cls.name}' has no hyper-parameter {unknown}; "
                             f"accepted: {', '.join(sorted(cls.defaults))}")
        return {**cls.defaults, **overrides}

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
