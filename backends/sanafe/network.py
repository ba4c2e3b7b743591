"""A mapped spiking graph and its input spike trains as a SANA-FE network description (JSON).

SANA-FE (Boyle et al., SLAM-Lab, ``sanafe`` on PyPI) simulates a spiking network on an
architecture description and reports energy per component and simulated time. snc checks its
own ``sanafe_loihi`` estimate against it: the same neurons on the same cores, the same synapses,
the same input spikes (``docs/validation.md``).

What is described:

* every Input population (encoding ``spikes``) as input neurons, each with its own
  ``loihi_inputs[k]`` soma unit (SANA-FE keeps a spike train per unit), placed on a core of
  the tile its first destination core is on (inputs cost no soma energy there; their spike
  messages cost what SANA-FE charges any message);
* every IF population (subtractive or zero reset, no refractory period) as ``loihi_lif``
  neurons with leak_decay 1 (no leak), threshold theta and bias b:
      v[t] = v[t-1] + I[t] + b,   spike when v > theta,   v -= theta ('soft') or v = 0 ('hard');
* a membrane Readout without leak as the same neuron with a threshold it never reaches;
* the composed synapses of every projection (``backends/plan.py``), zero weights left out;
* each neuron on the core of its block (``snc.ir.annotations.all_blocks``; several populations
  may share a core). snc's global core g sits on tile g // 4, slot g % 4, tile (x, y) =
  (tile % 8, tile // 8) of the 8 x 4 mesh; SANA-FE numbers its tiles column by column
  (x = id // 4, y = id % 4), so the description names SANA-FE tile x * 4 + y: the same
  coordinates, hence the same hop counts.

SANA-FE's LIF differs from snc's in three ways the description does not hide: a connection adds
one step of delay (the run is ``pad`` steps longer than the input, with silent input, so that
every spike reaches the last population), the membrane is truncated to multiples of 1/64 every
step (exact when weights, thresholds and biases are multiples of 1/64), and leak is skipped on
the first step (no effect without leak). One chip only: SANA-FE's Loihi architecture has 128
cores.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from snc.errors import InvalidData, MappingError, UnsupportedOperator
from snc.ir import INPUT, NEURON, READOUT, Graph
from snc.ir.annotations import all_blocks

from ..plan import build_plan

FORMAT = "snc-sanafe/1"
# SANA-FE's loihi.yaml (shipped in the sanafe 2.2.9 wheel): an 8 x 4 mesh of tiles, 4 cores each,
# at most 1024 neurons per core, soma units loihi_inputs[0..1023] per core.
TILES_X, TILES_Y, CORES_PER_TILE = 8, 4, 4
CORES = TILES_X * TILES_Y * CORES_PER_TILE
NEURONS_PER_CORE = 1024
# A threshold a membrane readout never reaches (it integrates and never fires).
READOUT_THRESHOLD = 1e30


def sanafe_core(core: int) -> tuple[int, int]:
    """(SANA-FE tile id, core offset) of snc's global core index on the Loihi mesh."""
    tile, slot = divmod(int(core), CORES_PER_TILE)
    x, y = tile % TILES_X, tile // TILES_X
    return x * TILES_Y + y, slot


def depth(graph: Graph) -> int:
    """The longest chain of projections from an input to a population: the steps SANA-FE needs,
    after the last input step, to carry the last input spikes through the whole network."""
    plan = build_plan(graph)
    d: dict[str, int] = {}
    for pop in plan.populations:
        d[pop.name] = max((d[p.source] + 1 for p in pop.projections), default=0)
    return max(d.values(), default=0)


def _check_population(name: str, node) -> None:
    if node.role == INPUT:
        if node.encoding != "spikes":
            raise UnsupportedOperator(f"SANA-FE comparison needs spike-encoded inputs (encoding 'spikes'), "
                                      f"got {node.encoding!r}", node=name)
    elif node.role == NEURON:
        if node.kind != "IF":
            raise UnsupportedOperator(f"SANA-FE comparison supports IF neurons only, not {node.kind}", node=name)
        if node.reset not in ("subtract", "zero") or int(node.refractory) != 0:
            raise UnsupportedOperator(f"SANA-FE comparison supports IF with subtractive or zero reset and no "
                                      f"refractory period (got reset={node.reset!r}, refractory={node.refractory})",
                                      node=name)
    elif node.role == READOUT:
        if node.mode != "membrane" or node.leaky:
            raise UnsupportedOperator("SANA-FE comparison supports a membrane readout without leak only", node=name)
    else:  # pragma: no cover - the plan holds populations only
        raise UnsupportedOperator(f"{node.kind} is not a population", node=name)


