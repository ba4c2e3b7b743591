"""Plug-in registries: the model formats snc reads, the toolchains it emits to and runs on, and
the chips it targets.

Built-ins are registered here; an installed package extends each registry through a Python
entry point, without editing snc (``pyproject.toml`` of the plug-in)::

    [project.entry-points."snc.frontends"]
    myformat = "my_pkg:FRONTEND"        # a Frontend: suffixes + loader
    [project.entry-points."snc.backends"]
    mychip = "my_pkg:BACKEND"           # a Backend: exporter (`snc export --to`), simulator (`--backend`)
    [project.entry-points."snc.hw"]
    mychip = "my_pkg:profile"           # a HardwareProfile, a TOML document (dict) or a .toml path,
                                        # or a function returning one
    [project.entry-points."snc.neurons"]
    mymodel = "my_pkg:MODEL"            # a snc.ir.models.NeuronModel (its node class, traits, dynamics)

Entry-point *names* are read without importing the plug-in (``snc hw list``, ``--help``); an
entry is imported when it is used. A plug-in that fails to import, or that gives the wrong kind
of object, raises ``PluginError`` naming the group, the entry and the problem in one line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from snc.errors import PluginError

GROUPS = ("snc.frontends", "snc.backends", "snc.hw", "snc.neurons")


@dataclass(frozen=True)
class Frontend:
    """A model format: files whose suffix is in ``suffixes`` are read by ``load(path) -> Graph``."""

    name: str
    suffixes: tuple[str, ...]
    load: Callable[[Path], Any]
    description: str = ""


@dataclass(frozen=True)
class Backend:
    """A toolchain: ``export(graph, folder, timesteps=None) -> Path`` writes a program for it
    (``snc export --to NAME``); ``simulate(graph, data, *, labels, timesteps, arithmetic, timing,
    seed) -> SimResult`` runs a compiled graph on it (``snc simulate --backend NAME``). Either may
    be None."""

    name: str
    description: str = ""
    export: Callable[..., Path] | None = None
    simulate: Callable[..., Any] | None = None


# --- built-ins ------------------------------------------------------------------------------
def _load_onnx(path: Path):
    from snc.frontends.onnx import from_onnx

    return from_onnx(path)


def _load_pt2(path: Path):
    from snc.frontends.torch import load_pt2

    return load_pt2(path)


def _load_nir(path: Path):
    from snc.frontends.nir import load_nir

    return load_nir(path)


def _load_netx(path: Path):
    from snc.frontends.netx import load_netx

    return load_netx(path)


def _load_snir(path: Path):
    from snc.ir import load

    return load(path)


def _export_lava(graph, folder, timesteps=None):
    from snc.backends.lava import export

    return export(graph, folder, timesteps=timesteps)


def _simulate_lava(graph, data, *, labels=None, timesteps=None, arithmetic="fixed", timing="delay", seed=0, **kw):
    from snc.backends.lava import simulate_lava

    return simulate_lava(graph, data, timesteps=timesteps, cfg="fixed" if arithmetic == "fixed" else "float",
                         labels=labels, seed=seed, **kw)


def _export_nir(graph, path, timesteps=None, dt=None):
    from snc.backends.nir import DEFAULT_DT, export_nir

    return export_nir(graph, path, dt=dt or DEFAULT_DT)


def _export_netx(graph, path, timesteps=None):
    from snc.backends.netx import export_netx

    return export_netx(graph, path, timesteps=timesteps)


def _simulate_snc(graph, data, **kw):
    from snc.backends.sim import simulate

    return simulate(graph, data, **kw)


BUILTIN_FRONTENDS = {
    "onnx": Frontend("onnx", (".onnx",), _load_onnx, "ONNX models (opset 7-21)"),
    "torch": Frontend("torch", (".pt2",), _load_pt2, "torch.export programs (.pt2; never unpickled)"),
    "nir": Frontend("nir", (".nir",), _load_nir, "NIR graphs (.nir; dt 1e-4 s, forward Euler; snc.frontends.nir)"),
    "netx": Frontend("netx", (".net",), _load_netx, "lava-dl netx HDF5 networks (.net; CUBA dense/conv chains, fixed point)"),
    "snir": Frontend("snir", (".snir",), _load_snir, "snc artifacts"),
}
BUILTIN_BACKENDS = {
    "snc": Backend("snc", "snc's event simulator (float32 and Loihi fixed point)", simulate=_simulate_snc),
    "lava": Backend("lava", "Lava 0.10 programs (Loihi; run on Lava's CPU simulator)", export=_export_lava, simulate=_simulate_lava),
    "nir": Backend("nir", "NIR graphs (.nir file; a step is --dt seconds, default 1e-4)", export=_export_nir),
    "netx": Backend("netx", "lava-dl netx HDF5 networks (.net file; quantised CUBA chains)", export=_export_netx),
}


# --- entry points ---------------------------------------------------------------------------
def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """The installed entry points of ``group`` by name (nothing is imported)."""
    if group not in GROUPS:
        raise ValueError(f"unknown plug-in group {group!r}; snc's are {GROUPS}")
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def _load_entry(group: str, ep: metadata.EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:  # a plug-in's own import error, reported in one line
        raise PluginError(f"plug-in {ep.name!r} of {group} ({ep.value}) failed to load: {type(exc).__name__}: {exc}") from None


def _expect(group: str, name: str, obj: Any, cls: type) -> Any:
    if callable(obj) and not isinstance(obj, cls):
        obj = obj()
    if not isinstance(obj, cls):
        raise PluginError(f"plug-in {name!r} of {group} gives {type(obj).__name__}, not a {cls.__name__}")
    return obj


# --- frontends ------------------------------------------------------------------------------
def frontend_names() -> list[str]:
    return sorted(set(BUILTIN_FRONTENDS) | set(entry_points("snc.frontends")))


def frontends() -> dict[str, Frontend]:
    """Every frontend, plug-ins loaded (built-ins win a name clash)."""
    out = {}
    for name, ep in entry_points("snc.frontends").items():
        if name not in BUILTIN_FRONTENDS:
            out[name] = _expect("snc.frontends", name, _load_entry("snc.frontends", ep), Frontend)
    out.update(BUILTIN_FRONTENDS)
    return out


def frontend_for(path: str | os.PathLike) -> Frontend | None:
    """The frontend reading ``path`` (by suffix; built-ins first), or None."""
    suffix = Path(path).suffix.lower()
    for fe in BUILTIN_FRONTENDS.values():
        if suffix in fe.suffixes:
            return fe
    for fe in frontends().values():
        if suffix in (s.lower() for s in fe.suffixes):
            return fe
    return None


def suffixes() -> list[str]:
    """Suffixes of the built-in frontends and of the installed plug-ins (names only)."""
    out = [s for fe in BUILTIN_FRONTENDS.values() for s in fe.suffixes]
    return out + [f"(plug-in {n})" for n in entry_points("snc.frontends") if n not in BUILTIN_FRONTENDS]


# --- backends -------------------------------------------------------------------------------
def backend_names() -> list[str]:
    return sorted(set(BUILTIN_BACKENDS) | set(entry_points("snc.backends")))


def backend(name: str) -> Backend:
    """The backend called ``name`` (built-in or plug-in)."""
    if name in BUILTIN_BACKENDS:
        return BUILTIN_BACKENDS[name]
    eps = entry_points("snc.backends")
    if name not in eps:
        raise PluginError(f"unknown backend {name!r}; installed: {', '.join(backend_names())}")
    return _expect("snc.backends", name, _load_entry("snc.backends", eps[name]), Backend)


# --- hardware profiles ----------------------------------------------------------------------
def hw_plugin_names() -> list[str]:
    return sorted(entry_points("snc.hw"))


def hw_profile(name: str):
    """The HardwareProfile a ``snc.hw`` plug-in registers under ``name`` (validated like a file)."""
    from snc.hw import HardwareProfile, load_profile, parse_profile

    eps = entry_points("snc.hw")
    if name not in eps:
        raise PluginError(f"no hardware plug-in {name!r}")
    obj = _load_entry("snc.hw", eps[name])
    if callable(obj) and not isinstance(obj, HardwareProfile):
        obj = obj()
    if isinstance(obj, HardwareProfile):
        return obj
    if isinstance(obj, dict):
        return parse_profile(obj, f"plug-in {name!r} of snc.hw")
    if isinstance(obj, (str, os.PathLike)) and str(obj).lower().endswith(".toml"):
        return load_profile(Path(obj))
    raise PluginError(f"plug-in {name!r} of snc.hw gives {type(obj).__name__}, not a profile, TOML document or .toml path")


# --- neuron models --------------------------------------------------------------------------
def neuron_models() -> dict:
    """Every neuron model: the built-ins and the ``snc.neurons`` plug-ins (ir/models.py)."""
    from snc.ir.models import models

    return models()
