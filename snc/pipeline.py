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

    calib: calibration samples (N, *input_shape) for data-based passes (threshold balancing).
    Returns a new graph; ``graph.meta["report"]`` says what each pass changed.
    """
    if not isinstance(model, Graph):
        from .frontends import load_model

        model = load_model(model)
    graph = model
    if graph.is_spiking and any(n.role == "readout" for n in graph.nodes.values()) and passes is None:
        # Already compiled (.snir): nothing of the default conversion applies.
        names: Sequence[str] = ()
    else:
        names = tuple(passes) if passes is not None else DEFAULT_PIPELINE
    if calib is not None and graph.input_names:
        name = graph.input_names[0]
        calib = graph.nodes[name].conform(calib, name)
    ctx = PassContext(calibration=calib, percentile=percentile, timesteps=timesteps, options=dict(options), progress=progress)
    out = run_pipeline(graph, names, ctx)
    out.meta["timesteps"] = int(timesteps)
    return out
