"""Neuron models declare their traits once; every consumer asks the model, not the kind string.

A ``NeuronModel`` says what a population kind is to each consumer of the IR:

* its node class (the IR dataclass, so artifacts and ``inspect`` know it) and its state
  variables with how a spike resets them (documentation that ``snc inspect`` and the docs show);
* float dynamics: ``float_state(node, batch)`` -> dict of (B, n) arrays and
  ``float_step(node, state, current)`` -> (B, n) bool spikes, one time step, current (B, n)
  float32 (the summed synaptic input; the model adds its own bias);
* fixed point: ``quantize(node, name, step, vth)`` -> the node with its integer parameters,
  where ``step`` is the float value of one unit of synaptic input ``a`` per neuron and ``vth``
  the integer threshold mantissa quantize chose (a spike when v > vth << 6); then
  ``fixed_state(node, batch)`` and ``fixed_step(node, state, a, bias)`` with ``a`` the (B, n)
  int64 shifted synaptic input and ``bias`` the (B, n) int64 bias in v units (its own bias plus
  direct input);
* the Lava process that implements it (``lava``; None: Lava has none) and, for snc's Lava
  emitter, ``lava_params(node, name, fixed)`` -> ``{"process": "LIF", "du": ..., "dv": ...}``:
  the process and the parameters that override the emitter's defaults for the population
  (Lava's integer decays here), raising ``UnsupportedOperator`` for settings the process lacks;
  its NIR node name;
* for energy estimates, the relative cost of one neuron update (``update_cost``, IF = 1).

The built-in IF and LIF are registered with ``builtin=True``: the simulator, quantize, the Lava
emitter and the rate-limit evaluator implement them with their own optimised code. Any other
model runs through the callables it declares, and a consumer that needs a trait the model does
not declare raises ``UnsupportedOperator`` naming the node and the kind (``require``).

Other packages add models with the ``snc.neurons`` entry point; a kind not registered yet is
looked up there (``models()``, ``model_of``), so an artifact of a plug-in model loads as soon
as the plug-in is installed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from snc.errors import PluginError, UnsupportedOperator

from .node import NEURON, Node

#: consumers and the traits they need from a non-built-in model
CAPABILITIES = {
    "float": ("float_state", "float_step"),
    "fixed": ("fixed_state", "fixed_step"),
    "quantize": ("quantize",),
    "lava": ("lava", "lava_params"),
    "rate": ("rate",),
    "nir": ("nir",),
}


@dataclass(frozen=True)
class NeuronModel:
    kind: str
    node_class: type
    state: tuple[str, ...]
    reset: str
    float_state: Callable[[Node, int], dict] | None = None
    float_step: Callable[[Node, dict, Any], Any] | None = None
    quantize: Callable[..., Node] | None = None
    fixed_state: Callable[[Node, int], dict] | None = None
    fixed_step: Callable[[Node, dict, Any, Any], Any] | None = None
    rate: Callable | None = None  # the ANN activation the rate of a population approximates (rate-limit evaluator)
    lava: str | None = None
    lava_params: Callable[..., dict] | None = None  # (node, name, fixed) -> {"process", ...}; refuses what it lacks
    nir: str | None = None
    update_cost: float = 1.0
    builtin: bool = False
    description: str = ""

    def supports(self, capability: str) -> bool:
        if self.builtin:
            return capability != "nir" or self.nir is not None
        return all(getattr(self, t) is not None for t in CAPABILITIES[capability])


_MODELS: dict[str, NeuronModel] = {}
_LOADED: set[str] = set()  # entry points already registered
GROUP = "snc.neurons"


def register(model: NeuronModel) -> NeuronModel:
    """Add ``model`` (a kind may be registered once; the same object again is a no-op)."""
    if not isinstance(model, NeuronModel):
        raise TypeError(f"register() takes a NeuronModel, not {type(model).__name__}")
    old = _MODELS.get(model.kind)
    if old is not None and old is not model:
        raise ValueError(f"neuron model {model.kind!r} is registered already")
    if getattr(model.node_class, "kind", None) != model.kind or getattr(model.node_class, "role", None) != NEURON:
        raise ValueError(f"neuron model {model.kind!r}: its node class must have kind {model.kind!r} and role 'neuron'")
    _MODELS[model.kind] = model
    from .kinds import KINDS  # artifacts read the kind

    KINDS[model.kind] = model.node_class
    return model


def _load_plugins() -> None:
    """Register the models of installed ``snc.neurons`` entry points not loaded yet (each gives a
    NeuronModel, or a function returning one). A broken plug-in is one PluginError line."""
    from importlib import metadata

    for ep in metadata.entry_points(group=GROUP):
        if ep.name in _LOADED:
            continue
        _LOADED.add(ep.name)
        try:
            obj = ep.load()
        except Exception as exc:  # the plug-in's own import error
            raise PluginError(f"plug-in {ep.name!r} of {GROUP} ({ep.value}) failed to load: {type(exc).__name__}: {exc}") from None
        if callable(obj) and not isinstance(obj, NeuronModel):
            obj = obj()
        if not isinstance(obj, NeuronModel):
            raise PluginError(f"plug-in {ep.name!r} of {GROUP} gives {type(obj).__name__}, not a NeuronModel")
        try:
            register(obj)
        except ValueError as exc:
            raise PluginError(f"plug-in {ep.name!r} of {GROUP}: {exc}") from None


def models() -> dict[str, NeuronModel]:
    """Every known model, plug-ins included."""
    _load_plugins()
    return dict(_MODELS)


def model_of(kind: str) -> NeuronModel | None:
    if kind not in _MODELS:
        _load_plugins()
    return _MODELS.get(kind)


def node_class(kind: str) -> type | None:
    model = model_of(kind)
    return None if model is None else model.node_class


def require(node, name: str, consumer: str, capability: str) -> NeuronModel | None:
    """The model of a neuron population ``node`` when ``consumer`` can run it (its built-in code,
    or the traits ``capability`` needs); else ``UnsupportedOperator`` naming node and kind. None
    for nodes that are not neuron populations."""
    if node.role != NEURON:
        return None
    model = model_of(node.kind)
    if model is None:
        raise UnsupportedOperator(f"{consumer}: {node.kind} is not a registered neuron model", node=name)
    if not model.supports(capability):
        missing = [t for t in CAPABILITIES[capability] if getattr(model, t) is None]
        raise UnsupportedOperator(f"{consumer} cannot run {node.kind} neurons: the model declares no {', '.join(missing)}", node=name)
    return model
