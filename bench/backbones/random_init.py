"""Randomly initialised backbones for tests and throughput work: a small WordPiece tokenizer and a BERT
or MPNet config of the registered size (their accuracy means nothing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model is built, so listing and checking names stay fast
    from torch import nn

from bench.backbones.spec import BackboneSpec


def _random_vocab_tokenizer():
    """A small WordPiece tokenizer for random backbones: special tokens, letters, synthetic words."""
    from transformers import BertTokenizerFast

    from bench.tasks import SYNTHETIC_WORDS

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'-")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + letters + ["##" + c for c in letters]
    tokens += [w for w in SYNTHETIC_WORDS if w not in tokens]
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


def _build_random(spec: BackboneSpec, tokenizer) -> nn.Module:
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    common = dict(vocab_size=len(tokenizer), max_position_embeddings=256, pad_token_id=0, **spec.random_config)
    if spec.family == "mpnet":
        return MPNetModel(MPNetConfig(**common), add_pooling_layer=False)
    return BertModel(BertConfig(**common), add_pooling_layer=False)
