"""Traffic between blocks and their placement on the mesh of cores (see
``snc/passes/map_to_cores.py``)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from snc.hw.mesh import Mesh

from .connectivity import _Population

# Swap rounds on big block graphs stop after about this many edge evaluations (deterministic).
PLACEMENT_EDGE_BUDGET = 30_000_000

# ---------------------------------------------------------------------------------------------
# Traffic and per-core figures.


def _block_stats(pops: dict[str, _Population], rates: dict[str, np.ndarray]) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """Per-block rows (population, start, stop, neurons, synapses, memory_bits, fan_in, fan_out)
    in topological order, and the traffic between blocks as (u, v, spikes per step) arrays."""
    offset: dict[str, int] = {}
    rows: list[dict] = []
    for name, pop in pops.items():
        offset[name] = len(rows)
        csyn = np.concatenate(([0], np.cumsum(pop.synapses)))
        cbits = np.concatenate(([0], np.cumsum(pop.bits)))
        present = pop.present_cumsum()
        for s, e in pop.bounds:
            rows.append({"population": name, "start": s, "stop": e, "neurons": int(present[e] - present[s]),
                         "synapses": int(csyn[e] - csyn[s]), "memory_bits": int(cbits[e] - cbits[s]),
                         "fan_in": 0, "fan_out": 0})
    us, vs, ts = [], [], []
    for name, pop in pops.items():
        for conn in pop.incoming:
            ptr, cols = conn.block_sources()  # target block k: sorted distinct sources
            fan_in = np.diff(ptr)
            for k in range(len(fan_in)):
                rows[offset[name] + k]["fan_in"] += int(fan_in[k])
            src = pops.get(conn.source)  # None for the host (Input)
            if src is None or not cols.size:
                continue
            # One (u, v) entry per run of sources in one source block u, within each block v.
            u = np.searchsorted(src.starts, cols, side="right") - 1
            v = np.repeat(np.arange(len(fan_in), dtype=np.int64), fan_in)
            seg = np.flatnonzero(np.concatenate(([True], (u[1:] != u[:-1]) | (v[1:] != v[:-1]))))
            us.append(offset[conn.source] + u[seg])
            vs.append(offset[name] + v[seg])
            ts.append(np.add.reduceat(rates[conn.source][cols], seg))
    u = np.concatenate(us) if us else np.zeros(0, np.int64)
    v = np.concatenate(vs) if vs else np.zeros(0, np.int64)
    t = np.concatenate(ts) if ts else np.zeros(0, np.float64)
    fan_out = np.bincount(u, minlength=len(rows))
    for k, row in enumerate(rows):
        row["fan_out"] = int(fan_out[k])
    return rows, u.astype(np.int64), v.astype(np.int64), t.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Placement.


class _Placer:
    """Pairwise-swap improvement of a block -> core assignment (items >= n_blocks are empty
    cores). Cost = sum over block pairs of traffic x (tile hops + (chip_weight - 1) x chip
    crossings): a message between chips costs chip_weight hops. Chips stand in a row along x, so
    the crossing term is folded into a stretched x coordinate (each chip boundary chip_weight - 1
    extra columns wide) and every cost below stays |dx| + |dy|."""

    def __init__(self, mesh: Mesh, chips: int, n_blocks: int, u: np.ndarray, v: np.ndarray, t: np.ndarray,
                 chip_weight: int = 1) -> None:
        self.mesh = mesh
        self.slots = chips * mesh.cores_per_chip
        self.n_blocks = n_blocks
        chip, gx, gy = mesh.coordinates(np.arange(self.slots))
        self.tx = gx.astype(np.int32)  # true global tile column (for moves)
        self.gx, self.gy = (gx + chip * (max(1, int(chip_weight)) - 1)).astype(np.int32), gy.astype(np.int32)
        self.width = chips * mesh.tiles_x
        a = sp.coo_matrix((t, (u, v)), shape=(self.slots, self.slots)).tocsr()
        a = (a + a.T).tocsr()
        a.setdiag(0)
        a.eliminate_zeros()
        a.sum_duplicates()
        self.ptr, self.nbr, self.w = a.indptr.astype(np.int64), a.indices.astype(np.int32), a.data
        self.degree = np.diff(self.ptr)
        self.edge_row = np.repeat(np.arange(self.slots, dtype=np.int32), self.degree)
        self.occupant = np.empty(self.slots, dtype=np.int64)
        self.start(mesh.snake_order(self.slots))

    def start(self, cores: np.ndarray, rank: np.ndarray | None = None) -> None:
        """Block i on cores[rank[i]] (rank: the block's place in a population order; default the
        topological order), empty cores on the rest."""
        cores = np.asarray(cores, dtype=np.int64)
        self.pos = cores.copy()
        if rank is not None:
            self.pos[: self.n_blocks] = cores[rank]
        self.occupant[self.pos] = np.arange(self.slots)

    def column_snake(self) -> np.ndarray:
        """Cores tile column by tile column over the chips' global mesh, every other column
        reversed: like ``Mesh.snake_order`` it fills chip after chip, but consecutive tiles are
        always neighbours, also from one chip to the next."""
        m = self.mesh
        cols = []
        for gx in range(self.width):
            ys = range(m.tiles_y) if gx % 2 == 0 else range(m.tiles_y - 1, -1, -1)
            for ty in ys:
                first = (gx // m.tiles_x) * m.cores_per_chip + (ty * m.tiles_x + gx % m.tiles_x) * m.cores_per_tile
                cols.extend(range(first, first + m.cores_per_tile))
        return np.asarray(cols, dtype=np.int64)

    def _coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Tile coordinates of every item where it sits now."""
        return self.gx[self.pos], self.gy[self.pos]

    def cost(self) -> float:
        x, y = self._coords()
        d = np.abs(x[self.edge_row] - x[self.nbr]) + np.abs(y[self.edge_row] - y[self.nbr])
        return float(0.5 * np.dot(self.w, d))

    def _expand(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(candidate number, edge index) of every edge of the given items."""
        counts = self.degree[items]
        cand = np.repeat(np.arange(len(items), dtype=np.int32), counts)
        e = np.arange(int(counts.sum()), dtype=np.int64)
        e += np.take(self.ptr[items] - (np.cumsum(counts) - counts), cand)
        return cand, e

    def _side(self, i: np.ndarray, j: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Change of the costs of i's edges when i and j swap cores, an i-j edge counted as
        unchanged (its length stays); delta of the swap = _side(i, j) + _side(j, i)."""
        cand, e = self._expand(i)
        n = self.nbr[e]
        xn, yn = x[n], y[n]
        # |x_j - x_n| + |y_j - y_n| - |x_i - x_n| - |y_i - y_n| per edge, in place (int32).
        change = np.take(x[j], cand)
        change -= xn
        np.abs(change, out=change)
        part = np.take(y[j], cand)
        part -= yn
        np.abs(part, out=part)
        change += part
        np.take(x[i], cand, out=part)
        part -= xn
        np.abs(part, out=part)
        change -= part
        np.take(y[i], cand, out=part)
        part -= yn
        np.abs(part, out=part)
        change -= part
        change[n == np.take(j, cand)] = 0
        return np.bincount(cand, self.w[e] * change, minlength=len(i))

    def _candidates(self, kind: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.flatnonzero(self.degree[: self.n_blocks] > 0)
        if not i.size:
            return i, i
        xi, yi = x[i], y[i]
        if kind == "centroid":
            cand, e = self._expand(i)
            n = self.nbr[e]
            w = self.w[e]
            wsum = np.bincount(cand, w, minlength=len(i))
            tx = np.rint(np.bincount(cand, w * x[n], minlength=len(i)) / wsum).astype(np.int64)
            ty = np.rint(np.bincount(cand, w * y[n], minlength=len(i)) / wsum).astype(np.int64)
        else:
            dx, dy = {"+x": (1, 0), "-x": (-1, 0), "+y": (0, 1), "-y": (0, -1)}[kind]
            tx, ty = xi.astype(np.int64) + dx, yi.astype(np.int64) + dy
        tx = np.clip(tx, 0, self.width - 1)
        ty = np.clip(ty, 0, self.mesh.tiles_y - 1)
        m = self.mesh
        slot = self.pos[i] % m.cores_per_tile
        target = (tx // m.tiles_x) * m.cores_per_chip + ((ty * m.tiles_x + tx % m.tiles_x) * m.cores_per_tile) + slot
        keep = (tx != xi) | (ty != yi)
        return i[keep], self.occupant[target[keep]]

    def improve(self, rounds: int) -> int:
        """Swap rounds; returns how many rounds ran. Big block graphs get fewer rounds: about
        PLACEMENT_EDGE_BUDGET edge evaluations in all, never fewer than one of each kind."""
        kinds = ("centroid", "+x", "-x", "+y", "-y")
        if not self.w.size:
            return 0
        rounds = min(rounds, max(len(kinds), PLACEMENT_EDGE_BUDGET // (3 * self.w.size)))
        tol = 1e-9 * float(self.w.max())
        idle = 0
        done = 0
        for r in range(rounds):
            if idle >= len(kinds):
                break
            done += 1
            x, y = self._coords()
            i, j = self._candidates(kinds[r % len(kinds)], self.tx[self.pos], y)
            if not i.size:
                idle += 1
                continue
            delta = self._side(i, j, x, y) + self._side(j, i, x, y)
            order = np.argsort(delta, kind="stable")
            order = order[delta[order] < -tol]
            locked = np.zeros(self.slots, dtype=bool)
            took_i, took_j = [], []
            for k in order.tolist():
                a, b = int(i[k]), int(j[k])
                if locked[a] or locked[b]:
                    continue
                # Independent swaps only: no moved item touches another swap's items, so each
                # delta stays exact and the improvements add up.
                locked[a] = locked[b] = True
                locked[self.nbr[self.ptr[a]:self.ptr[a + 1]]] = True
                locked[self.nbr[self.ptr[b]:self.ptr[b + 1]]] = True
                took_i.append(a)
                took_j.append(b)
            if not took_i:
                idle += 1
                continue
            idle = 0
            a, b = np.asarray(took_i), np.asarray(took_j)
            pa, pb = self.pos[a].copy(), self.pos[b].copy()
            self.pos[a], self.pos[b] = pb, pa
            self.occupant[pb], self.occupant[pa] = a, b
        return done


def _depth_first_rank(pops: dict[str, _Population]) -> np.ndarray:
    """Place of each block (topological numbering) in a depth-first topological order of the
    populations: after a population, the consumers it made ready come first, so chains stay
    together even where the graph's own order interleaves independent branches."""
    names = list(pops)
    index = {n: i for i, n in enumerate(names)}
    waiting = [len({c.source for c in pops[n].incoming if c.source in pops}) for n in names]
    users = [sorted({index[c.target] for c in pops[n].outgoing}) for n in names]
    stack = [i for i in reversed(range(len(names))) if waiting[i] == 0]
    sequence = []
    while stack:
        i = stack.pop()
        sequence.append(i)
        ready = []
        for j in users[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
        stack.extend(reversed(ready))
    first = np.cumsum([0] + [len(pops[n].starts) for n in names])
    blocks = np.concatenate([np.arange(first[i], first[i + 1]) for i in sequence])
    rank = np.empty(len(blocks), dtype=np.int64)
    rank[blocks] = np.arange(len(blocks))
    return rank


