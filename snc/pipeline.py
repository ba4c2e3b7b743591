"""``compile``: frontend + pass pipeline, the API behind ``snc compile``."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from snc.ir import Graph

from .passes import DEFAULT_PIPELINE, SEQUENCE_PIPELINE, PassContext, run_pipeline


@dataclass
class CompileOptions:
    """Options of ``compile``.

    passes:      pass names in order (default: the default pipeline).
    percentile:  activation percentile for threshold balancing (99.9; 100 = maximum).
    timesteps:   default number of simulation steps stored in the artifact.
    options:     options of individual passes.
    """

    passes: Sequence[str] = DEFAULT_PIPELINE
    percentile: float = 99.9
    timesteps: int = 64
    options: dict[str, Any] = field(default_factory=dict)


def compile(
    model: Graph | str | os.PathLike,
    calib: np.ndarray | None = None,
    *,
    passes: Sequence[str] | None = None,
    percentile: float = 99.9,
    timesteps: int = 64,
    progress: Callable[[str], None] | None = None,
    pass_done: Callable[[dict[str, Any]], None] | None = None,
    verify: bool | None = None,
    **options: Any,
) -> Graph:
    """Compile a model (a graph, or a path any frontend reads) into a spiking graph.

    calib:   calibration samples (N, *input_shape) for data-based passes (balance, quantize, prune).
    passes:  pass names in order; default: fold-bn, fold-affine, convert, balance, quantize,
             prune, map (``snc.passes.CONVERSION`` for a float network without hardware).
    verify:  prove passes by simulation (quantize: float vs fixed point; prune: re-simulation
             under both timings; savings on the chip). Default: the environment variable
             SNC_VERIFY=1. Without it a compile simulates nothing: passes read the shared
             calibration analysis (one analog pass over the calibration data).
    options: options of the passes, checked against each pass's typed ``Options`` before any
             work (``snc passes`` lists them): hw (chip for quantize/prune/map; default loihi,
             where not fitting is reported, not an error), weight_bits, scaling, rounding,
             prune_sparsity, prune_scope, prune_activity, input_range, max_chips, labels
             (calibration labels, to report accuracy), ...
    progress:  called with each pass's name before it runs; pass_done with
               {name, seconds, changes, simulations} after.
    Returns a new graph; ``graph.meta["report"]`` says what each pass changed and
    ``graph.meta["pass_times"]`` how long each took.
    """
    from snc.backends.sim import simulate
    from snc.estimate import estimate

    if not isinstance(model, Graph):
        from .frontends import load_model

        model = load_model(model)
    graph = model
    from snc.ir.sequence import is_sequence_model

    if is_sequence_model(graph):  # a language model: its own default pipeline
        names: Sequence[str] = tuple(passes) if passes is not None else (
            () if graph.meta.get("spike_code") else SEQUENCE_PIPELINE)
    elif graph.is_spiking and passes is None:
        # Already compiled (.snir): nothing of the default pipeline applies.
        names = ()
    else:
        names = tuple(passes) if passes is not None else DEFAULT_PIPELINE
    # Mapping onto the default chip is best effort (not fitting is reported); a chip asked for
    # by name must fit. Which passes run does not change this.
    options.setdefault("map_strict", options.get("hw") is not None)
    if calib is not None and graph.input_names:
        name = graph.input_names[0]
        calib = graph.nodes[name].conform(calib, name)
    ctx = PassContext(calibration=calib, percentile=percentile, timesteps=timesteps, options=dict(options),
                      progress=progress, pass_done=pass_done, simulator=simulate, estimator=estimate)
    if verify is not None:
        ctx.verify = bool(verify)
    out = run_pipeline(graph, names, ctx)
    out.meta["timesteps"] = int(timesteps)
    out.meta["compile"] = {"verify": ctx.verify, "simulations": ctx.simulations,
                           "analysis_passes": int(ctx.analysis.evaluations)}
    return out
