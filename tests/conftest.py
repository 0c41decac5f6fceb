"""Fixtures shared by several test files: a small loadable model folder, and the class a crafted file
pickles to run code when loaded (the tests check that nothing the harness reads ever runs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


class RunsCode:
    """Unpickling this runs a shell command that creates ``marker``: what a crafted file holds."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def runs_code() -> type[RunsCode]:
    return RunsCode


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """A small loadable save_pretrained folder (random BERT 1 x 16, the random backbones' tokenizer)."""
    from transformers import BertConfig, BertModel

    from bench.backbones import random_init

    folder = tmp_path_factory.mktemp("tiny") / "model"
    tokenizer = random_init._random_vocab_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
