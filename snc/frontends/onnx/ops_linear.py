"""ONNX operators: Conv, Gemm, MatMul and BatchNormalization: the weighted layers."""
from __future__ import annotations

import dataclasses

import numpy as np

from snc.errors import InvalidModel, ShapeError, UnsupportedOperator
from snc.ir import BatchNorm, Conv2d, Dense, ScaleShift


from .common import _Act, _Op, _add_pads, _ints, _unpadded, _window_pads


class LinearOps:
    """Handlers of the _Converter (mixed in)."""

    def _conv(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=True)
        weight = self._const(op, 1, "weight")
        bias = self._const(op, 2, "bias")
        if weight is None:
            raise InvalidModel("Conv lacks its weight")
        if len(act.shape) != 3 or weight.ndim != 4:
            raise UnsupportedOperator(
                f"only 2-D convolutions of (N, C, H, W) tensors are supported; the input has shape (N, *{act.shape}) "
                f"and the weight {weight.shape}"
            )
        kernel = tuple(int(k) for k in weight.shape[2:])
        if "kernel_shape" in op.attrs and tuple(op.attrs["kernel_shape"]) != kernel:
            raise InvalidModel(
                f"kernel_shape {tuple(op.attrs['kernel_shape'])} disagrees with the weight shape {weight.shape}"
            )
        stride = _ints(op.attrs.get("strides"), 2, 1, "strides")
        dilation = _ints(op.attrs.get("dilations"), 2, 1, "dilations")
        padding = _window_pads(op, act.shape[1:], kernel, stride, dilation)
        padding = _add_pads(padding, act.pad)
        if act.pad is not None and any(act.pad):
            self.notes.append(f"folded Pad {act.pad_by!r} into the padding of Conv {op.display!r}")
        weight = np.array(weight, dtype=np.float32)  # copies: initializers may be shared between nodes
        bias = None if bias is None else np.array(bias, dtype=np.float32)
        groups = int(op.attrs.get("group", 1))
        conv = Conv2d(weight=weight, bias=bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
        self._emit(op, conv, [dataclasses.replace(act, shape=_unpadded(act), pad=None)])

    def _gemm(self, op: _Op) -> None:
        b = self._const(op, 1, "B (weights)")
        act = self._act(op, 0)
        if b is None:
            raise InvalidModel("Gemm lacks its input B")
        if int(op.attrs.get("transA", 0)):
            raise UnsupportedOperator("Gemm with transA=1 would transpose the batch axis into the features")
        if len(act.shape) != 1:
            raise UnsupportedOperator(f"Gemm input A must be 2-D (batch, features); it has shape (N, *{act.shape})")
        if b.ndim != 2:
            raise InvalidModel(f"Gemm B must be 2-D, got shape {b.shape}")
        alpha, beta = float(op.attrs.get("alpha", 1.0)), float(op.attrs.get("beta", 1.0))
        weight = (b if int(op.attrs.get("transB", 0)) else b.T).astype(np.float32)
        if alpha != 1.0:
            weight = weight * np.float32(alpha)
        c = self._const(op, 2, "C (bias)")
        bias = None
        if c is not None and beta != 0.0:
            n_out = weight.shape[0]
            c = np.asarray(c, dtype=np.float32)
            if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
                raise UnsupportedOperator(f"Gemm C of shape {c.shape} varies along the batch axis")
            try:
                row = c.reshape(c.shape[-1:] if c.ndim else ())
                bias = np.broadcast_to(row, (n_out,)).astype(np.float32) * np.float32(beta)
            except ValueError:
                raise ShapeError(f"Gemm C of shape {c.shape} does not broadcast to ({n_out},)") from None
        self._emit(op, Dense(weight=np.ascontiguousarray(weight), bias=bias), [act])

    def _matmul(self, op: _Op) -> None:
        a, b = self._value(op, 0), self._value(op, 1)
        if not isinstance(a, _Act) or isinstance(b, _Act):
            raise UnsupportedOperator("MatMul is supported with a constant right operand only (x @ W)")
        act = self._act(op, 0)
        if b.ndim != 2:
            raise UnsupportedOperator(f"MatMul with a constant of shape {b.shape}; snc needs a 2-D weight matrix")
        if len(act.shape) != 1:
            raise UnsupportedOperator(f"MatMul of a tensor of shape (N, *{act.shape}); snc needs (N, features)")
        self._emit(op, Dense(weight=np.ascontiguousarray(b.T.astype(np.float32))), [act])

    def _batchnorm(self, op: _Op) -> None:
        act = self._act(op)
        self._require_unused_outputs(op, 1, "training statistics")
        if int(op.attrs.get("training_mode", 0)):
            raise UnsupportedOperator("BatchNormalization in training mode; export the model in eval mode")
        gamma, beta, mean, var = (self._const(op, i, w) for i, w in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        if any(v is None for v in (gamma, beta, mean, var)):
            raise InvalidModel("BatchNormalization lacks one of scale, B, mean, var")
        eps = float(op.attrs.get("epsilon", 1e-5))
        stats = [np.array(v, dtype=np.float32) for v in (gamma, beta, mean, var)]
        if all(s.ndim == 1 for s in stats):
            self._emit(op, BatchNorm(mean=stats[2], var=stats[3], gamma=stats[0], beta=stats[1], eps=eps), [act])
            return
        # spatial=0 (opset < 9): statistics per activation, shape (C, D1, ...) -> an affine map.
        g, b, m, v = (s.astype(np.float64) for s in stats)
        scale = g / np.sqrt(v + eps)
        self._emit(op, ScaleShift(scale=scale, shift=b - m * scale), [act])
