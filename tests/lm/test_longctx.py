"""The long-context cost model's formulas (snc/lm/longctx.py) against the multiply-accumulates
counted (torch's FlopCounterMode) in a small decoder written out here with one block of each
mixer: causal softmax attention, sliding-window attention and gated linear attention, with
grouped key/value heads and SwiGLU MLPs."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from snc.lm import longctx
from snc.lm.longctx import LMConfig

CFG = LMConfig("tiny", layers=3, hidden=32, mlp=48, heads=4, kv_heads=2, vocab=50,
               mixers=("softmax", "swa", "linear"), window=5)


class Block(nn.Module):
    def __init__(self, cfg: LMConfig, mixer: str) -> None:
        super().__init__()
        d, h, hkv, dh = cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim
        self.cfg, self.mixer = cfg, mixer
        self.q, self.k, self.v = nn.Linear(d, h * dh, bias=False), nn.Linear(d, hkv * dh, bias=False), nn.Linear(d, hkv * dh, bias=False)
        self.o = nn.Linear(h * dh, d, bias=False)
        self.g = nn.Linear(d, h * dh, bias=False) if mixer == "linear" else None
        self.gate, self.up, self.down = nn.Linear(d, cfg.mlp, bias=False), nn.Linear(d, cfg.mlp, bias=False), nn.Linear(cfg.mlp, d, bias=False)

    def forward(self, x):  # x (n, d): one sequence, token by token where it matters (causal, no masked work)
        cfg, n = self.cfg, x.shape[0]
        h, dh, rep = cfg.heads, cfg.head_dim, cfg.heads // cfg.kv_heads
        q = self.q(x).view(n, h, dh)
        k = self.k(x).view(n, cfg.kv_heads, dh).repeat_interleave(rep, dim=1)
        v = self.v(x).view(n, cfg.kv_heads, dh).repeat_interleave(rep, dim=1)
        out = []
        if self.mixer == "linear":
            gate = torch.sigmoid(self.g(x)).view(n, h, dh)
            state = torch.zeros(h, dh, dh)
            for i in range(n):
                state = gate[i].unsqueeze(-1) * state + k[i].unsqueeze(-1) @ v[i].unsqueeze(1)
                out.append((q[i].unsqueeze(1) @ state)[:, 0])
        else:
            for i in range(n):
                lo = 0 if self.mixer == "softmax" else max(0, i + 1 - cfg.window)
                kk, vv = k[lo:i + 1].transpose(0, 1), v[lo:i + 1].transpose(0, 1)  # (h, m, dh)
                att = torch.softmax(q[i].unsqueeze(1) @ kk.transpose(1, 2) / math.sqrt(dh), dim=-1)
                out.append((att @ vv)[:, 0])
        x = x + self.o(torch.stack(out).reshape(n, h * dh))
        return x + self.down(nn.functional.silu(self.gate(x)) * self.up(x))


class Decoder(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg, m) for m in cfg.mixers)
        self.head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x[-1:])  # the first generated token's logits


def _counted_macs(model, n: int) -> int:
    x = torch.randn(n, CFG.hidden)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("n", [1, 4, 5, 12])
def test_prefill_macs_equal_the_counted_ones(n):
    model = Decoder(CFG)
    assert _counted_macs(model, n) == longctx.cost(CFG, n).prefill_macs


def test_decode_step_is_the_next_tokens_share():
    model = Decoder(CFG)
    n = 9
    grown = _counted_macs(model, n) - _counted_macs(model, n - 1)  # the n-th token (the head counted once each)
    assert grown == longctx.cost(CFG, n).decode_macs - CFG.hidden * CFG.vocab


def test_state_and_the_shape_of_the_result():
    # state values by hand: softmax 2 n h_kv d_h, swa 2 min(n, W) h_kv d_h, linear h d_h^2
    n = 12
    assert longctx.cost(CFG, n).state_bytes == 2 * (2 * n * 2 * 8 + 2 * 5 * 2 * 8 + 4 * 8 * 8)
    rows = longctx.compare(longctx.PRESETS["spikingbrain-7b"])
    speedups = [r["ttft_speedup"] for r in rows]
    assert speedups == sorted(speedups) and speedups[0] < 1.1 < 10 < speedups[-1]  # grows with length
    at_1m = next(r for r in rows if r["tokens"] == 1024**2)
    assert 10 < at_1m["ttft_speedup"] < 30  # the report measured 26.5x (32 H100s); compute alone gives less
    assert all(r["state_gib"] == rows[2]["state_gib"] for r in rows[2:])  # bounded once the window is full
