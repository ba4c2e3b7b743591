"""ONNX operators: Flatten, Reshape, Squeeze, Unsqueeze, Transpose and Concat: layout only."""
from __future__ import annotations


import numpy as np

from snc.errors import InvalidModel, ShapeError, UnsupportedOperator
from snc.ir import Concat, Reshape, Transpose


from .common import _Act, _Op


class ShapeOps:
    """Handlers of the _Converter (mixed in)."""

    def _flatten(self, op: _Op) -> None:
        act = self._act(op)
        rank = len(act.shape) + 1
        axis = int(op.attrs.get("axis", 1))
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis <= rank:
            raise InvalidModel(f"Flatten axis {op.attrs.get('axis')} is out of range for rank {rank}")
        if axis == 0:
            if not self._batch_is_one():
                raise UnsupportedOperator("Flatten with axis 0 merges the batch axis into the features")
            axis = 1
        # ONNX Flatten is always 2-D: (N * prod(axes 1..axis-1), prod(axes axis..)). Axis 0 stays
        # the batch only if the axes merged into it all have size 1.
        merged = int(np.prod(act.shape[: axis - 1]))
        if merged != 1:
            raise UnsupportedOperator(
                f"Flatten with axis {axis} of (N, *{act.shape}) merges {merged} values per sample into the batch "
                "axis; snc keeps axis 0 as the batch"
            )
        self._reshape_to(op, act, (int(np.prod(act.shape[axis - 1:])),))

    def _batch_is_one(self) -> bool:
        for vi in self.onnx_graph.input:
            if vi.name in self.consts:
                continue
            dim = vi.type.tensor_type.shape.dim[0]
            if not (dim.HasField("dim_value") and dim.dim_value == 1):
                return False
        return True

    def _reshape(self, op: _Op) -> None:
        act = self._act(op)
        target = self._const(op, 1, "shape")
        if target is None:
            if "shape" not in op.attrs:
                raise InvalidModel("Reshape lacks its target shape")
            target = np.asarray(op.attrs["shape"])
        t = [int(v) for v in np.asarray(target).reshape(-1)]
        allowzero = bool(int(op.attrs.get("allowzero", 0)))
        if not t:
            raise UnsupportedOperator("Reshape to a scalar drops the batch axis")
        if allowzero and 0 in t:
            raise UnsupportedOperator("Reshape with allowzero=1 to a shape holding 0 (an empty tensor)")
        size = int(np.prod(act.shape))
        rest = []
        for i, v in enumerate(t[1:], start=1):
            if v == 0:
                if i - 1 >= len(act.shape):
                    raise InvalidModel(f"Reshape target {t} copies axis {i}, which the input (N, *{act.shape}) lacks")
                v = act.shape[i - 1]
            rest.append(v)
        if rest.count(-1) > 1 or any(v < -1 for v in rest):
            raise InvalidModel(f"Reshape target {t} is invalid")
        known = int(np.prod([v for v in rest if v != -1]))
        if -1 in rest:
            if t[0] == -1:
                raise InvalidModel(f"Reshape target {t} holds -1 twice")
            if known == 0 or size % known:
                raise ShapeError(f"cannot reshape (N, *{act.shape}) to {t}")
            rest[rest.index(-1)] = size // known
        # Axis 0 must remain the batch: kept (0), batch 1 (1, e.g. folded Shape) or inferred (-1).
        if t[0] not in (0, 1, -1) or int(np.prod(rest)) != size:
            raise UnsupportedOperator(f"Reshape of (N, *{act.shape}) to {t} does not keep axis 0 as the batch")
        self._reshape_to(op, act, tuple(rest))

    def _squeeze(self, op: _Op) -> None:
        act = self._act(op)
        rank = len(act.shape) + 1
        axes = self._axes(op)
        if axes is None:
            axes = [i + 1 for i, d in enumerate(act.shape) if d == 1]
        axes = sorted({a + rank if a < 0 else a for a in axes})
        if any(not 0 <= a < rank for a in axes):
            raise InvalidModel(f"Squeeze axes {axes} are out of range for rank {rank}")
        if 0 in axes:
            raise UnsupportedOperator("Squeeze of the batch axis")
        for a in axes:
            if act.shape[a - 1] != 1:
                raise ShapeError(f"Squeeze of axis {a} of size {act.shape[a - 1]}")
        self._reshape_to(op, act, tuple(d for i, d in enumerate(act.shape) if i + 1 not in axes))

    def _unsqueeze(self, op: _Op) -> None:
        act = self._act(op)
        axes = self._axes(op)
        if axes is None:
            raise InvalidModel("Unsqueeze lacks its axes")
        out_rank = len(act.shape) + 1 + len(axes)
        axes = sorted(a + out_rank if a < 0 else a for a in axes)
        if len(set(axes)) != len(axes) or any(not 0 <= a < out_rank for a in axes):
            raise InvalidModel(f"Unsqueeze axes {axes} are invalid for output rank {out_rank}")
        if 0 in axes:
            raise UnsupportedOperator("Unsqueeze at axis 0 would move the batch axis")
        full = [-1] + list(act.shape)  # -1 marks the batch
        for a in axes:
            full.insert(a, 1)
        self._reshape_to(op, act, tuple(full[1:]))

    def _axes(self, op: _Op) -> list[int] | None:
        if self.opset < 13:
            axes = op.attrs.get("axes")
            return None if axes is None else [int(a) for a in axes]
        c = self._const(op, 1, "axes")
        return None if c is None else [int(a) for a in np.asarray(c).reshape(-1)]

    def _transpose(self, op: _Op) -> None:
        act = self._act(op)
        rank = len(act.shape) + 1
        perm = [int(p) for p in op.attrs.get("perm", range(rank - 1, -1, -1))]
        if sorted(perm) != list(range(rank)):
            raise InvalidModel(f"Transpose perm {perm} is not a permutation of {rank} axes")
        if perm[0] != 0:
            raise UnsupportedOperator(f"Transpose with perm {perm} moves the batch axis (perm[0] must be 0)")
        sample = tuple(p - 1 for p in perm[1:])
        if sample == tuple(range(rank - 1)):
            self._alias(op, act)
        else:
            self._emit(op, Transpose(perm=sample), [act])

    def _concat(self, op: _Op) -> None:
        values = [self._value(op, i) for i in range(len(op.proto.input))]
        if any(v is not None and not isinstance(v, _Act) for v in values):
            raise UnsupportedOperator("Concat of an activation with a constant; snc concatenates network tensors only")
        acts = [self._act(op, i) for i in range(len(op.proto.input)) if op.proto.input[i]]
        rank = len(acts[0].shape) + 1
        if "axis" not in op.attrs:
            raise InvalidModel("Concat lacks its axis attribute")
        axis = int(op.attrs["axis"])
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis < rank:
            raise InvalidModel(f"Concat axis {op.attrs['axis']} is out of range for rank {rank}")
        if axis == 0:
            raise UnsupportedOperator("Concat along the batch axis")
        if len(acts) == 1:
            self._alias(op, acts[0])
            return
        seen: set[str] = set()
        inputs: list[_Act] = []
        for a in acts:
            if a.node in seen:  # the IR wants distinct inputs: route repeats through a copy
                copy = self.graph.unique_name(f"{a.node}_copy")
                self.graph.add(copy, Reshape(shape=a.shape), [a.node])
                a = _Act(copy, a.shape, origin="")
            seen.add(a.node)
            inputs.append(a)
        self._emit(op, Concat(axis=axis - 1), inputs)
