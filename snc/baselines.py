"""Baselines at matching levels of inclusion: what an ANN of the same network costs on the same
data, and what the SNN costs counted the same way, so that every ANN / SNN ratio is like for
like and names its level. Energies are J per inference (one sample, all T time steps).

``compute`` (45 nm arithmetic, Horowitz ISSCC 2014, in the number format of ``--baseline``)::

    ANN = sum_l MACs_l E_MAC + sum_l [l has a bias] outputs_l E_add
    SNN = ACs E_add + host MACs E_MAC + T N E_add + resets E_add + leak MACs E_MAC

  MACs_l = C_out H_out W_out (C_in / groups) k_h k_w for a convolution, N_in N_out for a dense
  layer. ACs are the simulation's synaptic operations (spikes x non-zero synapses reached, through
  pooling as the chip executes them: E_AC = the format's add); host MACs are the first layer of a
  direct (analog) input, computed once per sample. Neuron updates follow Lemaire et al. 2022: one
  add per neuron and step (v += I + b, every neuron of every population, readouts included:
  T N), one add per spike (the reset) and, per neuron and step, one MAC for each state variable
  that decays by a fraction strictly between 0 and 1 (a LIF membrane leak; none for IF). The
  threshold comparison is not counted, nor is the ANN's ReLU. No memory, no static power.

``compute+memory`` (Lemaire et al., ICONIP 2022, arXiv 2210.13107, as the authors implement it in
LEAT-EDGE/qualia-plugin-snn ``EnergyEstimationMetric``): 32-bit integer operations (E_add 0.1 pJ,
E_mul 3.1 pJ, a MAC = E_mul + E_add) and SRAM accesses costing
``E_ram(n, w) = 1.09e-5 n w + 13.2 pJ`` for a memory of n elements of w = 32 bits. ``fnn_terms``,
``snn_layer_terms`` and ``population_terms`` list every term with its count (their docstrings
give the formulas). The memory of an access is: the layer's input tensor (ANN input reads), its
weights (weight reads), its biases (one per output channel), its output tensor (ANN output
writes), the target population's potentials (SNN potential reads and writes); Lemaire leave the
size of the SNN's spike FIFOs a parameter: snc sizes them to the tensor they carry (input FIFO:
the layer's input; output FIFO: the population), which moves a FIFO access by under 1 pJ of its
13.2 pJ below 2,000 elements. Pooling is charged nothing on either side, as in Lemaire's model
(it has no pooling term): an average or sum pool between two populations is folded into the
next layer's synapses (theta_in counts the spikes of the population before the pool), and a max
pool's comparisons are not charged to the ANN, while the neurons and synapses of snc's spiking
max-pool construct are charged to the SNN (they are what it executes).

``device``: published measurements of a named reference network (``device_baselines.toml``,
e.g. NxTF's MNIST CNN: CPU 19 mJ, GPU 111 mJ, Loihi 0.66 mJ per inference) against snc's chip
estimate of the network being estimated, including the static power of the whole chips it
touches and the host's work: like for like only when the two networks are the same.

The level functions are pure functions of per-layer shapes (``Layer``), per-population counts
(``Population``) and measured totals; ``network`` reads them off a spiking graph and a
simulation result.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from snc.errors import InvalidOption

LEVELS = ("compute", "compute+memory", "device")

# Lemaire et al. 2022: Horowitz 2014 45 nm 32-bit integer operations and a linear fit of Horowitz's
# SRAM energies (8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ). ENERGY_AND_METRICS.md section 5.2.
LEMAIRE_E_ADD = 0.1e-12  # J per 32-bit integer add
LEMAIRE_E_MUL = 3.1e-12  # J per 32-bit integer multiply
LEMAIRE_BITS = 32  # width of one memory element
RAM_PJ_PER_ELEMENT_BIT = 1.09e-5
RAM_PJ_OFFSET = 13.2

DEVICE_TABLE = Path(__file__).resolve().parent / "hw" / "device_baselines.toml"


def e_ram(elements: float, bits: int = LEMAIRE_BITS) -> float:
    """Energy (J) of one read or write in an SRAM of ``elements`` words of ``bits`` bits (Lemaire)."""
    return (RAM_PJ_PER_ELEMENT_BIT * float(elements) * bits + RAM_PJ_OFFSET) * 1e-12


@dataclass(frozen=True)
class Layer:
    """One weighted operator (Dense or Conv2d) with its shapes and the spikes reaching it.

    kind:         ``"conv"`` or ``"fc"``.
    in_shape:     the input tensor as the ANN computes it: (C_in, H_in, W_in) or (N_in,) (any
                  shape for ``fc``: N_in is its size).
    out_shape:    (C_out, H_out, W_out) or (N_out,).
    kernel, stride, groups: convolution geometry.
    bias:         whether the layer adds a bias (ANN: one add and one bias read per output).
    neurons:      neurons of the population it feeds: the potentials an input spike updates
                  (0: the outputs, C_out H_out W_out or N_out).
    theta_in:     spikes per inference arriving from spiking sources.
    analog_input: fed by a direct (analog) input: the SNN computes it once per sample, as an
                  ANN layer (snc's host computes the first layer's current, as NxTF does).
    ann:          part of the source ANN (False for the synapses of snc's max-pool construct).
    snn:          charged on the SNN side (False for a layer composed into the next one).
    """

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False
    neurons: int = 0
    theta_in: float = 0.0
    analog_input: bool = False
    ann: bool = True
    snn: bool = True

    @property
    def inputs(self) -> int:
        return int(math.prod(self.in_shape))

    @property
    def outputs(self) -> int:
        return int(math.prod(self.out_shape))

    @property
    def channels_out(self) -> int:
        return int(self.out_shape[0]) if self.kind == "conv" else self.outputs

    @property
    def taps(self) -> int:
        """Multiply-accumulates per output: (C_in / groups) k_h k_w, or N_in."""
        if self.kind == "conv":
            return int(self.in_shape[0]) // self.groups * self.kernel[0] * self.kernel[1]
        return self.inputs

    @property
    def macs(self) -> int:
        return self.outputs * self.taps

    @property
    def weights(self) -> int:
        return self.channels_out * self.taps

    @property
    def potentials(self) -> int:
        return self.neurons or self.outputs


@dataclass(frozen=True)
class Population:
    """One population of the SNN (spiking or readout) and its activity per inference.

    neurons:   N, updated every step.
    theta_out: spikes it emits per inference (0 for a non-spiking readout).
    leak:      multiply-accumulates per neuron and step for its decays (0 for IF, 1 for a LIF
               with a membrane leak, one more for a decaying synaptic current).
    bias_size: elements of its bias memory (one per output channel of the layer feeding it), 0
               when it has no bias.
    """

    name: str
    neurons: int
    theta_out: float = 0.0
    leak: int = 0
    bias_size: int = 0


@dataclass(frozen=True)
class Term:
    """One line of an energy account: ``count`` operations or accesses of ``energy_each_j``."""

    what: str
    part: str  # "ops", "addressing" or "memory"
    count: float
    energy_each_j: float

    @property
    def energy_j(self) -> float:
        return self.count * self.energy_each_j


# --- Lemaire et al. 2022 ---------------------------------------------------------------------------
def fnn_terms(layer: Layer, e_add: float = LEMAIRE_E_ADD, e_mul: float = LEMAIRE_E_MUL,
              bits: int = LEMAIRE_BITS) -> list[Term]:
    """The ANN (FNN) layer, Lemaire's Eqs. 1-4, 6, 11-12 and addressing. With O = C_out H_out W_out
    and K = (C_in / groups) k_h k_w for a convolution (O = N_out, K = N_in for a dense layer):
    O K MACs and O adds; input reads O K (dense: N_in) in a memory of the input tensor; weight
    reads O K in the weight memory; bias reads O (when it has a bias); output writes O;
    addressing adds C_in H_in W_in + O + C_out k_h k_w (dense: N_in N_out)."""
    mac = e_mul + e_add
    out, macs = layer.outputs, layer.macs
    terms = [Term("MACs", "ops", macs, mac), Term("output accumulations", "ops", out, e_add),
             Term("input reads", "memory", macs if layer.kind == "conv" else layer.inputs, e_ram(layer.inputs, bits)),
             Term("weight reads", "memory", macs, e_ram(layer.weights, bits))]
    if layer.bias:
        terms.append(Term("bias reads", "memory", out, e_ram(layer.channels_out, bits)))
    terms.append(Term("output writes", "memory", out, e_ram(out, bits)))
    if layer.kind == "conv":
        addr = layer.inputs + out + layer.channels_out * layer.kernel[0] * layer.kernel[1]
    else:
        addr = macs
    terms.append(Term("addressing adds", "addressing", addr, e_add))
    return terms


def snn_layer_terms(layer: Layer, e_add: float = LEMAIRE_E_ADD, e_mul: float = LEMAIRE_E_MUL,
                    bits: int = LEMAIRE_BITS) -> list[Term]:
    """The synaptic part of an SNN layer for theta_in input spikes per inference (Lemaire's
    Eqs. 1.4/2.4 first term, 5, 7f/8f, 9/10 and 14/15 first terms, 16-17). Per input spike, with
    F = C_out / groups: convolution: ceil(k_h/s_h) ceil(k_w/s_w) F accumulations, F k_h k_w weight
    reads, as many potential reads and writes, 2 addressing MACs and k_h k_w addressing adds;
    dense: N_out accumulations, weight reads, potential reads, potential writes and addressing
    adds. One input-FIFO read per spike. A layer fed by an analog input is computed once per
    sample as the ANN layer (``fnn_terms``, prefixed ``host``)."""
    mac = e_mul + e_add
    terms: list[Term] = []
    if layer.analog_input:
        terms += [Term(f"host {t.what}", t.part, t.count, t.energy_each_j) for t in fnn_terms(layer, e_add, e_mul, bits)]
    theta = float(layer.theta_in)
    if theta == 0.0 and layer.analog_input:
        return terms
    if layer.kind == "conv":
        kh, kw = layer.kernel
        sh, sw = layer.stride
        fan = layer.channels_out // layer.groups
        reach = fan * kh * kw
        terms += [Term("synaptic accumulations", "ops", theta * math.ceil(kh / sh) * math.ceil(kw / sw) * fan, e_add),
                  Term("weight reads", "memory", theta * reach, e_ram(layer.weights, bits)),
                  Term("potential reads", "memory", theta * reach, e_ram(layer.potentials, bits)),
                  Term("potential writes", "memory", theta * reach, e_ram(layer.potentials, bits)),
                  Term("input FIFO reads", "memory", theta, e_ram(layer.inputs, bits)),
                  Term("addressing MACs", "addressing", 2 * theta, mac),
                  Term("addressing adds", "addressing", theta * kh * kw, e_add)]
    else:
        n_out = layer.outputs
        terms += [Term("synaptic accumulations", "ops", theta * n_out, e_add),
                  Term("weight reads", "memory", theta * n_out, e_ram(layer.weights, bits)),
                  Term("potential reads", "memory", theta * n_out, e_ram(layer.potentials, bits)),
                  Term("potential writes", "memory", theta * n_out, e_ram(layer.potentials, bits)),
                  Term("input FIFO reads", "memory", theta, e_ram(layer.inputs, bits)),
                  Term("addressing adds", "addressing", theta * n_out, e_add)]
    return terms


def population_terms(pop: Population, timesteps: int, e_add: float = LEMAIRE_E_ADD, e_mul: float = LEMAIRE_E_MUL,
                     bits: int = LEMAIRE_BITS) -> list[Term]:
    """The neuron part of an SNN layer (Lemaire's second and third terms): per step, every neuron
    accumulates once (T N adds), reads and writes its potential (T N each) and reads its bias
    (T N, when it has one); leak MACs leak T N; one reset add and one output-FIFO write per
    output spike (theta_out)."""
    tn = float(timesteps) * pop.neurons
    terms = [Term("neuron accumulations", "ops", tn, e_add),
             Term("resets", "ops", pop.theta_out, e_add)]
    if pop.leak:
        terms.append(Term("leak MACs", "ops", pop.leak * tn, e_mul + e_add))
    terms += [Term("potential reads (per step)", "memory", tn, e_ram(pop.neurons, bits)),
              Term("potential writes (per step)", "memory", tn, e_ram(pop.neurons, bits))]
    if pop.bias_size:
        terms.append(Term("bias reads", "memory", tn, e_ram(pop.bias_size, bits)))
    terms.append(Term("output FIFO writes", "memory", pop.theta_out, e_ram(pop.neurons, bits)))
    return terms


def _parts(terms: Iterable[Term]) -> dict[str, float]:
    out = {"ops_j": 0.0, "addressing_j": 0.0, "memory_j": 0.0}
    for t in terms:
        out[f"{t.part}_j"] += t.energy_j
    return out


def _ratio(ann: float, snn: float) -> float:
    return ann / snn if snn > 0 else float("inf")


def lemaire_ann(layers: Iterable[Layer], **kw) -> list[Term]:
    return [t for layer in layers if layer.ann for t in fnn_terms(layer, **kw)]


def lemaire_snn(layers: Iterable[Layer], populations: Iterable[Population], timesteps: int, **kw) -> list[Term]:
    return ([t for layer in layers if layer.snn for t in snn_layer_terms(layer, **kw)]
            + [t for pop in populations for t in population_terms(pop, timesteps, **kw)])


def compute_memory_level(layers: list[Layer], populations: list[Population], timesteps: int) -> dict[str, Any]:
    """Level ``compute+memory``: Lemaire et al. 2022 on both sides."""
    ann, snn = lemaire_ann(layers), lemaire_snn(layers, populations, timesteps)
    a, s = sum(t.energy_j for t in ann), sum(t.energy_j for t in snn)
    return {
        "ann_energy_j": a, "snn_energy_j": s, "ratio": _ratio(a, s),
        "what": ("Lemaire et al. 2022: 32-bit integer ops (add 0.1 pJ, mul 3.1 pJ) + SRAM accesses "
                 "(1.09e-5 n w + 13.2 pJ, w = 32: weights, biases, inputs/outputs, potentials, spike FIFOs) "
                 "+ addressing; pooling not charged; no static power"),
        "ann": _parts(ann), "snn": _parts(snn),
    }


# --- compute only ----------------------------------------------------------------------------------
def compute_level(layers: list[Layer], populations: list[Population], timesteps: int, *, acs: float,
                  host_macs: float, e_mac: float, e_add: float, fmt: str = "") -> dict[str, Any]:
    """Level ``compute``: arithmetic only, both sides in the same number format (module docstring)."""
    macs = float(sum(layer.macs for layer in layers if layer.ann))
    bias_adds = float(sum(layer.outputs for layer in layers if layer.ann and layer.bias))
    updates = float(timesteps) * sum(p.neurons for p in populations)
    resets = float(sum(p.theta_out for p in populations))
    leak = float(timesteps) * sum(p.leak * p.neurons for p in populations)
    ann = macs * e_mac + bias_adds * e_add
    snn = (acs + updates + resets) * e_add + (host_macs + leak) * e_mac
    label = f" in {fmt}" if fmt else ""
    return {
        "ann_energy_j": ann, "snn_energy_j": snn, "ratio": _ratio(ann, snn),
        "what": (f"compute only, operation energies{label} (horowitz45: Horowitz 2014, 45 nm): ANN = MACs x E_MAC + bias adds x E_add; "
                 f"SNN = ACs x E_add + host MACs x E_MAC + neuron updates (T x N, 1 add) + resets (1 add per spike) "
                 f"+ leak MACs; no memory, no static power"),
        "ann": {"macs": macs, "bias_adds": bias_adds, "energy_mac_j": e_mac, "energy_add_j": e_add},
        "snn": {"acs": float(acs), "host_macs": float(host_macs), "neuron_updates": updates, "resets": resets,
                "leak_macs": leak, "energy_ac_j": e_add, "energy_mac_j": e_mac},
    }


# --- device ----------------------------------------------------------------------------------------
def device_table(path: str | Path = DEVICE_TABLE) -> dict[str, dict[str, Any]]:
    """The published reference networks, by name."""
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def device_reference(name: str) -> dict[str, Any]:
    """The entry ``name`` of the device table; ``InvalidOption`` listing the known names otherwise."""
    table = device_table()
    if name not in table:
        raise InvalidOption(f"unknown device baseline {name!r}; known reference networks: {', '.join(sorted(table))}")
    return table[name]


def device_level(name: str, snn_energy_j: float, hw: str) -> dict[str, Any]:
    """Level ``device``: the lowest published ANN device energy of reference network ``name``
    against ``snn_energy_j``, snc's chip estimate (static power of whole chips and host included)."""
    ref = device_reference(name)
    device, ann = min(ref["ann"].items(), key=lambda kv: kv[1])
    return {
        "ann_energy_j": float(ann), "snn_energy_j": snn_energy_j, "ratio": _ratio(float(ann), snn_energy_j),
        "what": (f"published {ref['title']} on {device} (the lowest published ANN figure; {ref['source']}) vs "
                 f"snc's {hw} estimate of this network incl. static power of the whole chips and the host; "
                 f"like for like only if this network is the reference network"),
        "reference": name, "ann_device": device,
        "published_ann_j": {k: float(v) for k, v in ref["ann"].items()},
        "published_snn_j": {k: float(v) for k, v in ref.get("snn", {}).items()},
    }


# --- reading the network ---------------------------------------------------------------------------
def _decays(node) -> int:
    """State variables that decay by a fraction strictly between 0 and 1 (one multiply each)."""
    return sum(1 for f in getattr(node, "__dataclass_fields__", {})
               if f.startswith("decay_") and 0.0 < float(getattr(node, f)) < 1.0)


def network(graph, result) -> tuple[list[Layer], list[Population]]:
    """Layers and populations of a spiking ``graph`` with the activity of a simulation ``result``.

    Every Dense and Conv2d is a layer with the shapes the graph infers. On the SNN side a
    projection (the operators between a source population and a target population) is charged
    to its last weighted operator that is not part of a max-pool construct (else to its last
    construct operator): theta_in of that layer gathers the spikes of every source whose
    projection it ends; a projection without a weighted operator (an identity skip) is charged
    nothing; a weighted operator that ends no projection (composed into the next one) is
    charged to the ANN only. A layer has a bias when the population it feeds has one.
    """
    from snc.ir.annotations import is_maxpool_construct
    from snc.ir.projections import walk

    shapes = graph.infer_shapes()
    pops = result.populations
    theta: dict[str, float] = {}
    analog: set[str] = set()
    target_of: dict[str, str] = {}
    defining: set[str] = set()
    fans = walk(graph)
    for fan in fans:
        for op in fan.ops:
            target_of.setdefault(op, fan.target)
        for inc in fan.incoming:
            weighted = [op for op in inc.ops if graph.nodes[op].kind in ("Dense", "Conv2d")]
            if not weighted:
                continue
            primary = [op for op in weighted if not is_maxpool_construct(graph.nodes[op])]
            op = (primary or weighted)[-1]
            defining.add(op)
            stats = pops.get(inc.source)
            if stats is not None and stats.analog:
                analog.add(op)
            elif stats is not None:
                theta[op] = theta.get(op, 0.0) + stats.spikes_per_sample
    populations: list[Population] = []
    bias_size: dict[str, int] = {}
    layers: list[Layer] = []
    for name in graph.topological_order():
        node = graph.nodes[name]
        if node.kind not in ("Dense", "Conv2d") or name not in target_of:
            continue
        (src,) = graph.inputs_of(name)
        target = graph.nodes[target_of[name]]
        has_bias = getattr(target, "bias", None) is not None and bool(getattr(target, "bias").any())
        out_shape = tuple(int(s) for s in shapes[name])
        conv = node.kind == "Conv2d"
        layer = Layer(
            name=name, kind="conv" if conv else "fc", in_shape=tuple(int(s) for s in shapes[src]), out_shape=out_shape,
            kernel=tuple(int(k) for k in node.weight.shape[2:]) if conv else (1, 1),
            stride=tuple(int(s) for s in node.stride) if conv else (1, 1),
            groups=int(node.groups) if conv else 1, bias=has_bias,
            neurons=int(pops[target_of[name]].neurons) if target_of[name] in pops else 0,
            theta_in=theta.get(name, 0.0), analog_input=name in analog,
            ann=not is_maxpool_construct(node), snn=name in defining,
        )
        layers.append(layer)
        if has_bias and layer.ann:
            bias_size.setdefault(target_of[name], layer.channels_out)
    for fan in fans:
        stats = pops.get(fan.target)
        if stats is None:
            continue
        node = graph.nodes[fan.target]
        populations.append(Population(
            name=fan.target, neurons=int(stats.neurons), theta_out=stats.spikes_per_sample if stats.spiking else 0.0,
            leak=_decays(node) if stats.spiking else 0, bias_size=bias_size.get(fan.target, 0),
        ))
    return layers, populations
