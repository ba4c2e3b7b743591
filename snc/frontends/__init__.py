"""Frontends: trained models in, ANN graphs (snc.ir) out.

``load_model(path)`` dispatches on the file suffix:
  .onnx -> snc.frontends.onnx.from_onnx      .pt2 -> snc.frontends.torch.load_pt2
  .snir -> snc.ir.load (an already compiled artifact)
"""
from __future__ import annotations

import os
from pathlib import Path

from snc.errors import InvalidModel
from snc.ir import Graph

SUFFIXES = (".onnx", ".pt2", ".snir")


def load_model(path: str | os.PathLike) -> Graph:
    """Read a model file into an IR graph. Raises a typed SncError naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InvalidModel("no such file", file=str(path))
    if path.is_dir():
        raise InvalidModel("is a directory, not a model file", file=str(path))
    if suffix == ".onnx":
        from .onnx import from_onnx

        return from_onnx(path)
    if suffix == ".pt2":
        from .torch import load_pt2

        return load_pt2(path)
    if suffix == ".snir":
        from snc.ir import load

        return load(path)
    raise InvalidModel(f"unknown model format {suffix or '(no suffix)'!r}; snc reads {', '.join(SUFFIXES)}", file=str(path))
