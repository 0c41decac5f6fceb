"""Everything the methods know about a backbone family, in one place (no torch import).

A family is a transformers ``model_type``: where its self-attention modules sit and what their
projections are called (prefix tuning wraps them), which Linear layers LoRA and IA3 target, and the
config names of its sizes. Adding a family (say RoBERTa) is one ``Family`` here.

Target names are matched by PEFT against the end of each module's dotted name, or as a full regular
expression when given as one string. BERT's ``output.dense`` would also match
``attention.output.dense``, so BERT's IA3 targets are regular expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry


@dataclass(frozen=True)
class AttentionLayout:
    parents: Callable[[Any], list[Any]]  # modules holding the self-attention, one per layer
    attr: str  # the self-attention's attribute name on its parent
    q: str
    k: str
    v: str
    out: str | None  # output projection inside the self-attention module, if any
    returns_pair: bool  # (output, weights) as BERT/DistilBERT; else (output,) as MPNet


@dataclass(frozen=True)
class Family:
    model_type: str
    attention: AttentionLayout
    lora_targets: dict[str, list[str]]  # by the lora `targets` setting: "qv" or "all"
    ia3_targets: list[str] | str  # keys, values and the second feed-forward layer (IA3 paper)
    ia3_feedforward: list[str] | str  # of those, the ones scaled on their input
    uses_past_key_values: bool  # whether its attention reads transformers' past_key_values (PEFT prefix tuning)


FAMILIES: Registry[Family] = Registry("backbone family (config model_type)")
FAMILIES.add("bert", Family(
    "bert",
    AttentionLayout(lambda m: [layer.attention for layer in m.encoder.layer], "self", "query", "key", "value",
                    None, True),
    {"qv": ["query", "value"], "all": ["query", "key", "value", "dense"]},
    r".*\.layer\.\d+\.(attention\.self\.(key|value)|output\.dense)", r".*\.layer\.\d+\.output\.dense", True))
FAMILIES.add("mpnet", Family(
    "mpnet",
    AttentionLayout(lambda m: [layer.attention for layer in m.encoder.layer], "attn", "q", "k", "v", "o", False),
    {"qv": ["q", "v"], "all": ["q", "k", "v", "o", "intermediate.dense", "output.dense"]},
    ["k", "v", "output.dense"], ["output.dense"], False))
FAMILIES.add("distilbert", Family(
    "distilbert",
    AttentionLayout(lambda m: list(m.transformer.layer), "attention", "q_lin", "k_lin", "v_lin", "out_lin", True),
    {"qv": ["q_lin", "v_lin"], "all": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"]},
    ["k_lin", "v_lin", "lin2"], ["lin2"], False))


def family_of(backbone: Any) -> Family:
    """The family of a loaded backbone; UnknownName listing the known ones."""
    return FAMILIES[backbone.config.model_type]


def hidden_size(backbone: Any) -> int:
    config = backbone.config
    return getattr(config, "hidden_size", None) or config.dim


def num_layers(backbone: Any) -> int:
    config = backbone.config
    return getattr(config, "num_hidden_layers", None) or config.n_layers


def inner_size(backbone: Any) -> int:
    """The feed-forward width."""
    config = backbone.config
    return getattr(config, "intermediate_size", None) or config.hidden_dim


def num_heads(backbone: Any) -> int:
    config = backbone.config
    return getattr(config, "num_attention_heads", None) or config.n_heads
