"""Networks for the SANA-FE comparison (tests/backends/test_sanafe.py, benchmarks/validate_sanafe.py).

Weights and thresholds are multiples of 1/64 (SANA-FE truncates the membrane to 1/64 each step)
and no neuron can keep firing on leftover membrane once its input stops, so snc and SANA-FE
produce the same spikes (snc.validate_sanafe explains why that matters)."""
from __future__ import annotations

import numpy as np

import snc.ir as ir
from snc.ir.annotations import set_blocks


def _sixteenths(rng, shape, lo, hi, density):
    return (rng.integers(lo, hi + 1, shape) * (rng.random(shape) < density) / 16).astype(np.float32)


def _positive_fan_in_threshold(w):
    """Per-neuron threshold = the sum of its positive weights (at least 1, a multiple of 1/64):
    with subtractive reset a neuron then never holds more than one threshold after firing."""
    pos = np.clip(w.reshape(w.shape[0], -1), 0, None).sum(axis=1)
    return np.maximum(1.0, np.ceil(pos * 64) / 64).astype(np.float32)


def mlp(seed: int = 0) -> tuple[ir.Graph, np.ndarray]:
    """64 spike inputs -> 96 IF -> 48 IF (subtractive reset) -> 10 membrane readout; 3 samples x 24 steps."""
    rng = np.random.default_rng(seed)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(64,), encoding="spikes"))
    w1 = _sixteenths(rng, (96, 64), -2, 6, 0.5)
    g.add("d1", ir.Dense(weight=w1), ["x"])
    g.add("h1", ir.IF(shape=(96,), threshold=_positive_fan_in_threshold(w1) * 0.5, reset="subtract"), ["d1"])
    w2 = _sixteenths(rng, (48, 96), -3, 8, 0.4)
    g.add("d2", ir.Dense(weight=w2), ["h1"])
    g.add("h2", ir.IF(shape=(48,), threshold=_positive_fan_in_threshold(w2) * 0.5, reset="subtract"), ["d2"])
    w3 = _sixteenths(rng, (10, 48), -4, 4, 1.0)
    g.add("d3", ir.Dense(weight=w3), ["h2"])
    g.add("out", ir.Readout(shape=(10,)), ["d3"])
    g.outputs = ["out"]
    x = (rng.random((3, 24, 64)) < 0.25).astype(np.float32)
    return g, x


def mlp_spread(seed: int = 0) -> tuple[ir.Graph, np.ndarray]:
    """The MLP placed by hand over three tiles, two populations sharing core 0: h1 on cores 0
    and 5 (tiles 0, 1), h2 on core 37 (tile 9, second mesh row), the readout on core 0."""
    g, x = mlp(seed)
    set_blocks(g, {"h1": [(0, 50, 0), (50, 96, 5)], "h2": [(0, 48, 37)], "out": [(0, 10, 0)]})
    g.meta["mapping"]["hw"] = "sanafe_loihi"  # the estimate uses this placement as it is
    return g, x


def conv(seed: int = 1) -> tuple[ir.Graph, np.ndarray]:
    """2x12x12 spikes -> conv 3x3 (6 ch, pad 1) -> IF -> 2x2 average pool -> conv 3x3 (8 ch)
    -> IF -> dense -> 10 membrane readout; zero reset; 2 samples x 16 steps."""
    rng = np.random.default_rng(seed)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 12, 12), encoding="spikes"))
    k1 = _sixteenths(rng, (6, 2, 3, 3), -2, 5, 0.8)
    g.add("c1", ir.Conv2d(weight=k1, padding=(1, 1, 1, 1)), ["x"])
    g.add("s1", ir.IF(shape=(6, 12, 12), threshold=0.75, reset="zero"), ["c1"])
    g.add("p1", ir.AvgPool2d(kernel=(2, 2), stride=(2, 2)), ["s1"])  # weights / 4: multiples of 1/64
    k2 = _sixteenths(rng, (8, 6, 3, 3), -2, 6, 0.6)
    g.add("c2", ir.Conv2d(weight=k2), ["p1"])
    g.add("s2", ir.IF(shape=(8, 4, 4), threshold=0.5, reset="zero"), ["c2"])
    g.add("f", ir.Flatten(), ["s2"])
    w3 = _sixteenths(rng, (10, 128), -4, 4, 1.0)
    g.add("d3", ir.Dense(weight=w3), ["f"])
    g.add("out", ir.Readout(shape=(10,)), ["d3"])
    g.outputs = ["out"]
    x = (rng.random((2, 16, 2, 12, 12)) < 0.2).astype(np.float32)
    return g, x


NETWORKS = {"mlp": mlp, "mlp-spread": mlp_spread, "conv": conv}
