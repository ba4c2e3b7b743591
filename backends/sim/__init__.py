"""snc.backends.sim: the cycle-approximate event simulator.

    result = simulate(graph, x, labels=y, timesteps=64)      # float32, layer-synchronous
    result = simulate(graph, x, arithmetic="fixed", timing="delay")   # Loihi/Lava semantics
"""
from ..plan import Plan, Projection, build_plan
from .result import PopulationStats, SimResult
from .simulator import ARITHMETIC, TIMING, simulate

__all__ = ["simulate", "SimResult", "PopulationStats", "build_plan", "Plan", "Projection", "ARITHMETIC", "TIMING"]
