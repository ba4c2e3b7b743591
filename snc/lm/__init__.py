"""snc.lm: spiking language models the SpikingBrain way (issue 11, in progress).

* ``snc.ir.spike_coding`` - the adaptive-threshold coding of projection inputs and its statistics;
* ``snc.lm.energy`` - per-operation energy of coded projections against MAC baselines;
* ``snc.lm.longctx`` - the long-context cost model of softmax, sliding-window and linear attention.
"""
