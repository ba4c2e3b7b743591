"""``compile``: frontend + pass pipeline, the API behind ``snc compile``."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from snc.ir import Graph

from .passes import DEFAULT_PIPELINE, PassContext, run_pipeline


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
    **options: Any,
) -> Graph:
    """Compile a model (a graph, or a path any frontend reads) into a spiking graph.

    calib:   calibration samples (N, *input_shape) for data-based passes (balance, quantize, prune).
    passes:  pass names in order; default: fold-bn, fold-affine, convert, balance, quantize,
             prune, map (``snc.passes.CONVERSION`` for a float network without hardware).
    options: options of the passes: hw (profile for quantize/prune/map; default loihi),
             weight_bits, scaling, rounding, prune_sparsity, prune_scope, prune_activity,
             max_chips, labels (calibration labels, to report accuracy), ...
    Returns a new graph; ``graph.meta["report"]`` says what each pass changed.
    """
    if not isinstance(model, Graph):
        from .frontends import load_model

        model = load_model(model)
    graph = model
    if graph.is_spiking and passes is None:
        # Already compiled (.snir): nothing of the default pipeline applies.
        names: Sequence[str] = ()
    else:
        names = tuple(passes) if passes is not None else DEFAULT_PIPELINE
    # Mapping onto the default chip is best effort; a chip asked for by name must fit.
    options.setdefault("map_strict", "hw" in options or (passes is not None and "map" in passes))
    if calib is not None and graph.input_names:
        name = graph.input_names[0]
        calib = graph.nodes[name].conform(calib, name)
    ctx = PassContext(calibration=calib, percentile=percentile, timesteps=timesteps, options=dict(options), progress=progress)
    out = run_pipeline(graph, names, ctx)
    out.meta["timesteps"] = int(timesteps)
    return out
