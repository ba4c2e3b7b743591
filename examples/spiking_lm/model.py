"""A small byte-level hybrid language model of SpikingBrain's family, trainable on a CPU.

Blocks alternate, as in SpikingBrain-7B, between gated linear attention (even blocks; a per-head
scalar gate g_t in (0, 1): S_t = g_t S_{t-1} + k_t^T v_t, o_t = q_t S_t) and causal sliding-window
softmax attention (odd blocks); each block is pre-RMSNorm token mixer + pre-RMSNorm SwiGLU MLP
with residual adds, and the LM head is tied to the byte embedding. Every static-weight
projection (q, k, v, o, the gate's g, and the MLP's gate, up, down) is an ``nn.Linear`` so that
spike coding applies to its input (``coded``).

Text: the Python standard library's own source files (they ship with Python, so nothing is
downloaded), read as bytes in a fixed order; the last 10 % are held back.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from snc.lm.ops import causal_attention, gated_linear_attention


@dataclass(frozen=True)
class Config:
    vocab: int = 256
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    mlp: int = 256
    window: int = 32
    context: int = 64

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def mixers(self) -> tuple[str, ...]:
        return tuple("swa" if i % 2 else "linear" for i in range(self.layers))

    def as_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class Mixer(nn.Module):
    def __init__(self, cfg: Config, kind: str) -> None:
        super().__init__()
        d, h = cfg.hidden, cfg.heads
        self.cfg, self.kind = cfg, kind
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.g = nn.Linear(d, h, bias=True) if kind == "linear" else None  # per-head gate logits

    def forward(self, x):
        # snc's attention operators (snc.lm.ops): one node each when traced by torch.export
        h = self.cfg.heads
        if self.kind == "swa":
            out = causal_attention(self.q(x), self.k(x), self.v(x), h, self.cfg.window)
        else:
            out = gated_linear_attention(self.q(x), self.k(x), self.v(x), self.g(x), h)
        return self.o(out)


class Block(nn.Module):
    def __init__(self, cfg: Config, kind: str) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(cfg.hidden), RMSNorm(cfg.hidden)
        self.mixer = Mixer(cfg, kind)
        self.gate = nn.Linear(cfg.hidden, cfg.mlp, bias=False)
        self.up = nn.Linear(cfg.hidden, cfg.mlp, bias=False)
        self.down = nn.Linear(cfg.mlp, cfg.hidden, bias=False)

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        y = self.norm2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class ByteLM(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.hidden)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg, kind) for kind in cfg.mixers())
        self.norm = RMSNorm(cfg.hidden)

    def forward(self, tokens):  # (b, n) int64 -> (b, n, vocab) logits
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.embed.weight.T  # tied LM head

    def projections(self) -> dict[str, nn.Linear]:
        """Every static-weight projection whose input is spike-coded (not the tied head)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, nn.Linear)}


def stdlib_bytes(limit: int) -> bytes:
    """The first ``limit`` bytes of the standard library's .py files in sorted path order."""
    root = Path(os.__file__).resolve().parent
    out = bytearray()
    for path in sorted(root.glob("*.py")):
        out += path.read_bytes()
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def split(data: bytes, held_back: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    arr = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    cut = int(len(arr) * (1 - held_back))
    return arr[:cut], arr[cut:]


def windows(arr: np.ndarray, context: int, count: int | None = None, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, next tokens), both (N, context) int64: random windows (rng) or consecutive ones."""
    if rng is not None:
        starts = rng.integers(0, len(arr) - context - 1, count)
    else:
        starts = np.arange(0, len(arr) - context - 1, context)[:count]
    idx = starts[:, None] + np.arange(context)[None, :]
    return arr[idx], arr[idx + 1]


def train(cfg: Config, text: np.ndarray, *, steps: int, batch: int = 32, lr: float = 3e-3, seed: int = 0,
          progress=None) -> ByteLM:
    torch.manual_seed(seed)
    model = ByteLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)  # linear warm-up, then cosine decay to 10 %
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (i + 1) / warm if i < warm else 0.1 + 0.45 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm))))
    rng = np.random.default_rng(seed)
    model.train()
    for step in range(steps):
        x, y = windows(text, cfg.context, batch, rng)
        logits = model(torch.from_numpy(x))
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), torch.from_numpy(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress is not None:
            progress(step + 1, steps, float(loss.detach()))
    model.eval()
    return model
