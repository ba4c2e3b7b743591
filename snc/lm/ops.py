"""The attention operators of snc's language-model family, as torch operators (``snc::``).

A decoder written with these exports (torch.export) with each attention as one node that snc's
frontend reads as an ``Attention`` or ``LinearAttention`` node, instead of a tangle of masks,
cumulative sums and exponentials. They compute with snc.backends.sequence_ops (the simulator's
own functions) and are differentiable, so the same model trains in PyTorch:

    from snc.lm.ops import causal_attention, gated_linear_attention
    out = causal_attention(q, k, v, heads, window)          # q, k, v (N, L, d); window 0 = full
    out = gated_linear_attention(q, k, v, gate_logits, heads)  # gate_logits (N, L, heads)

Importing ``snc.frontends.torch`` registers them, so saved ``.pt2`` programs that use them load.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import register_flop_formula

from snc.backends import sequence_ops as _ops


@torch.library.custom_op("snc::causal_attention", mutates_args=())
def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, window: int) -> torch.Tensor:
    """Causal softmax attention over ``heads`` heads (sliding window of ``window`` tokens; 0 = all)."""
    return _ops.causal_attention(q, k, v, heads, window)


@causal_attention.register_fake
def _(q, k, v, heads, window):
    return torch.empty_like(q)


@torch.library.custom_op("snc::gated_linear_attention", mutates_args=())
def gated_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate_logits: torch.Tensor,
                           heads: int) -> torch.Tensor:
    """Gated linear attention with per-head gates sigmoid(gate_logits) (N, L, heads)."""
    return _ops.gated_linear_attention(q, k, v, gate_logits, heads)


@gated_linear_attention.register_fake
def _(q, k, v, gate_logits, heads):
    return torch.empty_like(q)


def _autograd(op, reference, n_tensors: int) -> None:
    """Gradients by differentiating the reference function again in backward."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.rest = inputs[n_tensors:]

    def backward(ctx, grad):
        with torch.enable_grad():
            xs = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
            out = reference(*xs, *ctx.rest)
            grads = torch.autograd.grad(out, xs, grad)
        return (*grads, *([None] * len(ctx.rest)))

    op.register_autograd(backward, setup_context=setup)


_autograd(causal_attention, _ops.causal_attention, 3)
_autograd(gated_linear_attention, _ops.gated_linear_attention, 4)


def _parallel_form_flops(q_shape, *args, out_shape=None, **kwargs) -> int:
    """What torch's FlopCounterMode counts for either operator: its two (N, heads, L, L) x d_h
    matrix products as computed here in parallel form (full L x L, masked afterwards), 2 flops
    per MAC: 4 N L^2 d. (The IR nodes' ``ops_per_token`` count the causal or recurrent work a
    chip does instead.)"""
    n, length, d = q_shape
    return 4 * n * length * length * d


register_flop_formula(torch.ops.snc.causal_attention)(_parallel_form_flops)
register_flop_formula(torch.ops.snc.gated_linear_attention)(_parallel_form_flops)
