"""Dense, batched implementations (torch) of the sequence-model node kinds (snc.ir.sequence).

Values are (N, L, features): N sequences of L tokens. The attention functions are also what
``snc.lm.ops`` registers as torch operators, so that a model written with them, the IR traced
from it and the simulator compute the same numbers with the same operations.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from snc.ir.sequence import SpikeCode


def _t(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).to(like.dtype)


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, window: int = 0) -> torch.Tensor:
    """Causal (sliding-window when ``window`` > 0) softmax attention; q, k, v (N, L, d)."""
    n, dh = q.shape[1], q.shape[2] // heads
    q, k, v = _split(q, heads), _split(k, heads), _split(v, heads)
    t = torch.arange(n, device=q.device)
    allowed = t[None, :] <= t[:, None]
    if window:
        allowed = allowed & (t[:, None] - t[None, :] < window)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    return _merge(torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v)


def gated_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate_logits: torch.Tensor,
                           heads: int) -> torch.Tensor:
    """Gated linear attention in its parallel form: o_t = sum_{s <= t} (prod_{s < r <= t} g_r)
    (q_t . k_s) v_s / d_h with g = sigmoid(gate_logits) (N, L, heads); equal to the recurrence
    S_t = g_t S_{t-1} + k_t^T v_t, o_t = q_t S_t / d_h (``gated_linear_attention_recurrent``)."""
    n, dh = q.shape[1], q.shape[2] // heads
    q, k, v = _split(q, heads), _split(k, heads), _split(v, heads)
    t = torch.arange(n, device=q.device)
    cum = F.logsigmoid(gate_logits).transpose(1, 2).cumsum(-1)  # (N, h, L)
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(t[None, :] > t[:, None], float("-inf")).exp()
    return _merge(((q @ k.transpose(-1, -2)) * decay / dh) @ v)


def gated_linear_attention_recurrent(q, k, v, gate_logits, heads: int) -> torch.Tensor:
    """The same operator token by token with its state S (heads x d_h x d_h): what a chip runs."""
    b, n, d = q.shape
    dh = d // heads
    qs, ks, vs = _split(q, heads), _split(k, heads), _split(v, heads)
    g = torch.sigmoid(gate_logits)  # (N, L, h)
    state = q.new_zeros(b, heads, dh, dh)
    out = []
    for t in range(n):
        state = g[:, t, :, None, None] * state + ks[:, :, t, :, None] * vs[:, :, t, None, :]
        out.append((qs[:, :, t, None, :] @ state)[:, :, 0] / dh)
    return _merge(torch.stack(out, dim=2))


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if weight is None else y * weight


_ACTIVATIONS = {
    "silu": F.silu, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


def spike_code_value(node: SpikeCode, x: torch.Tensor) -> torch.Tensor:
    """V_th x count: what the node's events reconstruct (float64 threshold and rounding, as
    snc.ir.spike_coding, so that both give the same counts)."""
    xd = x.double()
    vth = (xd.abs().mean(-1, keepdim=True) / float(node.k)).clamp(node.lo, node.hi)
    c = torch.round(xd / vth)
    limit = node.limit()
    if limit is not None:
        c = c.clamp(-limit, limit)
    return (vth * c).to(x.dtype)


def _embedding(node, xs):
    (ids,) = xs
    return F.embedding(ids.long(), torch.from_numpy(np.array(node.weight, copy=True)))


def _projection(node, xs):
    (x,) = xs
    return F.linear(x, _t(node.weight, x), None if node.bias is None else _t(node.bias, x))


def _norm(node, xs):
    (x,) = xs
    w = None if node.weight is None else _t(node.weight, x)
    if node.mode == "rms":
        return rms_norm(x, w, float(node.eps))
    b = None if node.bias is None else _t(node.bias, x)
    return F.layer_norm(x, x.shape[-1:], w, b, float(node.eps))


HANDLERS = {
    "Tokens": lambda node, xs: xs[0],
    "Embedding": _embedding,
    "Projection": _projection,
    "Norm": _norm,
    "Activation": lambda node, xs: _ACTIVATIONS[node.fn](xs[0]),
    "Product": lambda node, xs: xs[0] * xs[1],
    "Residual": lambda node, xs: xs[0] + xs[1],
    "Attention": lambda node, xs: causal_attention(*xs, heads=node.heads, window=node.window),
    "LinearAttention": lambda node, xs: gated_linear_attention(*xs, heads=node.heads),
    "SpikeCode": lambda node, xs: spike_code_value(node, xs[0]),
}
