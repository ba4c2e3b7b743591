"""snc: the spiking neuromorphic compiler.

Public API (heavy dependencies such as torch are imported only when used):

    import snc
    graph = snc.load_model("model.onnx")                 # frontends -> ANN graph (IR)
    snn = snc.compile(graph, calib=x_calib)              # passes -> spiking graph
    result = snc.simulate(snn, x_test, labels=y_test, timesteps=64)
    snc.save(snn, "model.snir"); snn = snc.load("model.snir")
"""
from __future__ import annotations

from typing import Any

from . import errors
from .errors import (
    ArtifactError, BackendError, CalibrationError, HardwareProfileError, InvalidData, InvalidGraph,
    InvalidModel, InvalidOption, MappingError, PluginError, ShapeError, SncError, UnsupportedOperator,
)

__version__ = "0.1.0"

_LAZY = {
    # name -> (module, attribute)
    "Graph": ("snc.ir", "Graph"),
    "ir": ("snc.ir", None),
    "save": ("snc.ir.artifact", "save"),
    "load": ("snc.ir.artifact", "load"),
    "load_model": ("snc.frontends", "load_model"),
    "from_torch": ("snc.frontends.torch", "from_torch"),
    "from_onnx": ("snc.frontends.onnx", "from_onnx"),
    "compile": ("snc.pipeline", "compile"),
    "CompileOptions": ("snc.pipeline", "CompileOptions"),
    "passes": ("snc.passes", None),
    "simulate": ("snc.backends.sim", "simulate"),
    "distributed": ("snc.distributed", None),  # snc.distributed.estimate(..., client=...), needs snc[distributed]
    "SimResult": ("snc.backends.sim", "SimResult"),
    "evaluate_ann": ("snc.backends.analog", "evaluate"),
    "registry": ("snc.registry", None),
    "Frontend": ("snc.registry", "Frontend"),
    "Backend": ("snc.registry", "Backend"),
}

__all__ = sorted(set(_LAZY) | {
    "errors", "SncError", "InvalidModel", "UnsupportedOperator", "ShapeError", "InvalidGraph",
    "InvalidData", "InvalidOption", "ArtifactError", "CalibrationError", "MappingError", "HardwareProfileError",
    "BackendError", "PluginError", "__version__",
})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'snc' has no attribute {name!r}")
