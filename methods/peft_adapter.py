"""Methods from Hugging Face PEFT under our loop, our head and our loss.

``PeftAdapter`` turns a PEFT configuration into a method: the settings class of each PEFT-backed method
(a ``methods.settings.PeftSettings`` in ``methods/<name>/__init__.py``) builds its PEFT config for the
backbone's family (target modules come from ``methods/families.py``), ``get_peft_model`` wraps the
freshly loaded backbone and freezes it, and the shared head pools the adapted hidden states. Any PEFT
method whose training needs nothing beyond forward and backward fits: LoRA and IA3 change the backbone's
Linear layers in place; prompt learning (prompt tuning, prefix tuning) adds virtual tokens in PEFT's own
forward, so encoding always goes through the PeftModel and the virtual positions PEFT prepends to the
output are dropped.

What trains is what PEFT marks trainable: the adapter weights (``lora_``, ``ia3_``) or the prompt
encoder. Closed-form counts and FLOP formulas come from the settings class (``expected_trainable``,
``trained_matmul``): LoRA ``r x (in + out)`` per targeted Linear, trained Linear weights ``T`` = those
adapters, so ``4 N + 2 T`` with N counting the adapters' Linears too (``4 N + 6 N_lora`` over the
backbone alone); IA3 ``4 N + 2 N_head`` (its scales are element-wise); PEFT prompt tuning as ours.
Tested with peft 0.21.2 and transformers 5.24.
"""

from __future__ import annotations

import warnings

import torch

from methods.base import Method
from methods.families import family_of

# transformers 5.24 warns about PEFT 0.21's use of two APIs it will rename; nothing for a user to act on
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
warnings.filterwarnings("ignore", message=r".*past_key_values.*is deprecated.*", category=FutureWarning)


class PeftAdapter(Method):
    def setup(self) -> None:
        from peft import get_peft_model

        config = self.settings.peft_config(self.backbone, family_of(self.backbone))
        # get_peft_model injects into (and freezes) self.backbone in place; the PeftModel is kept beside it
        self.adapter = get_peft_model(self.backbone, config)
        self.prompt_learning = config.is_prompt_learning
        self.virtual_tokens = config.num_virtual_tokens if self.prompt_learning else 0
        self.marker = "prompt_encoder" if self.prompt_learning else self.adapter.base_model.prefix

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.adapter(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden[:, hidden.shape[1] - input_ids.shape[1]:]  # prompt tuning prepends its positions

    def extra_input_tokens(self) -> int:
        return self.virtual_tokens if self.settings.adds_positions else 0

    def trains(self, name: str) -> bool:
        return self.marker in name

    def expected_trainable(self) -> int:
        return self.settings.expected_trainable(self.backbone, family_of(self.backbone))

    def train_flops_per_token(self) -> float:
        adapters = sum(m.weight.numel() for n, m in self.named_modules()
                       if isinstance(m, torch.nn.Linear) and self.marker in n and m.weight.requires_grad)
        return self.shared_flops_per_token(adapters + self.head_matmul_params())
