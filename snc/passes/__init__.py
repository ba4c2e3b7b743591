"""Passes: plain functions ``graph -> graph`` with a name, composed into pipelines.

Each pass takes the graph and a ``PassContext`` (calibration data and options) and returns a new
graph; it never mutates its argument. What it changed goes into the context's report, which the
pipeline stores in ``graph.meta["report"]`` so that the artifact remembers how it was made.

    snc passes                      # lists them
    snc compile m.onnx --passes fold-bn,fold-affine,convert,balance
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from snc.errors import InvalidOption, SncError
from snc.ir import Graph


# Facts about a graph that passes require and guarantee (see ``graph_facts``).
FACTS = {
    "converted": "a spiking graph (populations and a readout)",
    "balanced": "thresholds set from calibration data",
    "fixed-point": "every population and weighted operator has fixed-point parameters",
    "pruned": "the prune pass ran",
    "mapped": "placed onto the cores of a chip",
    "spike-coded": "a language model whose projections read spike-coded inputs",
}


def graph_facts(graph: Graph) -> set[str]:
    """The facts of FACTS that hold for ``graph`` as it is."""
    facts = set()
    if graph.is_spiking and any(n.role == "readout" for n in graph.nodes.values()):
        facts.add("converted")
    if graph.meta.get("balanced"):
        facts.add("balanced")
    if graph.meta.get("quantized"):
        facts.add("fixed-point")
    if "pruned" in graph.meta or "prune" in graph.meta.get("passes", []):
        facts.add("pruned")
    if graph.meta.get("mapping"):
        facts.add("mapped")
    if graph.meta.get("spike_code"):
        facts.add("spike-coded")
    return facts


@dataclass
class PassContext:
    """What passes may read besides the graph.

    calibration: samples (N, *input_shape) for data-based passes (balance, prune, quantize).
    percentile:  activation percentile for threshold balancing (Rueckauer et al. 2017).
    options:     options of the passes by name; each pass reads its own through its typed
                 ``Options`` dataclass (``ctx.config``); ``validate_options`` checks them all
                 before a pipeline runs.
    verify:      run the checks that prove passes correct by simulation (``--verify``; default
                 from the environment variable SNC_VERIFY=1, which the test suite sets): quantize
                 simulates float and fixed point, prune re-simulates and costs its savings.
    analysis:    the shared calibration analysis (calibration.py), computed once per compile.
    simulator:   ``simulate(graph, x, **kw)`` for the checks that need one, injected by the
                 driver (passes never import the simulator); every call is counted in
                 ``simulations``.
    estimator:   ``estimate(graph, x, **kw)``, likewise (prune's savings under ``verify``).
    """

    calibration: np.ndarray | None = None
    percentile: float = 99.9
    timesteps: int = 64
    options: dict[str, Any] = field(default_factory=dict)
    report: list[dict[str, Any]] = field(default_factory=list)
    progress: Callable[[str], None] | None = None
    pass_done: Callable[[dict[str, Any]], None] | None = None
    verify: bool = field(default_factory=lambda: os.environ.get("SNC_VERIFY") == "1")
    analysis: Any = None
    simulator: Callable[..., Any] | None = None
    estimator: Callable[..., Any] | None = None
    simulations: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.analysis is None:
            from .calibration import CalibrationAnalysis

            self.analysis = CalibrationAnalysis(self.calibration, self.percentile)

    def note(self, pass_name: str, message: str, **data: Any) -> None:
        entry = {"pass": pass_name, "message": message}
        entry.update(data)
        self.report.append(entry)

    def config(self, pass_name: str, cls: type) -> Any:
        """The typed options of ``pass_name`` (a dataclass of ``cls``) from ``options``."""
        from .options import resolve

        return resolve(pass_name, cls, self.options)

    def simulate(self, graph: Graph, data: np.ndarray, *, purpose: str, **kw: Any) -> Any:
        """Run the injected simulator (default: snc's event simulator), counting the call."""
        if self.simulator is None:
            self.simulator = _default_backend("snc.backends.sim", "simulate")
        self.simulations.append({"purpose": purpose, "samples": int(len(data)),
                                 "arithmetic": kw.get("arithmetic", "float32"), "timing": kw.get("timing", "sync")})
        return self.simulator(graph, data, **kw)

    def estimate(self, graph: Graph, data: np.ndarray, **kw: Any) -> Any:
        if self.estimator is None:
            self.estimator = _default_backend("snc.estimate", "estimate")
        self.simulations.append({"purpose": "estimate", "samples": int(len(data)), "arithmetic": "float32", "timing": "sync"})
        return self.estimator(graph, data, **kw)


def _default_backend(module: str, attr: str) -> Callable[..., Any]:
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Pass:
    """A named pass and its contract.

    requires:    facts (FACTS) the graph must have before the pass runs;
    guarantees:  facts it has afterwards;
    invalidates: shared analyses whose cached results no longer describe the graph afterwards;
    options:     name of the pass module's typed options dataclass (``Options``), or "".
    models:      the graphs it takes: "network" (CNNs and MLPs: analog or spiking populations)
                 or "sequence" (language models: token input, snc.ir.sequence).
    """

    name: str
    description: str
    module: str
    function: str
    requires: tuple[str, ...] = ()
    guarantees: tuple[str, ...] = ()
    invalidates: tuple[str, ...] = ()
    options: str = "Options"
    models: tuple[str, ...] = ("network",)

    @property
    def fn(self) -> Callable[[Graph, PassContext], Graph]:
        return getattr(importlib.import_module(self.module), self.function)

    @property
    def options_class(self) -> type | None:
        return getattr(importlib.import_module(self.module), self.options, None) if self.options else None

    def requirements(self, options: dict[str, Any]) -> tuple[str, ...]:
        """Facts required with these options (map needs fixed point when a chip is named)."""
        if self.name == "map" and options.get("map_strict"):
            return self.requires + ("fixed-point",)
        return self.requires

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return self.fn(graph, ctx or PassContext())


# name -> Pass; modules are imported only when a pass runs.
REGISTRY: dict[str, Pass] = {
    p.name: p
    for p in (
        Pass("fold-bn", "fold inference batch-norm into the preceding convolution or dense layer",
             "snc.passes.fold_batchnorm", "fold_batchnorm", options=""),
        Pass("fold-affine", "fold constant elementwise scale/shift (input normalisation) into neighbouring affine layers",
             "snc.passes.fold_affine", "fold_affine", options=""),
        Pass("convert", "ANN -> SNN: ReLU -> IF (reset by subtraction), biases -> currents, max-pool -> exact spiking max "
             "(on the host after an analog-input layer), logits -> readout",
             "snc.passes.convert", "convert", guarantees=("converted",)),
        Pass("balance", "data-based threshold balancing: threshold = p-th percentile of each layer's activations (Rueckauer et al. 2017)",
             "snc.passes.balance", "balance", requires=("converted",), guarantees=("balanced",), options=""),
        Pass("quantize", "weights, thresholds, biases and decays of every population (the readout included) to the chip's fixed point (Loihi semantics)",
             "snc.passes.quantize", "quantize", requires=("converted",), guarantees=("fixed-point",)),
        Pass("prune", "remove what provably never works for any input in range (zero synapses, neurons that cannot reach threshold, "
             "neurons that reach no output); optionally magnitude pruning and activity pruning on calibration data",
             "snc.passes.prune", "prune", requires=("converted",), guarantees=("pruned",)),
        Pass("map", "split populations into core-sized blocks under the chip's limits and place them on the mesh",
             "snc.passes.map_to_cores", "map_to_cores", requires=("converted",), guarantees=("mapped",)),
        Pass("spike-code", "language models: spike coding (SpikingBrain: adaptive threshold, counts, binary/ternary/bitwise/"
             "graded events) of the input of every static-weight projection; steps from calibration tokens",
             "snc.passes.spike_code", "spike_code", guarantees=("spike-coded",), models=("sequence",)),
    )
}

DEFAULT_PIPELINE: tuple[str, ...] = ("fold-bn", "fold-affine", "convert", "balance", "quantize", "prune", "map")
# The default pipeline of a language model (token input).
SEQUENCE_PIPELINE: tuple[str, ...] = ("spike-code",)
# The conversion alone (a float spiking network, no hardware assumptions).
CONVERSION: tuple[str, ...] = ("fold-bn", "fold-affine", "convert", "balance")
# Options every pass may read (not owned by one pass).
COMMON_OPTIONS = {
    "hw": "target chip: profile name, TOML path or HardwareProfile (quantize, prune, map; default loihi)",
    "labels": "labels of the calibration samples (quantize and prune report accuracy)",
    "map_strict": "a network that does not fit the chip is an error (True when a chip is named)",
}


def get(name: str) -> Pass:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SncError(f"unknown pass {name!r}; available: {', '.join(REGISTRY)}") from None


def check_order(graph: Graph, passes: list[Pass], options: dict[str, Any]) -> None:
    """Refuse, before any work, a pipeline whose passes run before what they require, or that
    do not take this kind of graph."""
    from snc.ir.sequence import is_sequence_model

    model = "sequence" if is_sequence_model(graph) else "network"
    for p in passes:
        if model not in p.models:
            what = "a language model (token input)" if model == "sequence" else "a CNN or MLP (not a language model)"
            takes = ", ".join(q.name for q in REGISTRY.values() if model in q.models)
            raise InvalidOption(f"pass {p.name!r} does not take {what}; passes that do: {takes}")
    facts = graph_facts(graph)
    done: list[str] = []
    for p in passes:
        missing = [f for f in p.requirements(options) if f not in facts]
        if missing:
            providers = [q.name for q in REGISTRY.values() if missing[0] in q.guarantees]
            hint = f"run {' or '.join(repr(n) for n in providers)} before it" if providers else "it cannot run here"
            after = f" (after {', '.join(done)})" if done else ""
            raise InvalidOption(f"pass {p.name!r} requires a graph that is {missing[0]} ({FACTS[missing[0]]}){after}: {hint}")
        facts |= set(p.guarantees)
        done.append(p.name)


def validate_options(passes: list[Pass], options: dict[str, Any]) -> None:
    """Every option must belong to a pass (of any pipeline) or be common, and be well typed for
    each pass of this pipeline that reads it."""
    from .options import OptionError, fields_of, resolve

    known: dict[str, list[str]] = {}
    for p in REGISTRY.values():
        cls = p.options_class
        if cls is not None:
            for f in fields_of(cls):
                known.setdefault(f, []).append(p.name)
    for key in options:
        if key not in known and key not in COMMON_OPTIONS:
            raise OptionError(f"unknown option {key!r}; options of the passes: {', '.join(sorted(set(known) | set(COMMON_OPTIONS)))} "
                              "(see `snc passes`)")
    if "hw" in options and options["hw"] is not None:
        from snc.hw import load_profile

        load_profile(options["hw"])  # an unknown chip fails here, before any work
    for p in passes:
        cls = p.options_class
        if cls is not None:
            resolve(p.name, cls, options)


def run_pipeline(graph: Graph, names: list[str] | tuple[str, ...], ctx: PassContext) -> Graph:
    """Check the order and the options, then run the named passes in order. The report of this
    run goes into ``meta["report"]``; ``meta["pass_times"]`` has each pass's name, seconds and
    a one-line summary of what it changed."""
    passes = [get(n) for n in names]
    check_order(graph, passes, ctx.options)
    validate_options(passes, ctx.options)
    start = len(ctx.report)
    timings = []
    for p in passes:
        if ctx.progress is not None:
            ctx.progress(p.name)
        first = len(ctx.report)
        sims = len(ctx.simulations)
        t0 = time.perf_counter()
        graph = p(graph, ctx)
        seconds = time.perf_counter() - t0
        if "activity" in p.invalidates:
            ctx.analysis.invalidate()
        changes = [e["message"] for e in ctx.report[first:]]
        timings.append({"name": p.name, "seconds": round(seconds, 4), "changes": changes,
                        "simulations": len(ctx.simulations) - sims})
        if ctx.pass_done is not None:
            ctx.pass_done(timings[-1])
    graph.meta.setdefault("report", [])
    graph.meta["report"] = list(graph.meta["report"]) + ctx.report[start:]
    graph.meta["passes"] = list(graph.meta.get("passes", [])) + [p.name for p in passes]
    graph.meta["pass_times"] = timings
    return graph
