"""The recurrent test network the neuron-model tests share: spikes x -> Dense ff -> (+ the
population's own spikes through Dense rec and a Delay) -> the population h -> a readout."""
from __future__ import annotations

import numpy as np

import snc.ir as ir


def recurrent(population: ir.Node, w_in: np.ndarray, w_rec: np.ndarray, delay: int, readout: np.ndarray,
              name: str = "rnn") -> ir.Graph:
    """x (w_in's inputs) -> ff -> sum <- z (Delay) <- rec <- h; h -> out_w (``readout``) -> out."""
    g = ir.Graph(name)
    g.add("x", ir.Input(shape=(w_in.shape[1],), encoding="spikes"))
    g.add("ff", ir.Dense(weight=np.asarray(w_in, np.float32)), ["x"])
    g.add("sum", ir.Add(), ["ff"])
    g.add("h", population, ["sum"])
    g.add("rec", ir.Dense(weight=np.asarray(w_rec, np.float32)), ["h"])
    g.add("z", ir.Delay(steps=delay), ["rec"])
    g.set_inputs("sum", ["ff", "z"])
    g.add("out_w", ir.Dense(weight=np.asarray(readout, np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(readout.shape[0],)), ["out_w"])
    g.outputs = ["out"]
    return g
