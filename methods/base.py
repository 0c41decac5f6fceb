"""Method base class and registry: what every tuning method shares and how the loop sees it.

A method wraps a backbone encoder and owns the classification head and the loss, written once here:
masked mean pooling over the sentence's own tokens (the pooling the packaged sentence-embedding
backbones were trained with), dropout, one linear layer, cross-entropy. A subclass only says how it
encodes a batch (``encode``) and what it adds or freezes (``setup``); the training loop sees
``train_step`` / ``evaluate_step`` (fastNLP matches batch keys to their argument names), the parameters
that require grad, and ``trainable_state`` for epoch selection. It never asks which method it runs.

Adding a method: one file in ``methods/`` with a ``@register("name")`` subclass, and one import line in
``methods/__init__.py``. Its ``defaults`` are its hyper-parameters (lr, epochs, anything of its own),
the same for every backbone; grids may override them and every row records the values used. Its
``checks`` say what each of its own hyper-parameters accepts (the common ones are checked here);
``check_hparams`` lists every problem of a set of values, so a grid is validated before it trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

METHODS: dict[str, type[Method]] = {}

Check = Callable[[Any], "str | None"]  # None when the value is accepted, else what is accepted


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "an integer >= 1"


def positive_number(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "a finite number > 0"


def non_negative_number(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "a finite number >= 0"


def fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "a number in [0, 1)"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def one_of(*accepted: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in accepted else f"one of {', '.join(accepted)}"

    return check


# Hyper-parameters every method has, and what each accepts; a method's ``defaults`` must give them all.
COMMON_CHECKS: dict[str, Check] = {
    "lr": positive_number, "epochs": positive_int, "weight_decay": non_negative_number,
    "warmup_ratio": fraction, "head_dropout": fraction, "train_head": boolean,
}
COMMON_HPARAMS = tuple(COMMON_CHECKS)


def register(name: str):
    """Class decorator adding a method to ``METHODS``; a second method with the same name is refused,
    and so is one whose defaults miss a common hyper-parameter, have one without a check, or fail
    their own checks."""

    def add(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method '{name}' is already registered by {METHODS[name].__qualname__}")
        missing = [k for k in COMMON_HPARAMS if k not in cls.defaults]
        if missing:
            raise ValueError(f"method '{name}' defaults lack {missing}")
        unchecked = [k for k in cls.defaults if k not in COMMON_CHECKS and k not in cls.checks]
        if unchecked:
            raise ValueError(f"method '{name}' has no check for hyper-parameters {unchecked}")
        cls.name = name
        problems = cls.check_hparams(cls.defaults)
        if problems:
            raise ValueError(f"method '{name}' defaults are invalid: {'; '.join(problems)}")
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
    checks: ClassVar[dict[str, Check]] = {}  # what each of the method's own hyper-parameters accepts
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

    @classmethod
    def check_hparams(cls, values: dict[str, Any], where: str | None = None) -> list[str]:
        """Every problem with ``values`` (unknown names, wrong types, out of range), each starting with
        ``where`` (default: the method's name) and saying what is accepted; empty when all are valid."""
        where = where or cls.name
        problems = []
        unknown = sorted(set(values) - set(cls.defaults))
        if unknown:
            problems.append(f"{where}: no setting {unknown}; accepted: {', '.join(sorted(cls.defaults))}")
        checks = {**COMMON_CHECKS, **cls.checks}
        for key in sorted(set(values) & set(cls.defaults)):
            accepted = checks[key](values[key])
            if accepted:
                problems.append(f"{where}.{key}={values[key]!r}: must be {accepted}")
        return problems

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
