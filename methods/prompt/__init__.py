"""Input prompt tuning, declared: its settings and training defaults. Implementation:
``methods/prompt/model.py``."""

from __future__ import annotations

from dataclasses import dataclass

from methods.registry import MethodEntry, declare
from methods.settings import FROZEN_BACKBONE, Settings, one_of, positive_int, setting


@dataclass(frozen=True)
class PromptSettings(Settings):
    kind = "prompt"
    prompt_len: int = setting(16, positive_int, "trainable vectors put before the tokens")
    init: str = setting("vocab", one_of("vocab", "normal"),
                        "vocab: random rows of the word-embedding table; normal: N(0, 1) (the tutorial's)")


declare(MethodEntry("prompt", "methods.prompt.model:PromptTuning",
                    "P input vectors before the tokens, backbone frozen", PromptSettings, FROZEN_BACKBONE))
