"""Every method the harness knows, declared as data: its settings and its training defaults.

Adding a method: its implementation in its own file in ``methods/`` (a ``methods.base.Method``
subclass), then one ``declare`` here naming it. Settings are typed (``methods.settings``); every field
needs a check and a one-line help, shown by ``python -m bench list``.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.registry import MethodEntry, declare
from methods.settings import Settings, boolean, one_of, positive_int, positive_number, setting


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


FROZEN_BACKBONE = {"lr": 1e-2, "epochs": 10, "weight_decay": 0.0}  # what prompt-style methods train well with

declare(MethodEntry("finetune", "methods.finetune:FineTune", "all parameters train"))
declare(MethodEntry("prompt", "methods.prompt:PromptTuning", "P input vectors before the tokens, backbone frozen",
                    PromptSettings, FROZEN_BACKBONE))
declare(MethodEntry("prefix", "methods.prefix:PrefixTuning", "P key/value vectors in every layer, backbone frozen",
                    PrefixSettings, FROZEN_BACKBONE))
