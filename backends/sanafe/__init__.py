"""SANA-FE as an independent check of snc's ``sanafe_loihi`` estimate (docs/validation.md).

``describe`` turns a mapped spiking graph and its input spikes into a JSON description,
``run`` simulates it in SANA-FE (a subprocess of the oracle interpreter, ``runner.py``), and
``compare`` sets the two reports side by side, component by component.
"""
from .compare import pad_spikes, sanafe_components, snc_components, spike_agreement, table
from .network import depth, describe, sanafe_core
from .oracle import oracle_python, run

__all__ = ["describe", "depth", "sanafe_core", "oracle_python", "run", "pad_spikes", "snc_components",
           "sanafe_components", "spike_agreement", "table"]
