"""Method base class: what every tuning method shares and how the loop sees it.

A method wraps a backbone encoder and owns the classification head and the loss, written once here:
masked mean pooling over the sentence's own tokens (the pooling the packaged sentence-embedding
backbones were trained with), dropout, one linear layer, cross-entropy. A subclass only says how it
encodes a batch (``encode``) and what it adds or freezes (``setup``), reading its typed settings from
``self.settings`` (the shared training settings are ``self.train_settings``); the training loop sees
``train_step`` / ``evaluate_step`` (fastNLP matches batch keys to their argument names), the parameters
that require grad, and ``trainable_state`` for epoch selection. It never asks which method it runs.
Each method is declared in its folder, ``methods/<name>/__init__.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from methods.families import hidden_size
from methods.settings import Settings, TrainingSettings


class MethodRefused(RuntimeError):
    """The method cannot work on this backbone, or its trainable parameters do not change the logits:
    the run is recorded as failed with this message instead of training something that does nothing."""


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

    def trains(self, name: str) -> bool:
        """Whether the parameter called ``name`` (outside ``head.``) is one this method trains: the
        method's declaration of what trains, which the tests hold ``setup``'s freezing to."""
        raise NotImplementedError

    def expected_trainable(self) -> int:
        """The closed-form number of trainable parameters outside the head, from the backbone's config."""
        raise NotImplementedError

    def train_flops_per_token(self) -> float:
        """Training FLOPs per processed token (extra positions included), as the method's docstring
        states; usually ``shared_flops_per_token`` with what the method trains."""
        raise NotImplementedError

    # --- shared by all methods ---------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.train_settings.precision == "fp32":
            return self.head(self.encode(input_ids, attention_mask), attention_mask)
        # bf16: matmuls autocast to bfloat16, weights, optimizer state and the loss stay fp32
        with torch.autocast(input_ids.device.type, dtype=torch.bfloat16):
            logits = self.head(self.encode(input_ids, attention_mask), attention_mask)
        return logits.float()

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

    def matmul_params(self) -> int:
        """N: weights of every Linear the forward pass runs per token (backbone, adapters, head)."""
        return sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))

    def head_matmul_params(self) -> int:
        return self.head.classifier.weight.numel() if self.head.classifier.weight.requires_grad else 0

    def shared_flops_per_token(self, trained_matmul: int) -> float:
        """``4 N + 2 T``: a forward pass costs 2 N per token, the backward pass 2 N for the activation
        gradients (every method here needs them down to the first layer) plus 2 T for the gradients of the
        ``trained_matmul`` (T) Linear weights that train. Element-wise parameters (biases, scales) and
        attention-score matmuls are left out (short sequences)."""
        return 4.0 * self.matmul_params() + 2.0 * trained_matmul

    def ineffective(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> str | None:
        """None when the method's own trainable parameters (not the head) change the logits of this
        batch; else what is wrong. Each is nudged by noise from a private generator and restored bit for
        bit, so the global RNG, the parameters and the model's mode are as they were."""
        own = [(n, p) for n, p in self.named_parameters() if p.requires_grad and not n.startswith("head.")]
        if not own:
            return "the method trains no parameter outside the head"
        was_training = self.training
        generator = torch.Generator().manual_seed(0)
        self.eval()
        try:
            with torch.no_grad():
                before = self(input_ids, attention_mask)
                saved = [p.detach().clone() for _, p in own]
                for _, p in own:
                    noise = torch.randn(p.shape, generator=generator).to(p.device, p.dtype)
                    p.add_(noise * (0.1 * float(p.float().std()) if p.numel() > 1 else 0.0) + 0.1)
                after = self(input_ids, attention_mask)
                for (_, p), value in zip(own, saved, strict=True):
                    p.copy_(value)
        finally:
            self.train(was_training)
        if torch.equal(before, after):
            return (f"changing its {len(own)} trainable tensor(s) ({own[0][0]}, ...) leaves the logits unchanged: "
                    "the method has no effect on this backbone")
        return None

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
