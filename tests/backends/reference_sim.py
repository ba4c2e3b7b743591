"""A deliberately plain step-by-step reference simulator for tests.

One sample at a time, one step at a time, operators as explicit Python loops over indices and
neurons as per-neuron float32 scalar updates, written from the equations in the IR docstrings
without sharing any code with snc.backends. Slow; for small networks only.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


def _conv(node, x):
    c_in, h, w = x.shape
    weight = node.weight
    c_out, c_in_g, kh, kw = weight.shape
    pt, pl, pb, pr = node.padding
    sy, sx = node.stride
    dy, dx = node.dilation
    ho = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    wo = (w + pl + pr - dx * (kw - 1) - 1) // sx + 1
    out = np.zeros((c_out, ho, wo), dtype=F32)
    per_group = c_out // node.groups
    for o in range(c_out):
        g = o // per_group
        for i in range(ho):
            for j in range(wo):
                acc = F32(0)
                for c in range(c_in_g):
                    for m in range(kh):
                        for n in range(kw):
                            y = i * sy + m * dy - pt
                            xx = j * sx + n * dx - pl
                            if 0 <= y < h and 0 <= xx < w:
                                acc = F32(acc + F32(weight[o, c, m, n]) * x[g * c_in_g + c, y, xx])
                out[o, i, j] = acc
    return out


def _pool(node, x, average):
    c, h, w = x.shape
    kh, kw = node.kernel
    pt, pl, pb, pr = node.padding
    sy, sx = node.stride
    ho = (h + pt + pb - (kh - 1) - 1) // sy + 1
    wo = (w + pl + pr - (kw - 1) - 1) // sx + 1
    out = np.zeros((c, ho, wo), dtype=F32)
    for ch in range(c):
        for i in range(ho):
            for j in range(wo):
                acc = F32(0)
                inside = 0
                for m in range(kh):
                    for n in range(kw):
                        y, xx = i * sy + m - pt, j * sx + n - pl
                        if 0 <= y < h and 0 <= xx < w:
                            acc = F32(acc + x[ch, y, xx])
                            inside += 1
                if average:
                    acc = F32(acc / F32(kh * kw if node.count_include_pad else inside))
                out[ch, i, j] = acc
    return out


def apply_op(node, xs):
    k = node.kind
    if k == "Dense":
        (x,) = xs
        x = x.reshape(-1)
        out = np.zeros(node.weight.shape[0], dtype=F32)
        for i in range(node.weight.shape[0]):
            acc = F32(0)
            for j in range(node.weight.shape[1]):
                acc = F32(acc + F32(node.weight[i, j]) * x[j])
            out[i] = acc
        return out
    if k == "Conv2d":
        return _conv(node, xs[0])
    if k == "SumPool2d":
        return _pool(node, xs[0], False)
    if k == "AvgPool2d":
        return _pool(node, xs[0], True)
    if k == "Flatten":
        return xs[0].reshape(-1)
    if k == "Reshape":
        return xs[0].reshape(node.shape)
    if k == "Transpose":
        return np.ascontiguousarray(xs[0].transpose(node.perm))
    if k == "Concat":
        return np.concatenate(xs, axis=node.axis)
    if k == "Add":
        out = xs[0].astype(F32)
        for x in xs[1:]:
            out = (out + x).astype(F32)
        return out
    if k == "Scale":
        return (xs[0] * node.scale).astype(F32)
    raise NotImplementedError(k)


class Neuron:
    """One IF/LIF neuron, float32 scalars, the IR's equations literally."""

    def __init__(self, node, index):
        th = np.broadcast_to(np.asarray(node.threshold, dtype=F32), node.shape).reshape(-1)
        self.th = F32(th[index])
        self.bias = F32(0) if node.bias is None else F32(node.bias.reshape(-1)[index])
        self.reset = node.reset
        self.lif = node.kind == "LIF"
        self.keep_u = F32(1 - node.decay_current) if self.lif else F32(0)
        self.keep_v = F32(1 - node.decay_voltage) if self.lif else F32(1)
        self.refractory = int(node.refractory)
        self.u = F32(0)
        self.v = F32(0)
        self.ref = 0

    def step(self, current):
        if self.lif:
            self.u = F32(F32(self.u * self.keep_u) + current)
            drive = F32(self.u + self.bias)
            self.v = F32(self.v * self.keep_v)
        else:
            drive = F32(current + self.bias)
        if self.ref > 0:
            self.ref -= 1
        else:
            self.v = F32(self.v + drive)
        spike = bool(self.v > self.th)
        if spike:
            self.v = F32(self.v - self.th) if self.reset == "subtract" else F32(0)
            if self.refractory:
                self.ref = self.refractory
        return spike


def run(graph, sample, timesteps, timing="sync"):
    """Simulate one sample. Returns {population: (T, n) bool spikes} and {readout: v[T]/T}."""
    order = graph.topological_order()
    nodes = graph.nodes
    pops = [n for n in order if nodes[n].role in ("input", "neuron", "readout")]
    neurons = {}
    readout_v = {}
    for p in pops:
        node = nodes[p]
        if node.role == "neuron":
            size = int(np.prod(node.shape))
            neurons[p] = [Neuron(node, i) for i in range(size)]
        elif node.role == "readout":
            readout_v[p] = np.zeros(int(np.prod(node.shape)), dtype=np.float64)
    spikes = {p: [] for p in pops if nodes[p].role != "readout"}
    prev = {p: np.zeros(nodes[p].shape, dtype=F32) for p in pops if nodes[p].role != "readout"}
    for t in range(timesteps):
        out_now = {}
        for name in order:
            node = nodes[name]
            if node.role == "input":
                if node.encoding == "direct":
                    val = sample.astype(F32)
                    out_now[name] = val
                    continue
                s = sample[t].astype(F32)  # spikes encoding: (T, *shape)
                spikes[name].append(s.astype(bool).reshape(-1))
                out_now[name] = s
                continue

            def seen(src):
                snode = nodes[src]
                if snode.role == "neuron" or (snode.role == "input" and snode.encoding != "direct"):
                    return prev[src] if timing == "delay" else out_now[src]
                return out_now[src]

            ins = [seen(i) if nodes[i].role in ("input", "neuron") else out_now[i] for i in graph.inputs_of(name)]
            if node.role == "neuron":
                current = ins[0].astype(F32).reshape(-1)
                for x in ins[1:]:
                    current = (current + x.reshape(-1)).astype(F32)
                s = np.array([nrn.step(F32(c)) for nrn, c in zip(neurons[name], current)], dtype=bool)
                spikes[name].append(s)
                out_now[name] = s.astype(F32).reshape(node.shape)
            elif node.role == "readout":
                current = np.zeros(int(np.prod(node.shape)), dtype=np.float64)
                for x in ins:
                    current += x.reshape(-1)
                if node.bias is not None:
                    current += node.bias.reshape(-1)
                readout_v[name] += current
            else:
                out_now[name] = apply_op(node, ins)
        for p in prev:
            if p in out_now:
                prev[p] = out_now[p]
    rasters = {p: np.array(v).reshape(timesteps, -1) for p, v in spikes.items() if v}
    return rasters, {k: v / timesteps for k, v in readout_v.items()}
