"""Frontends: trained models in, ANN graphs (snc.ir) out.

``load_model(path)`` dispatches on the file suffix (``snc.registry``):
  .onnx -> snc.frontends.onnx.from_onnx      .pt2 -> snc.frontends.torch.load_pt2
  .snir -> snc.ir.load (an already compiled artifact)
  other suffixes -> the installed ``snc.frontends`` plug-ins
"""
from __future__ import annotations

import os
from pathlib import Path

from snc.errors import InvalidModel
from snc.ir import Graph

SUFFIXES = (".onnx", ".pt2", ".snir")


def load_model(path: str | os.PathLike) -> Graph:
    """Read a model file into an IR graph. Raises a typed SncError naming the file. Formats come
    from ``snc.registry`` (the built-ins above, and installed ``snc.frontends`` plug-ins)."""
    from snc import registry

    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InvalidModel("no such file", file=str(path))
    if path.is_dir():
        raise InvalidModel("is a directory, not a model file", file=str(path))
    frontend = registry.frontend_for(path)
    if frontend is None:
        raise InvalidModel(f"unknown model format {suffix or '(no suffix)'!r}; snc reads {', '.join(registry.suffixes())}",
                           file=str(path))
    graph = frontend.load(path)
    if not isinstance(graph, Graph):
        raise InvalidModel(f"frontend {frontend.name!r} returned {type(graph).__name__}, not an snc.ir.Graph", file=str(path))
    return graph
