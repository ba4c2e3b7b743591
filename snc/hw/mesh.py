"""Where cores sit on a chip's 2-D mesh, and how far a spike travels between two of them.

Global core index g: chip = g // cores_per_chip; within the chip, tile = local // cores_per_tile
and slot = local % cores_per_tile; tiles are numbered row by row, tile_x = tile % tiles_x,
tile_y = tile // tiles_x. Chips stand in a row along x (east-west), so a core's global tile
coordinates are (chip * tiles_x + tile_x, tile_y). A message from core a to core b travels
|dx| east-west and |dy| north-south tile hops, crossing |chip_a - chip_b| chip boundaries;
between cores of one tile it makes no hop (a local delivery).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import HardwareProfile


@dataclass(frozen=True)
class Mesh:
    cores_per_chip: int
    cores_per_tile: int
    tiles_x: int
    tiles_y: int

    @classmethod
    def from_profile(cls, profile: HardwareProfile) -> "Mesh":
        x, y = profile.mesh
        return cls(int(profile["cores_per_chip"]), int(profile["cores_per_tile"]), x, y)

    def coordinates(self, core: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chip, global tile x, tile y) of global core indices."""
        core = np.asarray(core, dtype=np.int64)
        chip = core // self.cores_per_chip
        tile = (core % self.cores_per_chip) // self.cores_per_tile
        return chip, chip * self.tiles_x + tile % self.tiles_x, tile // self.tiles_x

    def hops(self, a: np.ndarray | int, b: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(east-west hops, north-south hops, chip crossings) from cores a to cores b (broadcast)."""
        ca, xa, ya = self.coordinates(a)
        cb, xb, yb = self.coordinates(b)
        return np.abs(xa - xb), np.abs(ya - yb), np.abs(ca - cb)

    def tiles_spanned(self, cores: np.ndarray) -> int:
        """Number of tiles in the bounding box of the given cores (for barrier synchronisation)."""
        cores = np.asarray(cores)
        if cores.size == 0:
            return 1
        _, x, y = self.coordinates(cores)
        return int((x.max() - x.min() + 1) * (y.max() - y.min() + 1))

    def snake_order(self, n_cores: int) -> np.ndarray:
        """The first ``n_cores`` global core indices in boustrophedon order (row by row, every other
        row reversed, chip after chip): consecutive entries are neighbours on the mesh."""
        per_chip = []
        for ty in range(self.tiles_y):
            xs = range(self.tiles_x) if ty % 2 == 0 else range(self.tiles_x - 1, -1, -1)
            for tx in xs:
                tile = ty * self.tiles_x + tx
                per_chip.extend(tile * self.cores_per_tile + s for s in range(self.cores_per_tile))
        per_chip = np.asarray(per_chip, dtype=np.int64)
        chips = -(-n_cores // self.cores_per_chip)
        order = (np.arange(chips)[:, None] * self.cores_per_chip + per_chip[None, :]).ravel()
        return order[:n_cores]
