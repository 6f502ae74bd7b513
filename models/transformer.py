"""The configurable transformer: input adapter -> position -> memory(blocks) -> final norm -> output head.

Modality lives only at the edges: the input adapter embeds tokens or projects continuous vectors (image patches,
audio frames), and the head reads out per token or pooled over the sequence. The trunk never knows which
modality it serves.
"""

from __future__ import annotations

import torch
from torch import nn

from models.components import ATTENTION, FFN, INIT, MEMORY, NORM, PLACEMENT, POSITION, RESIDUAL
from models.config import ModelConfig
from models.errors import ConfigError
from models.short_conv import ShortConv

HEADS = ("token", "mean", "cls")


class Block(nn.Module):
    """One layer: an attention branch then a feed-forward branch, each wrapped by its norm placement and
    joined to the stream by its residual mode.

    `attn` and `ffn` are the branches (hook them to read branch outputs; either is None when its variant is
    `none`, which removes that sublayer); `attn_place`/`ffn_place` own the norms; `attn_residual` and
    `ffn_residual` own any residual gates; `short_conv` (None unless `model.short_conv > 0`) convolves the
    attention branch's input before the attention reads it (see `models/short_conv.py`).
    """

    def __init__(self, cfg: ModelConfig, layer_index: int, causal: bool):
        super().__init__()
        make_norm = lambda: NORM.get(cfg.norm)(cfg.d_model)  # noqa: E731
        placement = PLACEMENT.get(cfg.norm_placement)
        attn_residual, ffn_residual = cfg.residuals
        self.attn = self.attn_place = self.attn_residual = self.short_conv = None
        self.ffn = self.ffn_place = self.ffn_residual = None
        attention = ATTENTION.get(cfg.attention)
        if not getattr(attention, "skip", False):
            self.attn = attention(cfg, causal)
            self.attn_place = placement(make_norm)
            self.attn_residual = RESIDUAL.get(attn_residual)(cfg, layer_index)
            if cfg.short_conv:
                self.short_conv = ShortConv(cfg.d_model, cfg.short_conv)
        ffn = FFN.get(cfg.ffn)
        if not getattr(ffn, "skip", False):
            self.ffn = ffn(cfg)
            self.ffn_place = placement(make_norm)
            self.ffn_residual = RESIDUAL.get(ffn_residual)(cfg, layer_index)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, position, prefix=None) -> torch.Tensor:
        if self.attn is not None:
            conv = self.short_conv if self.short_conv is not None else (lambda h: h)
            x = self.attn_place(x, lambda h: self.dropout(self.attn(conv(h), position, prefix)), self.attn_residual)
        if self.ffn is not None:
            x = self.ffn_place(x, self.ffn, self.ffn_residual)
        return x

    def branches(self) -> list[nn.Module]:
        return [b for b in (self.attn, self.ffn) if b is not None]


class Transformer(nn.Module):
    """See `build_model` for the keywords."""

    def __init__(self, cfg: ModelConfig, *, vocab_size: int | None = None, input_dim: int | None = None,
                 out_dim: int | None = None, causal: bool = True, head: str = "token", max_len: int = 1024):
        super().__init__()
        if (vocab_size is None) == (input_dim is None):
            raise ConfigError("build_model needs exactly one of vocab_size (token input) or input_dim "
                              "(continuous input)")
        if head not in HEADS:
            raise ConfigError(f"unknown head '{head}'; valid: {', '.join(HEADS)}")
        out_dim = out_dim if out_dim is not None else vocab_size
        if out_dim is None:
            raise ConfigError("build_model needs out_dim when the input is continuous")
        self.cfg, self.causal, self.head_kind = cfg, causal, head
        self.embed = nn.Embedding(vocab_size, cfg.d_model) if vocab_size else nn.Linear(input_dim, cfg.d_model)
        # A class token (Devlin et al., 2019, https://arxiv.org/abs/1810.04805) is appended last, so that a
        # causal model can read the whole sequence from it; it gets a position like any token.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model)) if head == "cls" else None
        self.position = POSITION.get(cfg.position)(cfg, max_len + (head == "cls"))
        self.embed_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i, causal) for i in range(cfg.n_layers))
        self.memory = MEMORY.get(cfg.memory)(cfg)
        wants_final = cfg.final_norm and getattr(PLACEMENT.get(cfg.norm_placement), "wants_final_norm", False)
        self.final_norm = NORM.get(cfg.norm)(cfg.d_model) if wants_final else nn.Identity()
        self.head = nn.Linear(cfg.d_model, out_dim, bias=False)
        INIT.get(cfg.init)(self, cfg)  # model.init: how the weights are drawn (models/init/)
        if cfg.zero_init_branches:
            # Every branch starts as the zero function, so at step 0 the trunk is the identity map of the
            # embedding (as in ReZero / Fixup / T-Fixup: https://arxiv.org/abs/2003.04887).
            for block in self.blocks:
                for branch in block.branches():
                    nn.init.zeros_(branch.out_proj.weight)
                    if branch.out_proj.bias is not None:
                        nn.init.zeros_(branch.out_proj.bias)
        if cfg.tie_head:
            if not isinstance(self.embed, nn.Embedding) or head != "token" or out_dim != vocab_size:
                raise ConfigError("model.tie_head=true needs token input and a per-token head over the same "
                                  "vocabulary")
            self.head.weight = self.embed.weight  # Press & Wolf, 2017, https://arxiv.org/abs/1608.05859

    def run_blocks(self, h: torch.Tensor, prefix_fn=None) -> torch.Tensor:
        """Every block in order; `prefix_fn(i, block, h_in)` may give layer i extra memory keys/values."""
        for i, block in enumerate(self.blocks):
            h = block(h, self.position, prefix_fn(i, block, h) if prefix_fn is not None else None)
        return h

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """tokens (batch, time) or vectors (batch, time, input_dim) -> logits (batch, time, out) or (batch, out)."""
        h = self.embed(inputs)
        if self.cls_token is not None:
            h = torch.cat([h, self.cls_token.expand(h.shape[0], -1, -1)], dim=1)
        h = self.embed_dropout(self.position.embed(h))
        h = self.final_norm(self.memory(h, self.run_blocks))
        if self.head_kind == "mean":
            h = h.mean(dim=1)
        elif self.head_kind == "cls":
            h = h[:, -1]
        return self.head(h)


def build_model(cfg: ModelConfig, *, vocab_size: int | None = None, input_dim: int | None = None,
                out_dim: int | None = None, causal: bool = True, head: str = "token",
                max_len: int = 1024) -> Transformer:
    """Build the transformer described by `cfg`.

    - `vocab_size=V`: token input; `forward(tokens)` with tokens (batch, time) of ids in [0, V).
    - `input_dim=F`: continuous input (patches, frames, tubelets); `forward(x)` with x (batch, time, F).
    - `out_dim`: output classes (defaults to `vocab_size`).
    - `causal`: whether position t may only read positions <= t.
    - `head`: `token` gives logits (batch, time, out_dim); `mean` pools over time and `cls` reads a class token
      appended after the sequence, each giving (batch, out_dim).
    - `max_len`: the longest input sequence (learned positions must cover it).
    The blocks are `model.blocks`, a list of `Block`s, for hooks.
    """
    return Transformer(cfg, vocab_size=vocab_size, input_dim=input_dim, out_dim=out_dim, causal=causal,
                       head=head, max_len=max_len)
