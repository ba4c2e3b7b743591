"""``map``: populations split into core-sized blocks and placed on a mesh of cores.

Specification: every neuron of every population (not the host inputs) lies in exactly one block
of contiguous neurons, one block per core, and no core exceeds any limit of the hardware profile:
neurons, synaptic memory (synapses x (weight bits + overhead bits)), input axons (distinct source
neurons) and output axons (distinct destination cores). The limits are recomputed here from the
graph's weights with torch (float64), independently of the pass's own connectivity code. Blocks
are as large as the limits allow (greedy), the result is deterministic and survives the .snir
round trip; networks that cannot fit give a one-line MappingError naming the layer and the
numbers; placement never costs more than the plain snake order and keeps chains local."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import snc.ir as ir
from snc.errors import MappingError
from snc.hw import load_profile, parse_profile
from snc.hw.mesh import Mesh
from snc.ir import artifact
from snc.passes import REGISTRY, PassContext
from snc.passes.map_to_cores import block_traffic, map_to_cores, utilisation
from snc.ir.annotations import blocks as _placed


def _blocks(graph, population):
    """[start, stop, core] of each block of a mapped population (the graph's one mapping)."""
    return [[b.start, b.stop, b.core] for b in _placed(graph, population)]


# ---------------------------------------------------------------------------------------------
# Synthetic hardware.


def profile_doc(**values) -> dict:
    """A neuromorphic profile document: loihi's quantities with some values replaced."""
    base = load_profile("loihi")
    quantities = {
        k: {"value": q.value, "unit": q.unit, "status": q.status, "source": q.source} for k, q in base.quantities.items()
    }
    mesh = values.pop("mesh_tiles", None)
    if mesh is not None:
        values["mesh_tiles"] = list(mesh)
    for key, value in values.items():
        quantities.setdefault(key, {"unit": "-", "status": "estimated", "source": "test"})["value"] = value
    x, y = quantities["mesh_tiles"]["value"]
    quantities["cores_per_chip"]["value"] = x * y * quantities["cores_per_tile"]["value"]
    quantities["weight_bits_max"]["value"] = max(quantities["weight_bits_max"]["value"], quantities["weight_bits"]["value"])
    return {"name": "tiny", "title": "test chip", "kind": "neuromorphic", "quantities": quantities}


def tiny_profile(**values):
    return parse_profile(profile_doc(**values), "<test>")


def toml_text(doc: dict) -> str:
    lines = [f"name = {json.dumps(doc['name'])}", f"kind = {json.dumps(doc['kind'])}"]
    for key, q in doc["quantities"].items():
        lines.append(f"[quantities.{key}]")
        for f in ("value", "unit", "status", "source"):
            lines.append(f"{f} = {json.dumps(q[f])}")
    return "\n".join(lines) + "\n"


def run_map(graph: ir.Graph, **options) -> tuple[ir.Graph, PassContext]:
    ctx = PassContext(options=options)
    return map_to_cores(graph, ctx), ctx


# ---------------------------------------------------------------------------------------------
# Connectivity recomputed independently: each operator applied (torch, float64) to the identity
# batch of a source population gives the source -> target synaptic matrix.

POPULATION_ROLES = ("input", "neuron", "readout")


def _apply(node, xs, in_shapes, n):
    kind = node.kind
    if kind == "Dense":
        return xs[0].reshape(n, -1) @ torch.from_numpy(node.weight.astype(np.float64)).T
    if kind == "Conv2d":
        top, left, bottom, right = node.padding
        x = F.pad(xs[0], (left, right, top, bottom))
        return F.conv2d(x, torch.from_numpy(node.weight.astype(np.float64)), stride=node.stride,
                        dilation=node.dilation, groups=node.groups)
    if kind in ("SumPool2d", "AvgPool2d"):  # average = positive multiple of the sum: same synapses
        top, left, bottom, right = node.padding
        x = F.pad(xs[0], (left, right, top, bottom))
        c = x.shape[1]
        ones = torch.ones((c, 1) + tuple(node.kernel), dtype=torch.float64)
        return F.conv2d(x, ones, stride=node.stride, groups=c)
    if kind in ("Flatten", "Reshape"):
        return xs[0].reshape((n,) + tuple(node.infer_shape("", in_shapes)))
    if kind == "Concat":
        parts = [x if x is not None else torch.zeros((n,) + tuple(s), dtype=torch.float64) for x, s in zip(xs, in_shapes)]
        return torch.cat(parts, dim=node.axis + 1)
    if kind == "Add":
        return sum(x for x in xs if x is not None)
    raise NotImplementedError(kind)


def synaptic_matrices(g: ir.Graph) -> dict[tuple[str, str], np.ndarray]:
    """{(source, target): bool (n_target, n_source)} for every pair of populations connected
    through linear operators."""
    shapes = g.infer_shapes()
    order = g.topological_order()
    out = {}
    for src in order:
        if g.nodes[src].role not in ("input", "neuron"):
            continue
        n = int(np.prod(shapes[src]))
        values = {src: torch.eye(n, dtype=torch.float64).reshape((n,) + tuple(shapes[src]))}
        for name in order[order.index(src) + 1:]:
            ins = g.inputs_of(name)
            if not any(i in values for i in ins):
                continue
            node = g.nodes[name]
            if node.role in POPULATION_ROLES:
                total = sum(values[i] for i in ins if i in values)
                out[(src, name)] = (total.reshape(n, -1).T != 0).numpy()
            else:
                values[name] = _apply(node, [values.get(i) for i in ins], [shapes[i] for i in ins], n)
    return out


class Need:
    """Per-neuron and per-block requirements of a graph, from the independent matrices."""

    def __init__(self, g: ir.Graph, bits_per_synapse: int):
        self.g = g
        self.mats = synaptic_matrices(g)
        self.bits = bits_per_synapse
        self.pops = [n for n in g.topological_order() if g.nodes[n].role in ("neuron", "readout")]
        self.size = {n: int(np.prod(s)) for n, s in g.infer_shapes().items()}

    def incoming(self, p):
        return [(s, m) for (s, t), m in self.mats.items() if t == p]

    def outgoing(self, p):
        return [(t, m) for (s, t), m in self.mats.items() if s == p]

    def layer_fan_in(self, p) -> int:
        """Most input axons (distinct source neurons) one neuron of layer p needs."""
        return int(sum(m.sum(axis=1) for _, m in self.incoming(p)).max())

    def neuron_fan_in(self) -> int:
        return max(self.layer_fan_in(p) for p in self.pops)

    def neuron_bits(self) -> int:
        return self.neuron_fan_in() * self.bits

    def neuron_destinations(self) -> int:
        """Most destination neurons any neuron sends to (an upper bound of its output axons)."""
        best = 0
        for p in self.pops:
            outs = self.outgoing(p)
            if outs:
                best = max(best, int(sum(m.sum(axis=0) for _, m in outs).max()))
        return best

    def block(self, p, s, e, blocks_of, order=None) -> dict:
        """Resources of positions [s, e) of p; ``order``: flat index of each position (None: flat);
        ``blocks_of[t]``: flat index arrays of t's blocks."""
        rows = np.arange(s, e) if order is None else order[s:e]
        syn = sum(int(m[rows].sum()) for _, m in self.incoming(p))
        fan_in = sum(int(m[rows].any(axis=0).sum()) for _, m in self.incoming(p))
        fan_out = 0
        for t, m in self.outgoing(p):
            for idx in blocks_of[t]:
                fan_out += bool(m[np.ix_(idx, rows)].any())
        return {"neurons": e - s, "synapses": syn, "memory_bits": syn * self.bits, "fan_in": fan_in, "fan_out": fan_out}


def check_mapping(g: ir.Graph, mapped: ir.Graph, prof, need: Need, max_chips=None) -> None:
    m = mapped.meta["mapping"]
    limits = {"neurons": prof["neurons_per_core"], "memory_bits": prof["synaptic_memory_bits"],
              "fan_in": prof["max_fan_in"], "fan_out": prof["max_fan_out"]}
    cpc = prof["cores_per_chip"]
    shapes = g.infer_shapes()
    # Feature maps split over cores are cut in spatial order (H, W, C): a position p of that order
    # is the flat neuron (p % C) * H * W + p // C, written out here independently.
    order_of = {}
    for p, spec in (m.get("orders") or {}).items():
        assert spec["order"] == "spatial" and tuple(spec["shape"]) == tuple(shapes[p]) and len(shapes[p]) == 3
        c, h, w = shapes[p]
        pos = np.arange(c * h * w)
        order_of[p] = (pos % c) * h * w + pos // c
    blocks_of = {p: [np.arange(b[0], b[1]) if p not in order_of else order_of[p][b[0]:b[1]] for b in _blocks(mapped, p)]
                 for p in need.pops}
    # Host inputs are not mapped.
    assert all(_blocks(mapped, n) == [] for n in mapped.input_names)
    cores = []
    on_core: dict[int, list] = {}
    rows = {(r["population"], r["start"]): r for r in m["cores"]}
    for p in need.pops:
        blocks = _blocks(mapped, p)
        order = order_of.get(p)
        # Every neuron exactly once, blocks contiguous (in the mapping order) and in order.
        covered = np.concatenate([np.arange(s, e) for s, e, _ in blocks])
        np.testing.assert_array_equal(covered, np.arange(need.size[p]), err_msg=p)
        assert all(e > s for s, e, _ in blocks)
        for s, e, core in blocks:
            cores.append(core)
            on_core.setdefault(core, []).append((p, s, e))
            got = need.block(p, s, e, blocks_of, order)
            for key, limit in limits.items():
                assert got[key] <= limit, f"{p}[{s}:{e}] {key} {got[key]} > {limit}"
            row = rows[(p, s)]
            assert (row["stop"], row["core"]) == (e, core)
            assert {k: row[k] for k in got} == got, f"{p}[{s}:{e}]: reported {row}, recomputed {got}"
            if e < need.size[p]:
                # Greedy: one more neuron would break some limit (else the split wastes cores).
                more = need.block(p, s, e + 1, blocks_of, order)
                assert any(more[k] > limits[k] for k in limits), f"{p}[{s}:{e}] could hold neuron {e}"
                assert row["split_by"] in ("neurons_per_core", "synaptic_memory_bits", "max_fan_in", "max_fan_out")
            else:
                assert row["split_by"] is None
    # Blocks sharing a core: together within every limit. Input axons are the distinct sources
    # over the core's blocks; output axons the distinct destination cores of its neurons.
    core_of = {(p, s): c for c, members in on_core.items() for p, s, _ in members}
    for core, members in on_core.items():
        neurons = sum(e - s for _, s, e in members)
        memory = sum(need.block(p, s, e, blocks_of, order_of.get(p))["memory_bits"] for p, s, e in members)
        sources: dict[str, np.ndarray] = {}
        dests = set()
        for p, s, e in members:
            idx = np.arange(s, e) if p not in order_of else order_of[p][s:e]
            for src, mat in need.incoming(p):
                hit = mat[idx].any(axis=0)
                sources[src] = sources[src] | hit if src in sources else hit
            for t, mat in need.outgoing(p):
                for (s2, _, _), rows_t in zip(_blocks(mapped, t), blocks_of[t]):
                    if mat[np.ix_(rows_t, idx)].any():
                        dests.add(core_of[(t, s2)])
        fan_in = sum(int(v.sum()) for v in sources.values())
        assert neurons <= limits["neurons"] and memory <= limits["memory_bits"], (core, members)
        assert fan_in <= limits["fan_in"] and len(dests) <= limits["fan_out"], (core, members)
    per_core = {r["core"]: r for r in utilisation(mapped)}
    assert sorted(per_core) == sorted(on_core)
    for core, members in on_core.items():
        assert per_core[core]["neurons"] == sum(e - s for _, s, e in members)
        assert per_core[core]["blocks"] == len(members)
    if not m["packed"]:
        assert len(set(cores)) == len(cores), "two blocks on one core"
    assert m["cores_used"] == len(set(cores)) and m["blocks"] == len(cores) == len(m["cores"])
    assert m["chips"] == max(1, math.ceil(len(set(cores)) / cpc))
    assert all(0 <= c < m["chips"] * cpc for c in cores)
    if max_chips is not None:
        assert m["chips"] <= max_chips
    assert m["objective"] <= m["objective_snake"] + 1e-9
    json.dumps(m)  # JSON-able


# ---------------------------------------------------------------------------------------------
# Random spiking networks.


def _w(rng, shape, density):
    w = rng.normal(size=shape).astype(np.float32)
    w[rng.random(shape) >= density] = 0
    return w


@st.composite
def spiking_nets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.sampled_from([0.15, 0.4, 0.7, 1.0]))
    rng = np.random.default_rng(seed)
    g = ir.Graph("rand")
    count = [0]

    def name(base):
        count[0] += 1
        return f"{base}{count[0]}"

    def pop(src):
        shape = g.infer_shapes()[src]
        if draw(st.booleans()):
            return g.add(name("p"), ir.IF(shape=shape), [src])
        return g.add(name("p"), ir.LIF(shape=shape, decay_current=0.5, decay_voltage=0.1), [src])

    if draw(st.booleans()):
        shape = (draw(st.integers(1, 2)), draw(st.integers(4, 7)), draw(st.integers(4, 7)))
        prev = g.add("x", ir.Input(shape=shape, encoding=draw(st.sampled_from(["direct", "spikes"]))))
        for block in draw(st.lists(st.sampled_from(["conv", "pool", "residual", "concat", "pool-conv"]), min_size=1, max_size=3)):
            c, h, w = g.infer_shapes()[prev]
            if block == "conv" or (block in ("pool", "pool-conv") and min(h, w) < 2):
                k = draw(st.integers(1, min(3, h, w)))
                stride = draw(st.integers(1, 2))
                co = draw(st.integers(1, 3))
                op = g.add(name("conv"), ir.Conv2d(weight=_w(rng, (co, c, k, k), density), stride=stride,
                                                   padding=draw(st.integers(0, k // 2))), [prev])
                prev = pop(op)
            elif block == "pool":
                cls = draw(st.sampled_from([ir.SumPool2d, ir.AvgPool2d]))
                prev = pop(g.add(name("pool"), cls(kernel=2, stride=2), [prev]))
            elif block == "pool-conv":  # pooling composed with a convolution in one projection
                pool = g.add(name("pool"), ir.SumPool2d(kernel=2, stride=2), [prev])
                co = draw(st.integers(1, 3))
                op = g.add(name("conv"), ir.Conv2d(weight=_w(rng, (co, c, 3, 3), density), padding=1), [pool])
                prev = pop(op)
            elif block == "residual":
                a = pop(g.add(name("conv"), ir.Conv2d(weight=_w(rng, (c, c, 3, 3), density), padding=1), [prev]))
                b = g.add(name("conv"), ir.Conv2d(weight=_w(rng, (c, c, 3, 3), density), padding=1), [a])
                prev = pop(g.add(name("add"), ir.Add(), [b, prev]))
            else:  # concat of two branches along channels
                a = g.add(name("conv"), ir.Conv2d(weight=_w(rng, (1, c, 3, 3), density), padding=1), [prev])
                b = g.add(name("conv"), ir.Conv2d(weight=_w(rng, (2, c, 1, 1), density)), [prev])
                prev = pop(g.add(name("cat"), ir.Concat(axis=0), [a, b]))
        prev = g.add(name("flat"), ir.Flatten(), [prev])
    else:
        prev = g.add("x", ir.Input(shape=(draw(st.integers(2, 12)),)))
    n_in = g.infer_shapes()[prev][0]
    for _ in range(draw(st.integers(0, 2))):
        n_out = draw(st.integers(2, 24))
        prev = pop(g.add(name("fc"), ir.Dense(weight=_w(rng, (n_out, n_in), density)), [prev]))
        n_in = n_out
    classes = draw(st.integers(2, 5))
    g.add(name("fc"), ir.Dense(weight=_w(rng, (classes, n_in), density)), [prev])
    g.add("out", ir.Readout(shape=(classes,)), [f"fc{count[0]}"])
    g.outputs = ["out"]
    g.validate()
    return g


# ---------------------------------------------------------------------------------------------
# Properties.


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(g=spiking_nets(), data=st.data())
def test_random_networks_fit_every_core_limit(g, data):
    wb = data.draw(st.integers(1, 8), label="weight_bits")
    overhead = data.draw(st.integers(0, 6), label="overhead")
    need = Need(g, wb + overhead)
    f_need, b_need, d_need = need.neuron_fan_in(), need.neuron_bits(), need.neuron_destinations()
    # Mostly limits every neuron fits; now and then one that may be too small for some neuron.
    tight = data.draw(st.sampled_from([None] * 5 + ["fan_in", "memory", "fan_out"]), label="tight")
    limits = dict(
        neurons_per_core=data.draw(st.integers(4, 64), label="neurons"),
        synaptic_memory_bits=data.draw(st.integers(max(1, b_need - (2 if tight == "memory" else 0)), 8 * b_need + 16), label="memory"),
        max_fan_in=data.draw(st.integers(max(1, f_need - (1 if tight == "fan_in" else 0)), 4 * f_need + 8), label="fan_in"),
        max_fan_out=data.draw(st.integers(max(1, d_need // (4 if tight == "fan_out" else 2)), d_need + 6), label="fan_out"),
        weight_bits=wb, synapse_overhead_bits=overhead,
        mesh_tiles=(data.draw(st.integers(2, 4)), data.draw(st.integers(2, 4))),
        cores_per_tile=data.draw(st.integers(1, 4)),
    )
    prof = tiny_profile(**limits)
    packed = data.draw(st.booleans(), label="pack")
    try:
        mapped, ctx = run_map(g, hw=prof, pack=packed)
    except MappingError as exc:
        text = str(exc)
        event("refused: " + next(k for k in ("input axons", "synaptic memory", "output axons", "") if k in text))
        assert "\n" not in text and exc.node in need.pops and f"'{exc.node}'" in text
        fan_in = re.search(r"needs (\d+) input axons per neuron; a tiny core offers (\d+) \(max_fan_in\): (\d+) over, ", text)
        memory = re.search(r"needs (\d+) bits of synaptic memory per neuron \((\d+) synapses\); "
                           r"a tiny core offers (\d+) \(synaptic_memory_bits\): (\d+) over, [0-9.]+x$", text)
        layer = need.layer_fan_in(exc.node)
        if fan_in:
            assert int(fan_in[1]) == layer > prof["max_fan_in"] == int(fan_in[2])
            assert int(fan_in[3]) == layer - prof["max_fan_in"]
        elif memory:
            assert int(memory[1]) == layer * need.bits > prof["synaptic_memory_bits"] == int(memory[3])
            assert int(memory[2]) == layer and int(memory[4]) == layer * need.bits - prof["synaptic_memory_bits"]
        else:
            # Only a neuron reaching more destination cores than a core has output axons is
            # refused, and that needs more destination neurons than axons.
            assert d_need > prof["max_fan_out"] and "output axons" in text, text
        return
    assert f_need <= prof["max_fan_in"] and b_need <= prof["synaptic_memory_bits"]
    check_mapping(g, mapped, prof, need)
    rows = utilisation(mapped)
    for key in ("neurons", "memory_bits", "fan_in", "fan_out"):
        if any(r[f"{key}_use"] == 1 for r in rows):
            event(f"some core at its {key} limit")
    event(f"mapped on {min(mapped.meta['mapping']['chips'], 3)}+ chip(s), split {'some' if mapped.meta['mapping']['cores_used'] > len(need.pops) else 'none'}")
    assert any(e["pass"] == "map" for e in ctx.report)
    # Deterministic, and the same with a chip budget that suffices.
    chips = mapped.meta["mapping"]["chips"]
    assert mapped.meta["mapping"]["cores_used"] <= run_map(g, hw=prof, pack=False)[0].meta["mapping"]["cores_used"]
    again, _ = run_map(g, hw=prof, max_chips=chips, pack=packed)
    assert again.meta["mapping"].pop("max_chips") == chips
    assert json.dumps(again.meta["mapping"]) == json.dumps({k: v for k, v in mapped.meta["mapping"].items() if k != "max_chips"})
    for p in need.pops:
        assert again.nodes[p].meta == mapped.nodes[p].meta
    # The artifact keeps the mapping.
    back = artifact.from_bytes(artifact.to_bytes(mapped))
    assert back.meta["mapping"] == mapped.meta["mapping"]
    for p in need.pops:
        assert _blocks(back, p) == _blocks(mapped, p)
    # One chip fewer than needed does not fit, and the error names a layer and the numbers.
    if chips > 1:
        with pytest.raises(MappingError) as err:
            run_map(g, hw=prof, max_chips=chips - 1, pack=packed)
        text = str(err.value)
        assert err.value.node in need.pops and f"{mapped.meta['mapping']['cores_used']} cores" in text
        assert f"{(chips - 1) * prof['cores_per_chip']} cores of {chips - 1}" in text


def test_input_is_not_mutated_and_profile_loads_from_a_toml_file(tmp_path, rng):
    g = mlp(rng, (12, 30, 20, 5))
    before = artifact.to_bytes(g)
    doc = profile_doc(neurons_per_core=8, mesh_tiles=(2, 2), cores_per_tile=2)
    path = tmp_path / "tiny.toml"
    path.write_text(toml_text(doc))
    mapped, _ = run_map(g, hw=str(path))
    assert artifact.to_bytes(g) == before
    assert mapped.meta["mapping"]["hw"] == "tiny"
    assert [len(_blocks(mapped, p)) for p in ("h1", "h2", "out")] == [4, 3, 1]
    check_mapping(g, mapped, parse_profile(doc, "<test>"), Need(g, 8 + 6))


# ---------------------------------------------------------------------------------------------
# Fixed networks.


def mlp(rng, sizes, density=1.0, names=None) -> ir.Graph:
    g = ir.Graph("mlp")
    prev = g.add("x", ir.Input(shape=(sizes[0],), encoding="spikes"))
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        last = k == len(sizes) - 1
        name = "out" if last else (names[k - 1] if names else f"h{k}")
        g.add(f"fc{k}", ir.Dense(weight=_w(rng, (o, i), density)), [prev])
        prev = g.add(name, ir.Readout(shape=(o,)) if last else ir.IF(shape=(o,)), [f"fc{k}"])
    g.outputs = ["out"]
    return g


def test_fan_out_limit_splits_the_source_layer(rng):
    # Each of the 8 hidden neurons reaches 2 of the 16 output blocks (band pattern): blocks of
    # hidden neurons must stay within 4 destination cores.
    g = ir.Graph("band")
    g.add("x", ir.Input(shape=(4,)))
    g.add("fc1", ir.Dense(weight=rng.normal(size=(8, 4)).astype(np.float32)), ["x"])
    g.add("h", ir.IF(shape=(8,)), ["fc1"])
    w = np.zeros((64, 8), np.float32)
    for j in range(8):
        w[8 * j:8 * j + 8, j] = 1.0  # neuron j feeds outputs 8j..8j+7: blocks 2j and 2j+1
    g.add("fc2", ir.Dense(weight=w), ["h"])
    g.add("out", ir.Readout(shape=(64,)), ["fc2"])
    g.outputs = ["out"]
    prof = tiny_profile(neurons_per_core=4, max_fan_out=4, mesh_tiles=(4, 4), cores_per_tile=2)
    mapped, _ = run_map(g, hw=prof)
    assert [b[:2] for b in _blocks(mapped, "h")] == [[0, 2], [2, 4], [4, 6], [6, 8]]
    assert all(r["fan_out"] <= 4 for r in utilisation(mapped))
    check_mapping(g, mapped, prof, Need(g, 8 + 6))
    with pytest.raises(MappingError, match=r"node 'h': neuron 0 of the layer sends to 2 cores .*offers 1 \(max_fan_out\)"):
        run_map(g, hw=tiny_profile(neurons_per_core=4, max_fan_out=1, mesh_tiles=(4, 4), cores_per_tile=2))


def test_fan_in_beyond_a_core_is_refused_at_compile_time(rng):
    g = ir.Graph("wide")
    g.add("x", ir.Input(shape=(8192,)))
    g.add("d1", ir.Dense(weight=np.ones((4, 8192), np.float32)), ["x"])
    g.add("fc1", ir.IF(shape=(4,)), ["d1"])
    g.add("d2", ir.Dense(weight=np.ones((2, 4), np.float32)), ["fc1"])
    g.add("out", ir.Readout(shape=(2,)), ["d2"])
    g.outputs = ["out"]
    with pytest.raises(MappingError) as err:
        run_map(g, hw="loihi")
    text = str(err.value)
    assert text == ("node 'fc1': the layer needs 8192 input axons per neuron; a loihi core offers 4096 (max_fan_in): "
                    "4096 over, 2.00x; splitting a neuron's inputs over cores (partial sums) is not modelled, so reduce "
                    "the layer's fan-in (e.g. pool before it)")
    assert err.value.node == "fc1"


def test_synaptic_memory_beyond_a_core_is_refused(rng):
    g = mlp(rng, (40, 6, 3))
    prof = tiny_profile(synaptic_memory_bits=500, weight_bits=8, synapse_overhead_bits=6)
    with pytest.raises(MappingError, match=r"^node 'h1': the layer needs 560 bits of synaptic memory per neuron "
                                           r"\(40 synapses\); a tiny core offers 500"):
        run_map(g, hw=prof)


def test_too_many_chips_is_refused_naming_the_layer(rng):
    g = mlp(rng, (10, 64, 64, 4))
    prof = tiny_profile(neurons_per_core=8, mesh_tiles=(2, 2), cores_per_tile=1)  # 4 cores per chip
    mapped, _ = run_map(g, hw=prof)
    assert mapped.meta["mapping"]["cores_used"] == 8 + 8 + 1
    assert mapped.meta["mapping"]["chips"] == 5
    with pytest.raises(MappingError) as err:
        run_map(g, hw=prof, max_chips=3)
    assert str(err.value) == ("node 'h2': the layer needs 8 cores but only 4 of the 12 cores of 3 tiny chip(s) "
                              "are left (the network needs 17 cores, 5 chips)")
    # A max_chips quantity in the profile is honoured too.
    with pytest.raises(MappingError, match="of 4 tiny chip"):
        run_map(g, hw=tiny_profile(neurons_per_core=8, mesh_tiles=(2, 2), cores_per_tile=1, max_chips=4))


def test_weight_bits_from_fixed_point_blocks_and_options(rng):
    g = mlp(rng, (10, 6, 3))
    w = g.nodes["fc1"].weight
    g.replace("fc1", g.nodes["fc1"].replace(fixed=ir.SynapseFixed(weight=np.round(w * 3).astype(np.int32), weight_bits=3)))
    prof = tiny_profile(weight_bits=8, synapse_overhead_bits=6)
    mapped, _ = run_map(g, hw=prof)
    rows = {r["population"]: r for r in mapped.meta["mapping"]["cores"]}
    assert rows["h1"]["memory_bits"] == rows["h1"]["synapses"] * (3 + 6)
    assert rows["out"]["memory_bits"] == rows["out"]["synapses"] * (8 + 6)
    mapped, _ = run_map(g, hw=prof, weight_bits=2)
    rows = {r["population"]: r for r in mapped.meta["mapping"]["cores"]}
    assert rows["h1"]["memory_bits"] == rows["h1"]["synapses"] * (2 + 6)
    assert rows["out"]["memory_bits"] == rows["out"]["synapses"] * (2 + 6)
    (core,) = utilisation(mapped)  # h1 and out share one core: their resources add up
    assert core["populations"] == ["h1", "out"] and core["memory_bits"] == rows["h1"]["memory_bits"] + rows["out"]["memory_bits"]
    assert 0 < core["memory_bits_use"] <= 1 and core["neurons_use"] == (6 + 3) / prof["neurons_per_core"]


def test_block_traffic_counts_each_source_neuron_once_per_destination_core(rng):
    g = mlp(rng, (4, 6, 3), density=0.5)
    w2 = g.nodes["fc2"].weight
    rate = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    prof = tiny_profile(neurons_per_core=2)
    mapped, _ = run_map(g, hw=prof, rates={"h1": rate})
    blocks, traffic = block_traffic(mapped, rates={"h1": rate})
    assert [(b["population"], b["start"], b["stop"]) for b in blocks] == [
        ("h1", 0, 2), ("h1", 2, 4), ("h1", 4, 6), ("out", 0, 2), ("out", 2, 3)]
    want = np.zeros((5, 5))
    for u, (s, e) in enumerate([(0, 2), (2, 4), (4, 6)]):
        for v, (s2, e2) in enumerate([(0, 2), (2, 3)]):
            reaches = (w2[s2:e2, s:e] != 0).any(axis=0)
            want[u, 3 + v] = rate[s:e][reaches].sum()
    np.testing.assert_allclose(traffic.toarray(), want)
    # The objective is traffic x hops of that matrix on the chosen cores.
    mesh = Mesh.from_profile(prof)
    core = np.array([b["core"] for b in blocks])
    u, v = np.nonzero(want)
    ew, ns, _ = mesh.hops(core[u], core[v])
    assert mapped.meta["mapping"]["objective"] == pytest.approx(float((want[u, v] * (ew + ns)).sum()))


def test_rates_measured_on_calibration_data(rng):
    g = mlp(rng, (6, 10, 3))
    g.nodes["x"].encoding = "direct"
    calib = rng.random((8, 6)).astype(np.float32)
    mapped, ctx = run_map(g, hw=tiny_profile(neurons_per_core=4), rates=None)
    assert mapped.meta["mapping"]["rates"] == "uniform 0.1"
    ctx = PassContext(calibration=calib, timesteps=16, options={"hw": tiny_profile(neurons_per_core=4)})
    mapped = map_to_cores(g, ctx)
    assert mapped.meta["mapping"]["rates"] == "rate limit of 8 calibration samples (calibration analysis)"
    # The same placement as with the rate limit given explicitly (mean over samples of clip(I / theta, 0, 1)).
    from snc.backends import analog

    pops = [n for n in g.nodes if g.nodes[n].role == "neuron"]
    limit = analog.evaluate(g, calib, keep=pops, mode="rate")
    given = {p: limit[p].reshape(len(calib), -1).mean(axis=0) for p in pops}
    assert any(r.std() > 0 for r in given.values())  # not uniform: the rates matter
    explicit = map_to_cores(g, PassContext(options={"hw": tiny_profile(neurons_per_core=4), "rates": given}))
    assert mapped.meta["mapping"]["objective"] == explicit.meta["mapping"]["objective"]


@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_big_dense_layers_read_in_chunks_map_the_same(rng, monkeypatch, chunk):
    # Dense matrices are scanned in slices of CHUNK_ELEMENTS elements (memory on big layers);
    # the slicing must not change anything.
    import snc.passes.mapping.connectivity as module

    g = mlp(rng, (13, 40, 30, 5), density=0.3)
    prof = tiny_profile(neurons_per_core=9, max_fan_in=25, max_fan_out=12, mesh_tiles=(3, 3), cores_per_tile=2)
    want, _ = run_map(g, hw=prof)
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", chunk)
    got, _ = run_map(g, hw=prof)
    assert got.meta["mapping"] == want.meta["mapping"]
    check_mapping(g, got, prof, Need(g, 8 + 6))


def test_bad_rates_and_options_are_refused(rng):
    g = mlp(rng, (6, 10, 3))
    with pytest.raises(MappingError, match=r"^node 'h1': rates must be 10 finite non-negative values"):
        run_map(g, rates={"h1": np.ones(3)})
    with pytest.raises(MappingError, match="option rates"):
        run_map(g, rates="often")
    with pytest.raises(MappingError, match="option weight_bits"):
        run_map(g, weight_bits=0)
    with pytest.raises(MappingError, match="max_chips must be >= 1"):
        run_map(g, max_chips=0)


def test_notes_report_chips_layers_and_tightest_resource(rng):
    g = mlp(rng, (10, 40, 3))
    mapped, ctx = run_map(g, hw=tiny_profile(neurons_per_core=16, mesh_tiles=(2, 2), cores_per_tile=1))
    notes = [e["message"] for e in ctx.report if e["pass"] == "map"]
    # h1's 40 neurons split 16 + 16 + 8 (16 per core); out's 3 neurons join the 8 on the third core.
    assert notes[0] == "3 cores on 1 tiny chip(s) of 4 cores"
    assert notes[1] == "blocks per layer: h1 3, out 1"
    assert notes[2] == "4 blocks on 3 cores (packed); limits that bind: neurons on 2; 1 core(s) not full"
    assert notes[3].startswith("tightest resource: neurons, 100% of a core at most (core ")
    assert notes[4].startswith("placement: traffic x hops ")
    unpacked, ctx = run_map(g, hw=tiny_profile(neurons_per_core=16, mesh_tiles=(2, 2), cores_per_tile=1), pack=False)
    notes = [e["message"] for e in ctx.report if e["pass"] == "map"]
    assert notes[0] == "4 cores on 1 tiny chip(s) of 4 cores" and notes[2].startswith("4 blocks on 4 cores (one block per core)")


def test_registered_as_map():
    assert REGISTRY["map"].fn is map_to_cores


# ---------------------------------------------------------------------------------------------
# Placement quality.


def test_chain_is_placed_on_neighbouring_cores(rng):
    g = mlp(rng, (8,) + (12,) * 14 + (4,))
    prof = tiny_profile(neurons_per_core=6, mesh_tiles=(3, 3), cores_per_tile=1)  # 2 blocks per layer
    mapped, _ = run_map(g, hw=prof)
    m = mapped.meta["mapping"]
    assert m["chips"] == 4 and m["objective"] <= m["objective_snake"]
    mesh = Mesh.from_profile(prof)
    pops = [n for n in mapped.topological_order() if mapped.nodes[n].role in ("neuron", "readout")]
    for a, b in zip(pops, pops[1:]):
        ca = [blk[2] for blk in _blocks(mapped, a)]
        cb = [blk[2] for blk in _blocks(mapped, b)]
        ew, ns, _ = mesh.hops(np.array(ca)[:, None], np.array(cb)[None, :])
        assert (ew + ns).min() <= 1, f"{a} and {b} are {int((ew + ns).min())} hops apart"
        assert (ew + ns).max() <= 3, f"{a} and {b} are {int((ew + ns).max())} hops apart"


def test_placement_improves_a_poor_topological_order(rng):
    # Two independent chains inserted alternately: the snake order interleaves them, so every
    # connection spans two cores; swaps must recover most of the locality.
    g = ir.Graph("two")
    g.add("x", ir.Input(shape=(6,), encoding="spikes"))
    prev = {"a": "x", "b": "x"}
    for k in range(8):
        for c in "ab":
            g.add(f"{c}fc{k}", ir.Dense(weight=rng.normal(size=(6, 6)).astype(np.float32)), [prev[c]])
            prev[c] = g.add(f"{c}{k}", ir.IF(shape=(6,)), [f"{c}fc{k}"])
    g.add("cat", ir.Concat(axis=0), [prev["a"], prev["b"]])
    g.add("fc", ir.Dense(weight=rng.normal(size=(3, 12)).astype(np.float32)), ["cat"])
    g.add("out", ir.Readout(shape=(3,)), ["fc"])
    g.outputs = ["out"]
    prof = tiny_profile(neurons_per_core=8, mesh_tiles=(6, 3), cores_per_tile=1)
    mapped, ctx = run_map(g, hw=prof)
    m = mapped.meta["mapping"]
    assert m["objective"] < 0.8 * m["objective_snake"], ctx.report[-1]["message"]
    check_mapping(g, mapped, prof, Need(g, 8 + 6))


def test_swaps_pull_a_hub_to_the_middle_of_its_partners(rng):
    # One population feeds 12 others: in snake order it sits in a corner; the swaps move it
    # towards the middle of the cores it talks to.
    g = ir.Graph("hub")
    g.add("x", ir.Input(shape=(4,), encoding="spikes"))
    g.add("fc", ir.Dense(weight=rng.normal(size=(4, 4)).astype(np.float32)), ["x"])
    g.add("hub", ir.IF(shape=(4,)), ["fc"])
    leaves = []
    for k in range(12):
        g.add(f"fc{k}", ir.Dense(weight=rng.normal(size=(4, 4)).astype(np.float32)), ["hub"])
        leaves.append(g.add(f"leaf{k}", ir.IF(shape=(4,)), [f"fc{k}"]))
    g.add("cat", ir.Concat(axis=0), leaves)
    g.add("fco", ir.Dense(weight=rng.normal(size=(3, 48)).astype(np.float32)), ["cat"])
    g.add("out", ir.Readout(shape=(3,)), ["fco"])
    g.outputs = ["out"]
    prof = tiny_profile(neurons_per_core=4, mesh_tiles=(4, 4), cores_per_tile=1)
    mapped, ctx = run_map(g, hw=prof)
    m = mapped.meta["mapping"]
    assert m["objective"] < m["objective_start"] <= m["objective_snake"], ctx.report[-1]["message"]
    assert ctx.report[-1]["objective"] == m["objective"]
    mesh = Mesh.from_profile(prof)
    hub = _blocks(mapped, "hub")[0][2]
    _, x, y = mesh.coordinates(hub)
    assert 1 <= x <= 2 and 1 <= y <= 2, f"hub on tile ({x}, {y})"


# ---------------------------------------------------------------------------------------------
# Fast paths give what the general code gives.


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_window_pattern_is_the_linear_map_pattern(data):
    # Convolutions and pooling are read straight from the kernel; the pattern must be exactly the
    # non-zeros of linear_maps' float matrix (same rows, same sorted columns).
    import scipy.sparse as sp

    from snc.backends import linear_maps
    from snc.passes.mapping.connectivity import _window_pattern

    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    rng = np.random.default_rng(seed)
    h, w = data.draw(st.integers(1, 9), label="h"), data.draw(st.integers(1, 9), label="w")
    kind = data.draw(st.sampled_from(["Conv2d", "SumPool2d", "AvgPool2d"]), label="kind")
    kh, kw = data.draw(st.integers(1, min(h, 4)), label="kh"), data.draw(st.integers(1, min(w, 4)), label="kw")
    stride = (data.draw(st.integers(1, 3), label="sy"), data.draw(st.integers(1, 3), label="sx"))
    pad = tuple(data.draw(st.integers(0, k // 2), label="pad") for k in (kh, kw, kh, kw))
    if kind == "Conv2d":
        groups = data.draw(st.sampled_from([1, 2]), label="groups")
        c_in, c_out = groups * data.draw(st.integers(1, 3), label="cin"), groups * data.draw(st.integers(1, 3), label="cout")
        dil = (data.draw(st.integers(1, 2), label="dy"), data.draw(st.integers(1, 2), label="dx"))
        if (kh - 1) * dil[0] + 1 > h + pad[0] + pad[2] or (kw - 1) * dil[1] + 1 > w + pad[1] + pad[3]:
            dil = (1, 1)
        node = ir.Conv2d(weight=_w(rng, (c_out, c_in // groups, kh, kw), data.draw(st.sampled_from([0.0, 0.3, 1.0]))),
                         stride=stride, padding=pad, dilation=dil, groups=groups)
    else:
        c_in = data.draw(st.integers(1, 3), label="c")
        cls = ir.SumPool2d if kind == "SumPool2d" else ir.AvgPool2d
        extra = {} if kind == "SumPool2d" else {"count_include_pad": data.draw(st.booleans())}
        node = cls(kernel=(kh, kw), stride=stride, padding=pad, **extra)
    out_shape = tuple(node.infer_shape("op", [(c_in, h, w)]))
    got = _window_pattern(node, (c_in, h, w), out_shape)
    want = sp.csr_matrix(linear_maps.matrix(node, [(c_in, h, w)], out_shape, 0, "op"))
    want.eliminate_zeros()
    want.sort_indices()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(g=spiking_nets(), data=st.data())
def test_sorting_and_scanning_for_distinct_sources_map_the_same(g, data):
    # Distinct source neurons of a window are found by a sort (few synapses, many sources) or by
    # a scan of an (n_source,) array; which one is used must not change anything.
    import snc.passes.mapping.connectivity as module

    prof = tiny_profile(neurons_per_core=data.draw(st.integers(2, 16), label="neurons"), mesh_tiles=(3, 3), cores_per_tile=2)
    results = []
    for sort in (False, True):
        original = module.Connectivity._by_sorting
        module.Connectivity._by_sorting = (lambda self, synapses: True) if sort else (lambda self, synapses: False)
        try:
            mapped, _ = run_map(g, hw=prof)
        except MappingError as exc:
            mapped = str(exc)
        finally:
            module.Connectivity._by_sorting = original
        results.append(mapped)
    if isinstance(results[0], str):
        assert results[0] == results[1]
        return
    assert json.dumps(results[0].meta["mapping"]) == json.dumps(results[1].meta["mapping"])
    for p in results[0].nodes:
        assert _blocks(results[0], p) == _blocks(results[1], p)


def test_block_traffic_of_a_conv_net_matches_the_mapping(rng):
    # block_traffic recomputes the block sources without a split; its objective is the pass's.
    g = ir.Graph("conv")
    g.add("x", ir.Input(shape=(2, 8, 8), encoding="spikes"))
    g.add("c1", ir.Conv2d(weight=_w(rng, (4, 2, 3, 3), 0.7), padding=1), ["x"])
    g.add("p1", ir.IF(shape=(4, 8, 8)), ["c1"])
    g.add("c2", ir.Conv2d(weight=_w(rng, (4, 4, 3, 3), 0.7), padding=1, stride=2), ["p1"])
    g.add("p2", ir.IF(shape=(4, 4, 4)), ["c2"])
    g.add("pool", ir.SumPool2d(kernel=2, stride=2), ["p2"])
    g.add("flat", ir.Flatten(), ["pool"])
    g.add("fc", ir.Dense(weight=_w(rng, (5, 16), 1.0)), ["flat"])
    g.add("out", ir.Readout(shape=(5,)), ["fc"])
    g.outputs = ["out"]
    prof = tiny_profile(neurons_per_core=24, max_fan_in=72, mesh_tiles=(3, 3), cores_per_tile=2)
    mapped, _ = run_map(g, hw=prof)
    check_mapping(g, mapped, prof, Need(g, 8 + 6))
    blocks, traffic = block_traffic(mapped)
    mesh = Mesh.from_profile(prof)
    core = np.array([b["core"] for b in blocks])
    t = traffic.tocoo()
    ew, ns, _ = mesh.hops(core[t.row], core[t.col])
    assert mapped.meta["mapping"]["objective"] == pytest.approx(float((t.data * (ew + ns)).sum()))


def test_feature_maps_are_cut_in_spatial_bands_so_inputs_stay_local():
    """Conv 1 -> 4 channels, 3x3, padding 1, on an 8x8 input; 64 neurons per core. Cut channel by
    channel (flat), every block is one whole channel and reads all 64 input pixels. Cut in
    spatial order, a block is 2 pixel rows x 8 columns x 4 channels and reads the rows around
    them only: 3 rows (24 pixels) at the borders, 4 rows (32) inside."""
    g = ir.Graph("conv")
    g.add("x", ir.Input(shape=(1, 8, 8), encoding="spikes"))
    g.add("c1", ir.Conv2d(weight=np.ones((4, 1, 3, 3), np.float32), padding=1), ["x"])
    g.add("h1", ir.IF(shape=(4, 8, 8)), ["c1"])
    g.add("c2", ir.Conv2d(weight=np.ones((4, 4, 3, 3), np.float32), padding=1), ["h1"])
    g.add("h2", ir.IF(shape=(4, 8, 8)), ["c2"])
    g.add("f", ir.Flatten(), ["h2"])
    g.add("d", ir.Dense(weight=np.ones((2, 256), np.float32)), ["f"])
    g.add("out", ir.Readout(shape=(2,)), ["d"])
    g.outputs = ["out"]
    prof = tiny_profile(neurons_per_core=64, mesh_tiles=(4, 4), cores_per_tile=1)
    flat, _ = run_map(g, hw=prof, conv_order="flat", pack=False)
    spatial, _ = run_map(g, hw=prof, pack=False)
    rows = {name: sorted((r for r in m.meta["mapping"]["cores"] if r["population"] == "h1"), key=lambda r: r["start"])
            for name, m in (("flat", flat), ("spatial", spatial))}
    assert [r["fan_in"] for r in rows["flat"]] == [64, 64, 64, 64]
    assert [r["fan_in"] for r in rows["spatial"]] == [24, 32, 32, 24]
    # h1 -> h2: flat, every h1 block feeds all 4 channel blocks of h2; spatial, only the bands
    # whose 3x3 windows reach it: the band itself and its neighbours.
    assert [r["fan_out"] for r in rows["flat"]] == [4, 4, 4, 4]
    assert [r["fan_out"] for r in rows["spatial"]] == [2, 3, 3, 2]
    assert spatial.meta["mapping"]["orders"] == {"h1": {"order": "spatial", "shape": [4, 8, 8]},
                                                 "h2": {"order": "spatial", "shape": [4, 8, 8]}}
    assert "orders" not in flat.meta["mapping"] or flat.meta["mapping"]["orders"] == {}
    # Block.indices: band 0 of h1 is pixel rows 0-1 of every channel.
    (b0, *_) = _placed(spatial, "h1")
    expected = np.concatenate([c * 64 + np.arange(16) for c in range(4)])
    np.testing.assert_array_equal(np.sort(b0.indices()), expected)
    # Fewer messages: traffic with one spike per neuron and step.
    _, t_flat = block_traffic(flat, default_rate=1.0)
    _, t_spatial = block_traffic(spatial, default_rate=1.0)
    assert t_spatial.sum() < t_flat.sum()


def test_placement_objective_weights_chip_crossings_and_keeps_traffic_on_chip(rng):
    """Two chips of 4 single-core tiles; an MLP of 8 blocks. The objective equals a recomputation
    from the block traffic and the mesh: sum traffic x (hops + (K - 1) x crossings); the traffic
    that crosses chips is reported, and with K = 40 it is no more than with K = 1."""
    g = mlp(rng, (6, 16, 12, 3))  # blocks of 4 neurons: 4 + 3 + 1 = 8 cores, 2 chips
    prof = tiny_profile(neurons_per_core=4, mesh_tiles=(2, 2), cores_per_tile=1)
    results = {}
    for k in (1, 40):
        mapped, _ = run_map(g, hw=prof, chip_weight=k, rates="uniform", default_rate=0.5)
        m = mapped.meta["mapping"]
        assert m["chips"] == 2 and m["chip_weight"] == k
        blocks, traffic = block_traffic(mapped, default_rate=0.5)
        mesh = Mesh.from_profile(prof)
        coo = traffic.tocoo()
        core = np.array([b["core"] for b in blocks])
        ew, ns, ch = mesh.hops(core[coo.row], core[coo.col])
        same = core[coo.row] == core[coo.col]
        cost = float(np.sum(np.where(same, 0, coo.data * (ew + ns + (k - 1) * ch))))
        assert m["objective"] == pytest.approx(cost, rel=1e-9)
        assert m["chip_traffic"] == pytest.approx(float(np.sum(np.where(ch > 0, coo.data, 0))), rel=1e-9)
        results[k] = m["chip_traffic"]
    assert results[40] <= results[1]
    assert load_profile("loihi") and run_map(g, hw="loihi")[0].meta["mapping"]["chip_weight"] == round(195 / ((4.1 + 6.5) / 2))
