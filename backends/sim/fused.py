"""One-pass (fused) neuron updates for the float simulator, compiled with numba.

The numpy form of an IF population's step (``FloatNeurons._integrate`` and the activity count
in ``FloatNeurons.run``) makes five or six passes over (B, n) arrays per step: add, compare,
multiply, subtract, not-equal, count. Converted conv nets are memory-bound, so those passes are
most of a step's time. ``if_float`` does the same arithmetic in one pass per step and element,
in the same float32 operations in the same order (no fast-math, no contraction into FMA), so its
spikes, voltages and counts are bit-identical to the numpy form; the tests run both and compare.

numba is optional at run time: without it (or with ``SNC_FUSED=0`` in the environment) the
simulator uses the numpy form. Compiled code is cached on disk (``cache=True``), so a process
pays the compilation (about a second per input dtype) only the first time.
"""
from __future__ import annotations

import os

import numpy as np

try:  # pragma: no cover - exercised by whichever environment runs the suite
    if os.environ.get("SNC_FUSED", "1") == "0":
        raise ImportError("disabled by SNC_FUSED=0")
    from numba import njit
except ImportError:  # numba missing or disabled: the numpy form is used
    njit = None

AVAILABLE = njit is not None


def _if_float(v, current, bias, has_bias, th, th_per_neuron, keep, has_keep, subtract, spikes, active, mask, want_mask):
    """IF neurons over a chunk, in place.

    v (B, n) float32 voltages; current (Tc, B, n) any real dtype; bias (n,) float32 (used when
    has_bias); th (n,) float32, or (1,) when not th_per_neuron; keep (n,) bool (used when
    has_keep); spikes (Tc, B, n) bool, written; active (Tc, B) int64, written: the neurons whose
    drive (input + bias) is non-zero and that are kept; mask (Tc, B, n) bool, written with the
    same when want_mask. The step: drive = float32(input) (+ bias); v += drive; s = v > th; reset
    (v - th, or 0) where s; the emitted spike is s and keep."""
    tc, b, n = current.shape
    th0 = th[0]
    zero = np.float32(0.0)
    for t in range(tc):
        for j in range(b):
            count = 0
            for i in range(n):
                d = np.float32(current[t, j, i])
                if has_bias:
                    d = d + bias[i]
                kept = True
                if has_keep:
                    kept = keep[i]
                nz = d != zero and kept
                if want_mask:
                    mask[t, j, i] = nz
                count += nz
                x = v[j, i] + d
                thr = th[i] if th_per_neuron else th0
                s = x > thr
                if s:
                    x = x - thr if subtract else zero
                v[j, i] = x
                spikes[t, j, i] = s and kept
            active[t, j] = count


if AVAILABLE:
    _if_float_jit = njit(cache=True, nogil=True)(_if_float)
else:  # pragma: no cover
    _if_float_jit = None

_NO_MASK = np.zeros((1, 1, 1), dtype=bool)


def if_float(v: np.ndarray, current: np.ndarray, bias: np.ndarray | None, th, keep: np.ndarray | None,
             subtract: bool, spikes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The compiled IF step over a chunk (see ``_if_float``); returns ``active`` (Tc, B) int64."""
    tc, b, n = current.shape
    th_arr = np.ascontiguousarray(th, dtype=np.float32).reshape(-1)
    active = np.empty((tc, b), dtype=np.int64)
    _if_float_jit(
        v, current,
        bias if bias is not None else th_arr, bias is not None,
        th_arr, th_arr.size > 1,
        keep if keep is not None else _NO_MASK.reshape(-1), keep is not None,
        subtract, spikes, active,
        mask if mask is not None else _NO_MASK, mask is not None,
    )
    return active

