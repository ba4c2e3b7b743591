"""The parts of the ``map`` pass (``snc/passes/map_to_cores.py``): connectivity of the
projections, splitting populations into core-sized blocks, and placing the blocks."""
