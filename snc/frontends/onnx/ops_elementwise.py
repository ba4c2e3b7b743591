"""ONNX operators: Identity, Cast, Relu, Clip, the arithmetic operators (Add/Sub/Mul/Div/Neg/Sum) and a trailing Softmax."""
from __future__ import annotations


import numpy as np
import onnx

from snc.errors import InvalidModel, UnsupportedOperator
from snc.ir import ReLU


from .common import _Act, _Op, _UNBOUNDED, _dtype_name


class ElementwiseOps:
    """Handlers of the _Converter (mixed in)."""

    # --- handlers -----------------------------------------------------------------------------
    def _identity(self, op: _Op) -> None:
        if op.type == "Dropout":
            self._require_unused_outputs(op, 1, "mask")
            training = self._const(op, 2, "training_mode") if self.opset >= 12 else None
            if training is not None and bool(np.asarray(training).reshape(-1)[0]):
                raise UnsupportedOperator("Dropout in training mode is random; export the model in eval mode")
        self._alias(op, self._act(op, 0))

    def _cast(self, op: _Op) -> None:
        to = int(op.attrs.get("to", 0))
        if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
            raise UnsupportedOperator(f"Cast of an activation to {_dtype_name(to)}; snc computes in float")
        self._alias(op, self._act(op, 0))

    def _relu(self, op: _Op) -> None:
        self._emit(op, ReLU(), [self._act(op)])

    def _clip(self, op: _Op) -> None:
        act = self._act(op)
        if self.opset < 11:
            lo, hi = op.attrs.get("min"), op.attrs.get("max")
        else:
            lo_c, hi_c = self._const(op, 1, "min"), self._const(op, 2, "max")
            lo = None if lo_c is None else float(np.asarray(lo_c).reshape(-1)[0])
            hi = None if hi_c is None else float(np.asarray(hi_c).reshape(-1)[0])
        if (lo is not None and np.isnan(lo)) or (hi is not None and np.isnan(hi)):
            raise InvalidModel(f"Clip bound is NaN (min={lo}, max={hi})")
        lo = None if lo is None or not np.isfinite(lo) or abs(lo) >= _UNBOUNDED else float(lo)
        hi = None if hi is None or not np.isfinite(hi) or abs(hi) >= _UNBOUNDED else float(hi)
        if lo is None and hi is None:
            self._alias(op, act)
            return
        if lo == 0.0:
            if hi is not None and hi <= 0:
                raise UnsupportedOperator(f"Clip(0, {hi}) is constant zero; a ReLU ceiling must be > 0")
            self._emit(op, ReLU(ceiling=hi), [act])
            return
        if lo is None:
            raise UnsupportedOperator(
                f"Clip with only an upper bound ({hi}) computes min(x, c), not a rectifier; "
                "snc represents Clip(0, c) only"
            )
        raise UnsupportedOperator(
            f"Clip with min={lo}; snc represents Clip only with min 0 (a ReLU, optionally with a ceiling), "
            "because a spiking neuron's rate cannot go below 0"
        )

    def _arith(self, op: _Op) -> None:
        """Add, Sub, Mul, Div, Sum and Neg with activations."""
        values = [self._value(op, i) for i in range(len(op.proto.input))]
        if op.type == "Neg":
            self._affine(op, 0, np.float32(-1.0), np.float32(0.0))
            return
        if op.type == "Sum" or all(isinstance(v, _Act) for v in values):
            if any(not isinstance(v, _Act) for v in values):
                raise UnsupportedOperator("Sum of activations and constants")
            if op.type in ("Add", "Sum"):
                acts = [self._act(op, i) for i in range(len(values))]
                self._add_acts(op, acts, [1.0] * len(acts))
                return
            if op.type == "Sub":
                self._add_acts(op, [self._act(op, 0), self._act(op, 1)], [1.0, -1.0])
                return
            raise UnsupportedOperator(
                f"{op.type} of two activations is not linear; snc supports {op.type} by a constant only"
            )
        if len(values) != 2:
            raise InvalidModel(f"{op.type} takes 2 inputs, got {len(values)}")
        first_is_act = isinstance(values[0], _Act)
        index = 0 if first_is_act else 1
        act = self._act(op, index)
        c = self._sample_constant(op, values[1] if first_is_act else values[0], act)
        one, zero = np.ones_like(c), np.zeros_like(c)
        if op.type == "Add":
            scale, shift = one, c
        elif op.type == "Sub":
            scale, shift = (one, -c) if first_is_act else (-one, c)
        elif op.type == "Mul":
            scale, shift = c, zero
        else:  # Div
            if not first_is_act:
                raise UnsupportedOperator("Div of a constant by an activation (c / x) is not linear")
            with np.errstate(divide="ignore"):
                scale, shift = (1.0 / c.astype(np.float64)).astype(np.float32), zero
        self._affine(op, index, scale, shift)

    def _softmax(self, op: _Op) -> None:
        act = self._act(op)
        out = op.out(0)
        if out not in self.graph_outputs or self.consumers.get(out):
            raise UnsupportedOperator(
                f"{op.type} inside the network; snc drops a {op.type} only where its output is a graph output "
                "(argmax is unchanged), and a spiking network has no equivalent elsewhere"
            )
        rank = len(act.shape) + 1
        axis = int(op.attrs.get("axis", 1 if self.opset < 13 else -1))
        axis = axis + rank if axis < 0 else axis
        if self.opset < 13:  # normalises the flattened axes axis.. together
            whole_sample = axis == 1
        else:  # normalises one axis: the whole sample only if every other sample axis has size 1
            whole_sample = axis >= 1 and all(d == 1 for i, d in enumerate(act.shape) if i != axis - 1)
        if not whole_sample:
            raise UnsupportedOperator(
                f"{op.type} over axis {axis} of (N, *{act.shape}) normalises parts of a sample separately; "
                "dropping it could change the argmax"
            )
        self.notes.append(f"dropped trailing {op.type} {op.display!r} (argmax is unchanged)")
        self._alias(op, act)
