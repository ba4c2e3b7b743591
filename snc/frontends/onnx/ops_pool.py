"""ONNX operators: MaxPool, AveragePool, the global pools and Pad (folded into the next window)."""
from __future__ import annotations

import dataclasses

import numpy as np

from snc.errors import InvalidModel, UnsupportedOperator
from snc.ir import AvgPool2d, MaxPool2d


from .common import _Act, _Op, _add_pads, _ceil_changes, _ints, _unpadded, _window_pads


class PoolOps:
    """Handlers of the _Converter (mixed in)."""

    def _pool(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=True)
        if op.type == "MaxPool":
            self._require_unused_outputs(op, 1, "Indices")
        if len(act.shape) != 3:
            raise UnsupportedOperator(
                f"only 2-D pooling of (N, C, H, W) tensors is supported; the input has shape (N, *{act.shape})"
            )
        if "kernel_shape" not in op.attrs:
            raise InvalidModel(f"{op.type} lacks kernel_shape")
        kernel = _ints(op.attrs["kernel_shape"], 2, None, "kernel_shape")
        stride = _ints(op.attrs.get("strides"), 2, 1, "strides")
        dilation = _ints(op.attrs.get("dilations"), 2, 1, "dilations")
        padding = _window_pads(op, act.shape[1:], kernel, stride, dilation)
        if int(op.attrs.get("ceil_mode", 0)):
            for axis, size in enumerate(act.shape[1:]):
                if _ceil_changes(size, kernel[axis], stride[axis], dilation[axis], padding[axis], padding[axis + 2]):
                    raise UnsupportedOperator(
                        f"{op.type} with ceil_mode=1 changes the output size here; snc pools in floor mode"
                    )
        pad = act.pad if act.pad is not None and any(act.pad) else None
        source = dataclasses.replace(act, shape=_unpadded(act), pad=None)
        if op.type == "MaxPool":
            if pad is not None:
                raise UnsupportedOperator(
                    f"MaxPool after the zero padding of Pad {act.pad_by!r}: padded zeros are data to MaxPool, "
                    "while MaxPool's own padding never wins (-inf); the two cannot be merged"
                )
            self._emit(op, MaxPool2d(kernel=kernel, stride=stride, padding=padding, dilation=dilation), [source])
            return
        if dilation != (1, 1):
            raise UnsupportedOperator(f"AveragePool with dilations {dilation}; snc averages contiguous windows only")
        include = bool(int(op.attrs.get("count_include_pad", 0)))
        if pad is not None:
            # Zeros from a Pad op are real data: they count in the divisor.
            if include or not any(padding):
                padding, include = _add_pads(padding, pad), True
                self.notes.append(f"folded Pad {act.pad_by!r} into the padding of AveragePool {op.display!r}")
            else:
                raise UnsupportedOperator(
                    f"AveragePool with count_include_pad=0 and its own padding after the zero padding of Pad "
                    f"{act.pad_by!r}: the Pad's zeros count in the divisor, the pool's own padding does not"
                )
        self._emit(op, AvgPool2d(kernel=kernel, stride=stride, padding=padding, count_include_pad=include), [source])

    def _global_pool(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=(op.type == "GlobalAveragePool"))
        if len(act.shape) != 3:
            raise UnsupportedOperator(
                f"only 2-D global pooling of (N, C, H, W) tensors is supported; the input has shape (N, *{act.shape})"
            )
        kernel = (act.shape[1], act.shape[2])
        source = dataclasses.replace(act, shape=_unpadded(act), pad=None)
        if op.type == "GlobalMaxPool":
            self._emit(op, MaxPool2d(kernel=kernel, stride=kernel), [source])
            return
        pad = act.pad or (0, 0, 0, 0)
        self._emit(op, AvgPool2d(kernel=kernel, stride=kernel, padding=pad, count_include_pad=True), [source])

    def _pad(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=True)
        rank = len(act.shape) + 1
        mode = op.attrs.get("mode", "constant")
        if self.opset < 11:
            pads = op.attrs.get("pads", op.attrs.get("paddings"))
            value = float(op.attrs.get("value", 0.0))
            axes = None
        else:
            pads = self._const(op, 1, "pads")
            value_c = self._const(op, 2, "constant_value")
            value = 0.0 if value_c is None or np.size(value_c) == 0 else float(np.asarray(value_c).reshape(-1)[0])
            axes_c = self._const(op, 3, "axes")
            axes = None if axes_c is None else [int(a) for a in np.asarray(axes_c).reshape(-1)]
        if pads is None:
            raise InvalidModel("Pad lacks its pads")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
        if len(pads) != 2 * len(axes):
            raise InvalidModel(f"Pad has {len(pads)} pads for {len(axes)} axes")
        begin, end = [0] * rank, [0] * rank
        for k, a in enumerate(axes):
            if not 0 <= a < rank:
                raise InvalidModel(f"Pad axis {a} is out of range for rank {rank}")
            begin[a], end[a] = pads[k], pads[k + len(axes)]
        if not any(begin) and not any(end):
            self._alias(op, act)  # an all-zero Pad is the identity
            return
        if mode != "constant":
            raise UnsupportedOperator(
                f"Pad mode {mode!r}; snc folds only zero ('constant') padding into a Conv or pool"
            )
        if value != 0.0:
            raise UnsupportedOperator(f"Pad with value {value}; snc folds only zero padding into a Conv or pool")
        if min(begin + end) < 0:
            raise UnsupportedOperator("Pad with negative pads (cropping) is not supported")
        if begin[0] or end[0]:
            raise UnsupportedOperator("Pad pads the batch axis")
        if rank != 4 or begin[1] or end[1]:
            raise UnsupportedOperator(
                f"Pad of {begin[1:]} / {end[1:]} on a tensor of shape (N, *{act.shape}); snc folds only zero padding "
                "of the H and W axes of (N, C, H, W) tensors into the following Conv or pool"
            )
        mine = (begin[2], begin[3], end[2], end[3])
        pad = _add_pads(mine, act.pad)
        shape = (act.shape[0], act.shape[1] + begin[2] + end[2], act.shape[2] + begin[3] + end[3])
        self._set(op, _Act(act.node, shape, origin=act.origin, pad=pad, pad_by=op.display))
