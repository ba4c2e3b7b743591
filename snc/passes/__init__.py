"""Passes: plain functions ``graph -> graph`` with a name, composed into pipelines.

Each pass takes the graph and a ``PassContext`` (calibration data and options) and returns a new
graph; it never mutates its argument. What it changed goes into the context's report, which the
pipeline stores in ``graph.meta["report"]`` so that the artifact remembers how it was made.

    snc passes                      # lists them
    snc compile m.onnx --passes fold-bn,fold-affine,convert,balance
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from snc.errors import SncError
from snc.ir import Graph


@dataclass
class PassContext:
    """What passes may read besides the graph.

    calibration: samples (N, *input_shape) for data-based passes (balance, prune, quantize).
    percentile:  activation percentile for threshold balancing (Rueckauer et al. 2017).
    options:     free-form options of individual passes (weight_bits, prune_sparsity, hw, ...).
    """

    calibration: np.ndarray | None = None
    percentile: float = 99.9
    timesteps: int = 64
    options: dict[str, Any] = field(default_factory=dict)
    report: list[dict[str, Any]] = field(default_factory=list)
    progress: Callable[[str], None] | None = None

    def note(self, pass_name: str, message: str, **data: Any) -> None:
        entry = {"pass": pass_name, "message": message}
        entry.update(data)
        self.report.append(entry)


@dataclass(frozen=True)
class Pass:
    name: str
    description: str
    module: str
    function: str

    @property
    def fn(self) -> Callable[[Graph, PassContext], Graph]:
        return getattr(importlib.import_module(self.module), self.function)

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return self.fn(graph, ctx or PassContext())


# name -> Pass; modules are imported only when a pass runs.
REGISTRY: dict[str, Pass] = {
    p.name: p
    for p in (
        Pass("fold-bn", "fold inference batch-norm into the preceding convolution or dense layer", "snc.passes.fold_batchnorm", "fold_batchnorm"),
        Pass("fold-affine", "fold constant elementwise scale/shift (input normalisation) into neighbouring affine layers", "snc.passes.fold_affine", "fold_affine"),
        Pass("convert", "ANN -> SNN: ReLU -> IF (reset by subtraction), biases -> currents, max-pool -> exact spiking max, logits -> readout", "snc.passes.convert", "convert"),
        Pass("balance", "data-based threshold balancing: threshold = p-th percentile of each layer's activations (Rueckauer et al. 2017)", "snc.passes.balance", "balance"),
        Pass("quantize", "weights, thresholds, biases and decays to the chip's fixed point (Loihi semantics; options weight_bits, scaling, rounding)", "snc.passes.quantize", "quantize"),
        Pass("prune", "remove zero synapses, optionally prune weights by magnitude (prune_sparsity), and remove neurons that never spike on the calibration data (proved by re-simulating it all, or the first prune_samples)", "snc.passes.prune", "prune"),
        Pass("map", "split populations into core-sized blocks under the chip's limits and place them on the mesh (option hw)", "snc.passes.map_to_cores", "map_to_cores"),
    )
}

DEFAULT_PIPELINE: tuple[str, ...] = ("fold-bn", "fold-affine", "convert", "balance", "quantize", "prune", "map")
# The conversion alone (a float spiking network, no hardware assumptions).
CONVERSION: tuple[str, ...] = ("fold-bn", "fold-affine", "convert", "balance")


def get(name: str) -> Pass:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SncError(f"unknown pass {name!r}; available: {', '.join(REGISTRY)}") from None


def run_pipeline(graph: Graph, names: list[str] | tuple[str, ...], ctx: PassContext) -> Graph:
    """Run the named passes in order; the report of this run goes into ``meta["report"]``."""
    passes = [get(n) for n in names]
    start = len(ctx.report)
    for p in passes:
        if ctx.progress is not None:
            ctx.progress(p.name)
        graph = p(graph, ctx)
    graph.meta.setdefault("report", [])
    graph.meta["report"] = list(graph.meta["report"]) + ctx.report[start:]
    graph.meta["passes"] = list(graph.meta.get("passes", [])) + [p.name for p in passes]
    return graph
