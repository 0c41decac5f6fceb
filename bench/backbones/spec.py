"""What a backbone is (``BackboneSpec``), what loading one gives (``LoadedBackbone``), the one error
kind, and the cache folder converted backbones live in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model is built, so listing and checking names stay fast
    from torch import nn



class BackboneError(RuntimeError):
    """A backbone cannot be had here; the message says why and how to fix it."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    kind: str  # package | hub | random | local
    description: str
    family: str  # bert | mpnet | distilbert
    approx_params: int  # used to order tables and grids by size
    sentence_embedding: bool = False  # a sentence-embedding fine-tune, not a raw MLM checkpoint
    hub_id: str | None = None
    random_config: dict = field(default_factory=dict)


@dataclass
class LoadedBackbone:
    spec: BackboneSpec
    model: nn.Module  # the encoder, no pooler
    tokenizer: object
    source: str  # where the weights came from (a directory or "random")


def cache_dir() -> Path:
    """Where converted backbones and generated files live (override with BENCH_CACHE)."""
    root = os.environ.get("BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bert-tuning-bench"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
