"""A Hugging Face Hub id, for users who have the Hub or its local cache: offline (the default) a miss
fails within seconds with a one-line fix instead of hanging on retries."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model is built, so listing and checking names stay fast
    from torch import nn

from bench.backbones.spec import BackboneError, BackboneSpec


def hub_online() -> bool:
    """The Hub is used only when BENCH_ONLINE=1; otherwise every lookup stays local and fails fast."""
    return os.environ.get("BENCH_ONLINE") == "1"


def _load_hub(spec: BackboneSpec) -> tuple[nn.Module, object]:
    from transformers import AutoModel, AutoTokenizer

    kwargs = {"add_pooling_layer": False} if spec.family in ("bert", "mpnet") else {}
    local_only = not hub_online()
    try:
        model = AutoModel.from_pretrained(spec.hub_id, local_files_only=local_only, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(spec.hub_id, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        how = ("it is not in the local Hugging Face cache and the Hub is not used offline; fix: set "
               "BENCH_ONLINE=1 where the Hub is reachable, or pass a local directory holding the model"
               if local_only else f"the Hub lookup failed ({type(exc).__name__}); fix: check the network "
               "or pass a local directory holding the model")
        raise BackboneError(f"backbone '{spec.name}' ({spec.hub_id}) cannot be loaded: {how}") from None
    return model, tokenizer