def describe(graph: Graph, spikes: np.ndarray, *, pad: int | None = None) -> dict[str, Any]:
    """The JSON-able description of ``graph`` (mapped: ``map`` pass or ``set_blocks``) driven by
    ``spikes`` (N, T, *input shape) of 0/1, run for T + ``pad`` steps (default: ``depth(graph)``).

    Raises UnsupportedOperator for what SANA-FE's LIF or this description cannot express,
    MappingError for an unmapped graph or one that needs more than one chip (128 cores)."""
    plan = build_plan(graph)
    inputs = [p for p in plan.populations if p.node.role == INPUT]
    for pop in plan.populations:
        _check_population(pop.name, pop.node)
        for proj in pop.projections:
            if proj.delay or proj.host_pool is not None or proj.static:
                raise UnsupportedOperator(f"projection {proj.source} -> {proj.target}: delays, host pooling and "
                                          "analog inputs are not described for SANA-FE", node=pop.name)
            for op in proj.nodes:
                bias = getattr(graph.nodes[op], "bias", None)
                if bias is not None and np.any(np.asarray(bias) != 0):
                    raise UnsupportedOperator("a linear operator with a bias is not described for SANA-FE "
                                              "(fold it into the neurons' bias)", node=op)
    if len(inputs) != 1:
        raise UnsupportedOperator(f"SANA-FE comparison needs exactly one input, got {len(inputs)}")
    spikes = np.asarray(spikes)
    inp = inputs[0]
    if spikes.ndim < 2 or spikes.shape[2:] != tuple(inp.shape) or not np.isin(spikes, (0, 1)).all():
        raise InvalidData(f"spikes must be (N, T, {', '.join(map(str, inp.shape))}) of 0/1, got shape {spikes.shape}",
                          node=inp.name)
    samples, steps = int(spikes.shape[0]), int(spikes.shape[1])
    pad = depth(graph) if pad is None else int(pad)
    placed = all_blocks(graph)
    if not placed:
        raise MappingError("the graph carries no core mapping; run the map pass (hw sanafe_loihi) first")
    used = sorted({b.core for bl in placed.values() for b in bl})
    if used[-1] >= CORES:
        raise MappingError(f"the mapping uses {len(used)} cores up to core {used[-1]}; SANA-FE's Loihi "
                           f"architecture is one chip of {CORES} cores (multi-chip runs are not described)")

    groups: list[dict] = []
    index: dict[str, np.ndarray] = {}  # population -> SANA-FE neuron index per snc neuron (-1: absent)
    on_core = {c: 0 for c in range(CORES)}
    neuron_core: dict[str, np.ndarray] = {}
    for pop in plan.populations:
        node = pop.node
        if node.role == INPUT:
            continue
        keep = getattr(node, "keep", None)
        present = np.ones(pop.size, bool) if keep is None else np.asarray(keep, bool).reshape(-1)
        core = np.full(pop.size, -1, np.int64)
        for b in placed.get(pop.name, ()):
            core[b.indices()] = b.core
        missing = np.flatnonzero(present & (core < 0))
        if missing.size:
            raise MappingError(f"{missing.size} neurons of {pop.name!r} have no core (first: {missing[0]})")
        idx = np.full(pop.size, -1, np.int64)
        idx[present] = np.arange(int(present.sum()))
        index[pop.name] = idx
        neuron_core[pop.name] = core[present]
        for c in core[present]:
            on_core[int(c)] += 1
        if node.role == NEURON:
            theta = np.broadcast_to(np.asarray(node.threshold, np.float64), node.shape).reshape(-1)[present]
            reset = "soft" if node.reset == "subtract" else "hard"
        else:
            theta = np.full(int(present.sum()), READOUT_THRESHOLD)
            reset = "hard"
        bias = np.zeros(pop.size) if node.bias is None else np.asarray(node.bias, np.float64).reshape(-1)
        groups.append({"name": pop.name, "kind": "lif", "size": int(present.sum()), "reset_mode": reset,
                       "threshold": theta.tolist(), "bias": bias[present].tolist()})

    # Input neurons: each on a core of the tile of its first destination (no hops to it, as snc's
    # host deliveries), with room left under SANA-FE's 1024 neurons per core.
    x = spikes.reshape(samples, steps, -1)
    first_dest = np.full(inp.size, -1, np.int64)
    for proj in plan.outgoing.get(inp.name, []):
        m = proj.matrix.tocsc()
        tcore = np.full(proj.shape[0], -1, np.int64)
        for b in placed.get(proj.target, ()):
            tcore[b.indices()] = b.core
        for j in range(inp.size):
            rows = m.indices[m.indptr[j]:m.indptr[j + 1]][m.data[m.indptr[j]:m.indptr[j + 1]] != 0]
            cores = tcore[rows]
            cores = cores[cores >= 0]
            if cores.size and (first_dest[j] < 0 or cores.min() < first_dest[j]):
                first_dest[j] = cores.min()
    used_tiles = sorted({c // CORES_PER_TILE for c in used})
    input_core = np.empty(inp.size, np.int64)
    soma_unit = np.empty(inp.size, np.int64)
    inputs_on = {c: 0 for c in range(CORES)}
    for j in range(inp.size):
        home = int(first_dest[j]) if first_dest[j] >= 0 else used[0]
        tile = home // CORES_PER_TILE
        order = [home] + [tile * CORES_PER_TILE + s for s in range(CORES_PER_TILE)]
        order += [t * CORES_PER_TILE + s for t in used_tiles for s in range(CORES_PER_TILE)]
        for c in order:
            if on_core[c] < NEURONS_PER_CORE:
                break
        else:
            raise MappingError(f"no room for input neuron {j} of {inp.name!r}: the used tiles' cores hold "
                               f"{NEURONS_PER_CORE} neurons each")
        input_core[j], soma_unit[j] = c, inputs_on[c]
        on_core[c] += 1
        inputs_on[c] += 1
    over = [c for c, n in on_core.items() if n > NEURONS_PER_CORE]
    if over:
        raise MappingError(f"core {over[0]} holds {on_core[over[0]]} neurons; SANA-FE's Loihi core holds {NEURONS_PER_CORE}")
    trains = [[np.flatnonzero(x[s, :, j]).tolist() for j in range(inp.size)] for s in range(samples)]
    tiles, offsets = zip(*(sanafe_core(c) for c in input_core)) if inp.size else ((), ())
    groups.insert(0, {"name": inp.name, "kind": "input", "size": inp.size, "spikes": trains,
                      "soma_units": soma_unit.tolist(), "tiles": list(tiles), "core_offsets": list(offsets)})
    index[inp.name] = np.arange(inp.size)
    neuron_core[inp.name] = input_core
    for g in groups[1:]:
        tiles, offsets = zip(*(sanafe_core(c) for c in neuron_core[g["name"]])) if g["size"] else ((), ())
        g["tiles"], g["core_offsets"] = list(tiles), list(offsets)

    connections = []
    for pop in plan.populations:
        for proj in pop.projections:
            m = proj.matrix.tocoo()
            keep = m.data != 0
            dst, src, w = index[proj.target][m.row[keep]], index[proj.source][m.col[keep]], m.data[keep]
            ok = (dst >= 0) & (src >= 0)
            connections.append({"source": proj.source, "target": proj.target, "src": src[ok].tolist(),
                                "dst": dst[ok].tolist(), "weight": w[ok].astype(np.float64).tolist()})
    return {"format": FORMAT, "samples": samples, "timesteps": steps + pad, "input_steps": steps, "pad": pad,
            "groups": groups, "connections": connections,
            "neuron_index": {k: v.tolist() for k, v in index.items()}}
