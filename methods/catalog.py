"""Every method the harness knows, declared as data: its settings and its training defaults.

Adding a method: its implementation in its own file in ``methods/`` (a ``methods.base.Method``
subclass), then one ``declare`` here naming it. Settings are typed (``methods.settings``); every field
needs a check and a one-line help, shown by ``python -m bench list``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.families import Family, hidden_size, inner_size, num_heads, num_layers
from methods.registry import MethodEntry, declare
from methods.settings import Settings, boolean, fraction, one_of, positive_int, positive_number, setting


@dataclass(frozen=True)
class PromptSettings(Settings):
    kind = "prompt"
    prompt_len: int = setting(16, positive_int, "trainable vectors put before the tokens")
    init: str = setting("vocab", one_of("vocab", "normal"),
                        "vocab: random rows of the word-embedding table; normal: N(0, 1) (the tutorial's)")


@dataclass(frozen=True)
class PrefixSettings(Settings):
    kind = "prefix"
    prefix_len: int = setting(16, positive_int, "key/value vectors added to every attention layer")
    projection: bool = setting(False, boolean, "produce the prefixes with an MLP (P-Tuning v2's reparameterisation)")
    projection_hidden: int = setting(512, positive_int, "the MLP's hidden width (read only with projection)")
    init_std: float = setting(0.5, positive_number, "std of the prefixes' initial values (without projection)")


# --- PEFT-backed methods: each settings class builds its PEFT config (peft imported only then) -------
@dataclass(frozen=True)
class LoraSettings(Settings):
    kind = "lora"
    adds_positions = False
    r: int = setting(8, positive_int, "rank of each low-rank update")
    alpha: float = setting(16.0, positive_number, "scale: the update is multiplied by alpha / r")
    dropout: float = setting(0.1, fraction, "dropout on the LoRA branch's input")
    targets: str = setting("qv", one_of("qv", "all"),
                           "qv: query and value projections (the LoRA paper); all: every Linear of every layer")

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=family.lora_targets[self.targets], task_type="FEATURE_EXTRACTION")

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        hidden, layers, inner = hidden_size(backbone), num_layers(backbone), inner_size(backbone)
        per_layer = 2 * (hidden + hidden) if self.targets == "qv" else 4 * 2 * hidden + 2 * (hidden + inner)
        return self.r * layers * per_layer


@dataclass(frozen=True)
class IA3Settings(Settings):
    """IA3 (Liu et al., 2022): learned scales of the keys, the values and the feed-forward activations."""

    kind = "ia3"
    adds_positions = False

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import IA3Config

        return IA3Config(target_modules=family.ia3_targets, feedforward_modules=family.ia3_feedforward,
                         task_type="FEATURE_EXTRACTION")

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        return num_layers(backbone) * (2 * hidden_size(backbone) + inner_size(backbone))


@dataclass(frozen=True)
class PeftPromptSettings(Settings):
    kind = "peft-prompt"
    adds_positions = True
    prompt_len: int = setting(16, positive_int, "virtual tokens PEFT puts before the tokens")
    init: str = setting("vocab", one_of("vocab", "normal"),
                        "vocab: PEFT's SAMPLE_VOCAB (random word-embedding rows); normal: PEFT's RANDOM")

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit

        init = PromptTuningInit.SAMPLE_VOCAB if self.init == "vocab" else PromptTuningInit.RANDOM
        return PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=self.prompt_len,
                                  prompt_tuning_init=init, token_dim=hidden_size(backbone),
                                  num_attention_heads=num_heads(backbone), num_layers=num_layers(backbone))

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        return self.prompt_len * hidden_size(backbone)


@dataclass(frozen=True)
class PeftPrefixSettings(Settings):
    """PEFT's prefix tuning passes its prefixes as ``past_key_values``: BERT uses them, MPNet and
    DistilBERT ignore them (no effect: the run fails its effect check) or fail on padded batches."""

    kind = "peft-prefix"
    adds_positions = False
    prefix_len: int = setting(16, positive_int, "key/value vectors PEFT adds to every attention layer")

    def peft_config(self, backbone: Any, family: Family) -> Any:
        from peft import PrefixTuningConfig

        from methods.base import MethodRefused

        if not family.uses_past_key_values:
            raise MethodRefused(f"PEFT prefix tuning hands its prefixes to the model as past_key_values, which "
                                f"{family.model_type} attention does not read (it would train nothing, or fail on "
                                "padded batches); use prefix, the harness's own, on this backbone")

        return PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=self.prefix_len,
                                  token_dim=hidden_size(backbone), num_attention_heads=num_heads(backbone),
                                  num_layers=num_layers(backbone), prefix_projection=False)

    def expected_trainable(self, backbone: Any, family: Family) -> int:
        return self.prefix_len * num_layers(backbone) * 2 * hidden_size(backbone)


FROZEN_BACKBONE = {"lr": 1e-2, "epochs": 10, "weight_decay": 0.0}  # what prompt-style methods train well with
ADAPTER = {"lr": 1e-3, "epochs": 10, "weight_decay": 0.0}  # LoRA-style: a small update to a frozen backbone

declare(MethodEntry("finetune", "methods.finetune:FineTune", "all parameters train"))
declare(MethodEntry("prompt", "methods.prompt:PromptTuning", "P input vectors before the tokens, backbone frozen",
                    PromptSettings, FROZEN_BACKBONE))
declare(MethodEntry("prefix", "methods.prefix:PrefixTuning", "P key/value vectors in every layer, backbone frozen",
                    PrefixSettings, FROZEN_BACKBONE))
declare(MethodEntry("bitfit", "methods.bitfit:BitFit", "only the backbone's bias terms (+ head)", training=ADAPTER))
declare(MethodEntry("lora", "methods.peft_adapter:PeftAdapter", "PEFT LoRA: rank-r updates of attention Linears",
                    LoraSettings, ADAPTER))
declare(MethodEntry("ia3", "methods.peft_adapter:PeftAdapter", "PEFT IA3: learned scales of keys, values, FFN",
                    IA3Settings, {**ADAPTER, "lr": 1e-2}))
declare(MethodEntry("peft-prompt", "methods.peft_adapter:PeftAdapter", "PEFT prompt tuning (cross-check of prompt)",
                    PeftPromptSettings, FROZEN_BACKBONE))
declare(MethodEntry("peft-prefix", "methods.peft_adapter:PeftAdapter", "PEFT prefix tuning (cross-check of prefix)",
                    PeftPrefixSettings, FROZEN_BACKBONE))
