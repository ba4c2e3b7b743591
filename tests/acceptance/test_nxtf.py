"""Issue 13, validation against silicon: the two NxTF networks (benchmarks/nxtf.py).

The layer shapes are checked against the sources the script cites (NxTF's MNIST tutorial, the
paper's 28-layer MobileNet) with numbers written out here, and the quick run must map the MNIST
CNN onto one Loihi chip. Energies, latencies and accuracies depend on training and are only
checked for structure; the full comparison is ``python benchmarks/nxtf.py``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import snc
from benchmarks import nxtf


def _shapes(module, shape):
    graph = snc.from_torch(module, torch.zeros((2,) + shape))
    return graph, graph.infer_shapes()


def test_mnist_cnn_has_the_tutorial_layer_shapes_and_parameter_count():
    graph, shapes = _shapes(nxtf.mnist_cnn(), (1, 28, 28))
    # NxTF tutorial (Keras summary): 12x12x16, 10x10x32, 4x4x64, 1x1x10; 416 + 4640 + 18496 + 10250 params.
    assert [shapes[f"conv{i}"] for i in (1, 2, 3, 4)] == [(16, 12, 12), (32, 10, 10), (64, 4, 4), (10, 1, 1)]
    params = sum(graph.nodes[f"conv{i}"].weight.size + graph.nodes[f"conv{i}"].bias.size for i in (1, 2, 3, 4))
    assert params == 33_802
    # NxTF's input layer: one compartment per pixel, its bias the pixel (identity weight 1).
    assert shapes["input.relu"] == (1, 28, 28)
    assert np.all(graph.nodes["input.conv"].weight == 1.0)


def test_mobilenet_has_28_weight_layers_and_the_hand_counted_weights():
    graph, shapes = _shapes(nxtf.mobilenet(), (3, 32, 32))
    weighted = [n for n in graph.topological_order()
                if graph.nodes[n].kind in ("Conv2d", "Dense") and not n.startswith("input")]
    assert len(weighted) == 28  # 1 conv + 13 depthwise + 13 pointwise + 1 dense (NxTF abstract)
    assert sum(n.startswith("dw") for n in weighted) == 13 and sum(n.startswith("pw") for n in weighted) == 13
    # Hand count: conv1 3*3*3*32; depthwise 9 per input channel of each block; pointwise C_in*C_out.
    c_in = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024]
    c_out = c_in[1:] + [1024]
    expected = 3 * 3 * 3 * 32 + 9 * sum(c_in) + sum(a * b for a, b in zip(c_in, c_out))
    assert expected == 3_185_088
    conv_weights = sum(graph.nodes[n].weight.size for n in weighted if graph.nodes[n].kind == "Conv2d")
    assert conv_weights == expected
    assert shapes["conv1"] == (32, 16, 16) and shapes["pw1"] == (64, 16, 16)
    assert shapes["pw13"] == (1024, 1, 1) and shapes["fc"] == (10,)


@pytest.fixture(scope="module")
def quick_runs():
    return nxtf.run_mnist(quick=True, samples=20, epochs=1), nxtf.run_mobilenet(quick=True, samples=1)


def test_the_quick_run_maps_the_mnist_cnn_onto_one_loihi_chip(quick_runs):
    mnist, _ = quick_runs
    assert mnist.error is None
    t = mnist.totals
    assert t["chips"] == 1 and t["timesteps"] == 100 and t["samples"] == 20
    populations = [l for l in mnist.layers if l["kind"] == "IF"]
    assert [l["name"] for l in populations] == ["input.relu", "relu1", "relu2", "relu3"]
    assert all(l["cores"] >= 1 for l in populations)
    # No core holds more than 1,024 neurons (Loihi), so the cores are at least the neurons / 1024.
    neurons = sum(l["neurons"] for l in mnist.layers if l["kind"] in ("IF", "Readout"))
    assert math.ceil(neurons / 1024) <= t["cores"] <= 128
    assert t["energy_j"] > 0 and t["latency_s"] > 0 and 0 <= t["accuracy"] <= 1


def test_the_table_sets_snc_beside_every_measured_figure(quick_runs):
    text = nxtf.report(list(quick_runs))
    for measured in ("0.66 mJ", "6.65 ms", "| 14 |", "99.21 %", "102 mJ", "340 ms", "| 861 |", "| 7 |", "91.48 %"):
        assert measured in text
    rows = [r for r in text.splitlines() if r.startswith("| MNIST CNN (T = 100)") or r.startswith("| CIFAR-10 MobileNet (T = 400)")]
    assert len(rows) == 10
    assert all(len(r.split(" | ")) == 6 and r.split(" | ")[5].strip(" |") for r in rows)  # a reason in every row
    assert quick_runs[1].error is None and quick_runs[1].totals["chips"] >= 1
    assert "not trained" in text
