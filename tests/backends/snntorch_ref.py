"""snnTorch as a reference implementation: the spikes of an RLeaky population (all-to-all
recurrent Linear, no bias) behind a bias-free Linear, step by step."""
from __future__ import annotations

import numpy as np


def rleaky_spikes(x: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, *, beta: float, threshold: float) -> np.ndarray:
    """x (N, T, n_in) spikes -> (N, T, n) bool spikes of snntorch.RLeaky (reset by subtraction)."""
    import snntorch
    import torch

    n_out, n_in = w_in.shape
    fc = torch.nn.Linear(n_in, n_out, bias=False)
    lif = snntorch.RLeaky(beta=beta, threshold=threshold, linear_features=n_out, all_to_all=True,
                          reset_mechanism="subtract")
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(w_in))
        lif.recurrent.weight.copy_(torch.from_numpy(w_rec))
        lif.recurrent.bias.zero_()
        spk, mem = lif.init_rleaky()
        out = []
        xt = torch.from_numpy(x)
        for t in range(x.shape[1]):
            spk, mem = lif(fc(xt[:, t]), spk, mem)
            out.append(spk.numpy().astype(bool))
    return np.stack(out, axis=1)
