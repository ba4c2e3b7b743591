"""aten operators: ReLU and its clipped forms (relu6, hardtanh, clamp, threshold)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx

from snc.ir import ReLU


from .common import _Tensor, _handles
if TYPE_CHECKING:  # annotations only (the converter imports this module)
    from .converter import _Converter


# --- activations -----------------------------------------------------------------------------
def _relu(c: _Converter, x: _Tensor, ceiling: Any = None) -> _Tensor:
    if ceiling is not None:
        ceiling = float(ceiling)
        if not (np.isfinite(ceiling) and ceiling > 0):
            c._unsupported(f"a clamp to [0, {ceiling}] is not a ReLU")
    return c.emit(ReLU(ceiling=ceiling), [x])


def _scalar(c: _Converter, value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float, bool)):
        return float(value)
    c._unsupported(f"{what} must be a constant scalar")


@_handles("aten.relu")
def _relu_op(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    return _relu(c, c.tensor(a["self"], "the input"))


@_handles("aten.relu6")
def _relu6(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    return _relu(c, c.tensor(a["self"], "the input"), 6.0)


@_handles("aten.hardtanh")
def _hardtanh(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    lo, hi = float(a["min_val"]), float(a["max_val"])
    if lo != 0.0:
        c._unsupported(f"hardtanh({lo}, {hi}) is a ReLU only with min_val 0")
    return _relu(c, c.tensor(a["self"], "the input"), hi)


@_handles("aten.clamp", "aten.clamp_min")
def _clamp(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    lo = _scalar(c, a.get("min"), "the clamp minimum")
    hi = _scalar(c, a.get("max"), "the clamp maximum")
    if lo != 0.0:
        c._unsupported(f"clamp(min={lo}, max={hi}) is a ReLU only with min 0")
    return _relu(c, c.tensor(a["self"], "the input"), hi)


@_handles("aten.threshold")
def _threshold(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    if float(a["threshold"]) != 0.0 or float(a["value"]) != 0.0:
        c._unsupported("threshold(x, t, v) is a ReLU only with t = v = 0")
    return _relu(c, c.tensor(a["self"], "the input"))
