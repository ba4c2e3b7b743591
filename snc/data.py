"""Reading sample, label and calibration files safely.

Files are ``.npy`` or ``.npz`` and are read with ``allow_pickle=False``: an array of Python
objects is refused, never unpickled. An ``.npz`` may hold one array, or name its arrays
``x`` / ``X`` / ``data`` (samples) and ``y`` / ``labels`` (labels).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from snc.errors import InvalidData

SAMPLE_KEYS = ("x", "X", "data", "samples", "images", "inputs")
LABEL_KEYS = ("y", "Y", "labels", "label", "targets")


def _open(path: Path):
    if not path.exists():
        raise InvalidData("no such file", file=str(path))
    if path.suffix.lower() not in (".npy", ".npz"):
        raise InvalidData(f"data files must be .npy or .npz, got {path.suffix or 'no suffix'!r}", file=str(path))
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        msg = str(exc)
        if "pickle" in msg.lower() or "object" in msg.lower():
            raise InvalidData("holds Python objects (pickled data); snc reads only numeric arrays", file=str(path)) from None
        raise InvalidData(f"not a readable numpy file ({msg.splitlines()[0] if msg else 'bad format'})", file=str(path)) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidData(f"not a readable numpy file ({exc})", file=str(path)) from None


def _pick(npz, keys: tuple[str, ...], path: Path, what: str) -> np.ndarray:
    files = list(npz.files)
    for k in keys:
        if k in files:
            return npz[k]
    if len(files) == 1:
        return npz[files[0]]
    raise InvalidData(f"cannot tell which array holds the {what}: found {files}; name it one of {list(keys)}", file=str(path))


def _numeric(a: np.ndarray, path: Path, what: str) -> np.ndarray:
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise InvalidData(f"{what} must be numeric, got dtype {a.dtype}", file=str(path))
    return a


def _read_array(path: Path, keys, what: str) -> np.ndarray:
    """The numeric array in a .npy, or under one of ``keys`` in a .npz (never unpickled)."""
    obj = _open(path)
    try:
        if isinstance(obj, np.lib.npyio.NpzFile):
            with obj:
                a = _pick(obj, keys, path, what)
        else:
            a = obj
    except ValueError as exc:
        raise InvalidData(f"holds Python objects or is corrupt ({exc})", file=str(path)) from None
    return _numeric(np.asarray(a), path, what)


def load_samples(path: str | os.PathLike) -> np.ndarray:
    """Samples laid out (N, *input_shape) (or (N, T, *shape) for spike inputs)."""
    path = Path(path)
    a = _read_array(path, SAMPLE_KEYS, "samples")
    if a.ndim < 1 or len(a) == 0:
        raise InvalidData("holds no samples", file=str(path))
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise InvalidData("samples contain NaN or inf", file=str(path))
    return a


def load_labels(path: str | os.PathLike, n: int | None = None) -> np.ndarray:
    """Integer class labels (N,)."""
    path = Path(path)
    a = _read_array(path, LABEL_KEYS, "labels")
    if a.ndim == 2 and a.shape[1] > 1:
        a = a.argmax(axis=1)  # one-hot
    a = a.reshape(-1)
    if a.dtype.kind == "f":
        if not np.all(a == np.round(a)):
            raise InvalidData("labels must be integers (class indices)", file=str(path))
    a = a.astype(np.int64)
    if n is not None and len(a) != n:
        raise InvalidData(f"{len(a)} labels for {n} samples", file=str(path))
    return a
