"""Deep prefix tuning (P-Tuning v2): trainable key/value prefixes in every attention layer.

Each layer's self-attention gets ``prefix_len`` extra keys and values that every token can attend to;
the backbone is frozen, the head trains. Trainable: ``prefix_len x layers x 2 x hidden`` (+ head).
With ``projection=True`` the prefixes come from a reparameterisation MLP, as in the P-Tuning v2
reference code: ``Embedding(prefix_len, hidden) -> Linear(hidden, 512) -> tanh ->
Linear(512, layers x 2 x hidden)``. Training FLOPs per token: ``4 N + 2 N_head`` (activation gradients
through every layer; the MLP runs once per batch, not per token, and the attention to the prefix is
left out with the other attention-score matmuls).

The injection is the harness's own: each self-attention module is wrapped by ``PrefixAttention``, which
reuses the frozen q/k/v projections, prepends the prefix to keys and values and runs
``scaled_dot_product_attention`` with its own padding mask. It does not use transformers' cache (BERT's
changed in 5.x; MPNet has none), so it works the same on BERT, DistilBERT and MPNet. Where each
family's attention modules are and what their projections are called is in ``methods/families.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from methods.base import Method
from methods.families import AttentionLayout, family_of, hidden_size, num_heads, num_layers


class PrefixAttention(nn.Module):
    """Self-attention with prepended key/value prefixes, reusing a frozen module's projections.

    Before each backbone call the owner sets ``prefix_key`` / ``prefix_value`` ``(batch, heads, P, d)``
    and ``token_mask`` ``(batch, tokens)``; the mask the model passes in is ignored because its format
    changes between transformers versions.
    """

    def __init__(self, inner: nn.Module, layout: AttentionLayout, heads: int):
        super().__init__()
        self.inner, self.layout, self.heads = inner, layout, heads
        self.prefix_key: torch.Tensor | None = None
        self.prefix_value: torch.Tensor | None = None
        self.token_mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        inner, layout = self.inner, self.layout
        batch, tokens, hidden = hidden_states.shape
        head_dim = hidden // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, tokens, self.heads, head_dim).transpose(1, 2)

        query = split(getattr(inner, layout.q)(hidden_states))
        key = torch.cat([self.prefix_key, split(getattr(inner, layout.k)(hidden_states))], 2)
        value = torch.cat([self.prefix_value, split(getattr(inner, layout.v)(hidden_states))], 2)
        prefix_len = self.prefix_key.shape[2]
        mask = torch.zeros(batch, 1, 1, prefix_len + tokens, dtype=query.dtype, device=query.device)
        mask[:, 0, 0, prefix_len:].masked_fill_(self.token_mask == 0, torch.finfo(query.dtype).min)
        position_bias = args[1] if len(args) > 1 else kwargs.get("position_bias")
        if position_bias is not None:  # MPNet's relative bias: prefix keys get none
            mask = mask + nn.functional.pad(position_bias, (prefix_len, 0))
        dropout = inner.dropout.p if self.training else 0.0
        context = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                                             dropout_p=dropout)
        output = context.transpose(1, 2).reshape(batch, tokens, hidden)
        if layout.out is not None:
            output = getattr(inner, layout.out)(output)
        return (output, None) if layout.returns_pair else (output,)


class PrefixTuning(Method):
    """Settings: ``methods.prefix.PrefixSettings``."""

    def setup(self) -> None:
        self.backbone.requires_grad_(False)
        layout = family_of(self.backbone).attention
        self.heads = num_heads(self.backbone)
        self.layers_n, hidden = num_layers(self.backbone), hidden_size(self.backbone)
        self.wrappers: list[PrefixAttention] = []
        for parent in layout.parents(self.backbone):
            wrapper = PrefixAttention(getattr(parent, layout.attr), layout, self.heads)
            setattr(parent, layout.attr, wrapper)
            self.wrappers.append(wrapper)
        length = self.settings.prefix_len
        if self.settings.projection:
            width = self.settings.projection_hidden
            self.prefix_tokens = nn.Parameter(torch.randn(length, hidden))
            self.projection = nn.Sequential(nn.Linear(hidden, width), nn.Tanh(),
                                            nn.Linear(width, self.layers_n * 2 * hidden))
        else:
            self.prefix = nn.Parameter(torch.randn(length, self.layers_n * 2 * hidden)
                                       * self.settings.init_std)

    def trains(self, name: str) -> bool:
        return name.startswith(("prefix", "projection."))

    def expected_trainable(self) -> int:
        length, hidden, layers = self.settings.prefix_len, hidden_size(self.backbone), num_layers(self.backbone)
        if not self.settings.projection:
            return length * layers * 2 * hidden
        width = self.settings.projection_hidden
        return length * hidden + (hidden * width + width) + (width * layers * 2 * hidden + layers * 2 * hidden)

    def train_flops_per_token(self) -> float:
        return self.shared_flops_per_token(self.head_matmul_params())

    def prefix_key_values(self) -> torch.Tensor:
        """``(layers, 2, heads, P, head_dim)``: the per-layer key and value prefixes."""
        flat = self.projection(self.prefix_tokens) if self.settings.projection else self.prefix
        length, hidden = flat.shape[0], hidden_size(self.backbone)
        per_layer = flat.view(length, self.layers_n, 2, self.heads, hidden // self.heads)
        return per_layer.permute(1, 2, 3, 0, 4)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch = input_ids.shape[0]
        kv = self.prefix_key_values()
        for layer, wrapper in enumerate(self.wrappers):
            wrapper.prefix_key = kv[layer, 0].unsqueeze(0).expand(batch, -1, -1, -1)
            wrapper.prefix_value = kv[layer, 1].unsqueeze(0).expand(batch, -1, -1, -1)
            wrapper.token_mask = attention_mask
        try:
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        finally:
            for wrapper in self.wrappers:
                wrapper.prefix_key = wrapper.prefix_value = wrapper.token_mask = None
