"""Fast exact counts of true values in boolean arrays (spike and activity bookkeeping).

Eight booleans are read as one 64-bit word: row counts come from a popcount per word, column
counts from byte-lane sums over blocks of 255 rows (no lane can overflow). Both are exact and
read each byte once; numpy's count_nonzero along an axis casts and reduces element by element.
"""
from __future__ import annotations

import numpy as np

_HAS_POPCOUNT = hasattr(np, "bitwise_count")


def row_counts(a: np.ndarray) -> np.ndarray:
    """Number of True per row of a C-contiguous 2-D bool array, int64."""
    rows, n = a.shape
    if not _HAS_POPCOUNT or n % 8 or not a.flags.c_contiguous:
        return np.count_nonzero(a, axis=1).astype(np.int64)
    return np.bitwise_count(a.view(np.uint64)).sum(axis=1, dtype=np.int64)


def column_counts(a: np.ndarray) -> np.ndarray:
    """Number of True per column of a C-contiguous 2-D bool array, int64."""
    rows, n = a.shape
    if n % 8 or not a.flags.c_contiguous or rows == 0:
        return np.count_nonzero(a, axis=0).astype(np.int64)
    words = a.view(np.uint64)  # (rows, n / 8), each word holds 8 columns in its bytes
    full = rows - rows % 255
    counts = np.zeros(n, dtype=np.int64)
    if full:
        lanes = words[:full].reshape(-1, 255, n // 8).sum(axis=1, dtype=np.uint64)  # per byte <= 255
        counts += lanes.view(np.uint8).reshape(-1, n).sum(axis=0, dtype=np.int64)
    if full < rows:
        counts += words[full:].sum(axis=0, dtype=np.uint64).view(np.uint8)  # < 255 rows: no carry
    return counts
