"""The coded LM run event by event: every projection of a small hybrid decoder in snc's spiking
simulator (its dense compute in torch) gives the logits of the pseudo-spiking (V_th x count)
computation within float tolerance, and the simulator's synaptic operations are the coding's
events times each projection's outputs."""
from __future__ import annotations

import numpy as np
import torch

from examples.spiking_lm.model import ByteLM, Config
from snc.lm.pseudo import coded, simulated


def test_simulated_projections_give_the_pseudo_spiking_logits():
    torch.manual_seed(0)
    model = ByteLM(Config(hidden=32, layers=2, heads=2, mlp=64, window=8, context=12)).eval()
    tokens = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 12)))
    with torch.no_grad():
        with coded(model, k=3.0, coding="ternary", projections=model.projections()) as probe:
            pseudo = model(tokens).numpy()
        with simulated(model, k=3.0, coding="ternary", projections=model.projections()) as counts:
            events = model(tokens).numpy()
        plain = model(tokens).numpy()
    np.testing.assert_allclose(events, pseudo, rtol=1e-4, atol=1e-4)
    assert np.abs(plain - pseudo).max() > 1e-3  # the coding does change the logits: the test can fail
    layers = probe.layers()
    for name, c in counts.items():
        assert c["tokens"] == 24
        assert c["events"] == layers[name]["events"], name
        assert c["synops"] == layers[name]["effective_acs"], name  # one addition per event and output
