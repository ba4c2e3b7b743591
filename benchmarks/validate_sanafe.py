"""snc's sanafe_loihi estimate against SANA-FE (sanafe 2.2.9) on the same networks and spikes.

    SNC_ORACLE_PYTHON=.venv-oracles/bin/python .venv/bin/python benchmarks/validate_sanafe.py

Prints, as markdown for docs/validation.md: per network the cores and tiles used, the spike
agreement (neurons with equal spike counts) and event counts, then the table network /
component / snc / SANA-FE / ratio. The networks are those of tests/backends/test_sanafe.py
(tests/backends/sanafe_networks.py). Energies are dynamic (SANA-FE models no static power).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snc.backends.sanafe import table  # noqa: E402
from snc.validate_sanafe import validate  # noqa: E402
from tests.backends.sanafe_networks import NETWORKS  # noqa: E402


def main() -> int:
    torch.set_num_threads(1)
    rows, notes = [], []
    for name, build in NETWORKS.items():
        graph, spikes = build()
        c = validate(name, graph, spikes)
        equal = sum(a["equal"] for a in c.spikes.values())
        neurons = sum(a["neurons"] for a in c.spikes.values())
        k = c.counts
        notes.append(
            f"* `{name}`: {int(k['samples'])} samples x {spikes.shape[1]} input steps (+{c.steps - spikes.shape[1]} silent), "
            f"{c.cores} cores on {c.tiles} tiles; equal spike counts for {equal}/{neurons} neurons; "
            f"per inference {k['snc_synops']:.1f} synaptic events (SANA-FE {k['sanafe_synaptic_events']:.1f}), "
            f"{k['snc_messages']:.1f} messages (SANA-FE {k['sanafe_packets']:.1f}), "
            f"{k['snc_active_updates']:.1f} active updates (SANA-FE: {k['sanafe_neurons_updated']:.1f} updated, inputs included)")
        rows.append((name, c.snc, c.sanafe))
    print("\n".join(notes))
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
