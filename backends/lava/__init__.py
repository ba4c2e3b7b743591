"""snc.backends.lava: export compiled graphs as Lava programs and run them in Lava's environment.

    export(graph, "out_dir")                      # a self-contained folder: run.py, network.py, params.npz
    result = simulate_lava(graph, x, timesteps=64)   # the same result structure as snc's simulator
    lava, ours, report = check(graph, x)          # spike-for-spike comparison with the simulator
"""
from .emitter import build_export, export, fixed_point_ready
from .runner import check, compare, lava_python, run_exported, simulate_lava

__all__ = ["export", "build_export", "fixed_point_ready", "simulate_lava", "check", "compare", "run_exported", "lava_python"]
