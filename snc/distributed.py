"""Sample shards of a simulation or an estimate on a Dask cluster (``pip install snc[distributed]``).

    est = snc.distributed.estimate(graph, x, labels=y, hw=["loihi"], workers=4)      # local cluster
    est = snc.distributed.estimate(graph, x, labels=y, cluster="tcp://10.0.0.5:8786")  # a running one
    res = snc.distributed.simulate_sharded(graph, x, labels=y, arithmetic="fixed", client=client)

The samples are split into contiguous shards; every shard runs snc's own ``simulate`` with the
same options (and, for an estimate, the same ``ProjectedCounts`` recorders) on a worker, and the
driver merges the shards into one ``SimResult`` before the usual post-processing
(``snc.estimate.summarize``). The merge is exact, not an approximation:

* a sample's simulation does not depend on the other samples it is batched with (the simulator's
  batch size does not change its results), so every per-sample array of a shard (spikes, synaptic
  operations, active updates, each connection layer's effective operations, readout outputs,
  predictions) is the single-process array's rows, bit for bit; the driver concatenates them;
* what is summed over samples (each neuron's spikes, fixed-point overflow counts, the cycle
  model's per-step projected counts) is integer-valued: the projection matrices hold 0/1
  indicators, synapse counts and hop counts, so the shard sums are exact integers in float64 and
  their sum is the single-process sum; the cycle model is linear in these sums and is evaluated
  once, on the merged counts.

The compiled graph travels once per worker: as its .snir bytes (``snc.ir.artifact.to_bytes``),
with the recorders' matrices as .npz bytes, broadcast with ``client.scatter`` and decoded once
per worker process; tasks refer to it by key. Nothing the user supplied is pickled: samples go as
numpy arrays, results come back as snc's own ``SimResult``.

Rate-encoded inputs are refused when sharded: their Bernoulli draws are seeded by the sample's
index within the simulated array, which a shard would renumber.
"""
from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from snc.errors import InvalidData, InvalidOption, SncError

INSTALL_HINT = "pip install snc[distributed]"


class DistributedUnavailable(SncError):
    """Dask distributed is not installed (the optional extra ``snc[distributed]``)."""


def require_dask():
    """The ``distributed`` module, or one line saying how to install it."""
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as exc:
        raise DistributedUnavailable(f"running on several workers needs Dask distributed, which is not installed "
                                     f"({exc.name or 'distributed'}): {INSTALL_HINT}") from None
    return distributed


# --- what travels to the workers ---------------------------------------------------------------

_ARRIVALS: dict[str, int] = {}  # payload digest -> times a payload arrived in this process
_ARRIVALS_LOCK = threading.Lock()


def arrivals() -> dict[str, int]:
    """How many times each payload (by digest) was deserialised in this process: 1 per worker
    when the graph is sent once per worker (``client.run(snc.distributed.arrivals)``)."""
    with _ARRIVALS_LOCK:
        return dict(_ARRIVALS)


def _matrices_to_bytes(mats: dict[str, Any]) -> bytes:
    """{population: matrix (sparse or dense)} as .npz bytes (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    names = list(mats)
    for i, name in enumerate(names):
        m = mats[name]
        if sp.issparse(m):
            m = sp.csr_matrix(m)
            arrays[f"{i}.data"], arrays[f"{i}.indices"], arrays[f"{i}.indptr"] = m.data, m.indices, m.indptr
            arrays[f"{i}.shape"] = np.asarray(m.shape, dtype=np.int64)
        else:
            arrays[f"{i}.dense"] = np.asarray(m)
    arrays["names"] = np.frombuffer(json.dumps(names).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _matrices_from_bytes(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        names = json.loads(z["names"].tobytes().decode())
        out = {}
        for i, name in enumerate(names):
            if f"{i}.dense" in z.files:
                out[name] = z[f"{i}.dense"]
            else:
                shape = tuple(int(s) for s in z[f"{i}.shape"])
                out[name] = sp.csr_matrix((z[f"{i}.data"], z[f"{i}.indices"], z[f"{i}.indptr"]), shape=shape)
        return out


class Payload:
    """What every worker needs once: the graph as .snir bytes and the recorders to attach, each
    ``("projected", name, spike matrices .npz, active matrices .npz)``, ``("spikes",)`` or
    ``("neurobench",)``. Serialised as these bytes; decoded lazily, once per process."""

    def __init__(self, graph_bytes: bytes, recorders: list[tuple]) -> None:
        self.graph_bytes = graph_bytes
        self.recorder_specs = recorders
        h = hashlib.sha256(graph_bytes)
        for spec in recorders:
            for part in spec:
                h.update(part if isinstance(part, bytes) else str(part).encode())
        self.digest = h.hexdigest()[:16]
        self._init_cache()

    def _init_cache(self) -> None:
        self._lock = threading.Lock()
        self._graph = None
        self._matrices: list | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"graph_bytes": self.graph_bytes, "recorder_specs": self.recorder_specs, "digest": self.digest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_cache()
        with _ARRIVALS_LOCK:
            _ARRIVALS[self.digest] = _ARRIVALS.get(self.digest, 0) + 1

    def graph(self):
        from snc.ir.artifact import from_bytes

        with self._lock:
            if self._graph is None:
                self._graph = from_bytes(self.graph_bytes, "<distributed payload>")
                self._matrices = [None if spec[0] != "projected" else
                                  (_matrices_from_bytes(spec[2]), _matrices_from_bytes(spec[3]))
                                  for spec in self.recorder_specs]
            return self._graph

    def recorders(self) -> list:
        """Fresh recorders for one shard (they accumulate state)."""
        from snc.backends.sim.recorders import NeuroBenchCounter, ProjectedCounts, SpikeRecorder

        self.graph()
        out = []
        for spec, mats in zip(self.recorder_specs, self._matrices):
            if spec[0] == "projected":
                rec = ProjectedCounts(*mats)
                rec.name = spec[1]
            elif spec[0] == "spikes":
                rec = SpikeRecorder()
            else:
                rec = NeuroBenchCounter()
            out.append(rec)
        return out


def _recorder_spec(rec) -> tuple:
    from snc.backends.sim.recorders import NeuroBenchCounter, ProjectedCounts, SpikeRecorder

    if isinstance(rec, ProjectedCounts):
        return ("projected", rec.name, _matrices_to_bytes(rec.spike_matrices), _matrices_to_bytes(rec.active_matrices))
    if isinstance(rec, SpikeRecorder):
        return ("spikes",)
    if isinstance(rec, NeuroBenchCounter):
        return ("neurobench",)
    raise InvalidOption(f"recorder {type(rec).__name__} cannot run in shards (ProjectedCounts, SpikeRecorder and "
                        f"NeuroBenchCounter can)")


def _run_shard(payload: Payload, x: np.ndarray, labels: np.ndarray | None, start: int, options: dict[str, Any]):
    """One shard on a worker: snc's own simulate with the shared options."""
    from snc.backends.sim import simulate

    rasters = [r - start for r in options["rasters"] if start <= r < start + len(x)]
    return simulate(payload.graph(), x, labels=labels, timesteps=options["timesteps"], batch_size=options["batch_size"],
                    arithmetic=options["arithmetic"], timing=options["timing"], seed=options["seed"], rasters=rasters,
                    recorders=payload.recorders())


# --- merging -----------------------------------------------------------------------------------

def merge(parts: Sequence[tuple[int, Any]], labels: np.ndarray | None = None, wall_seconds: float = 0.0):
    """One ``SimResult`` from shard results ``[(first sample index, SimResult)]`` covering the
    samples contiguously: per-sample arrays concatenated, sums over samples added."""
    from snc.backends.sim.result import PopulationStats, SimResult
    from snc.backends.sim.synaptic_ops import ConnectionOps

    parts = sorted(parts, key=lambda p: p[0])
    expected = 0
    for start, r in parts:
        if start != expected:
            raise InvalidData(f"shards do not cover the samples contiguously: a shard starts at {start}, expected {expected}")
        expected += r.samples
    results = [r for _, r in parts]
    first = results[0]

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays, axis=0)

    connections = {}
    for name, c in first.connections.items():
        connections[name] = ConnectionOps(name, c.kind, c.destination, cat([r.connections[name].ops for r in results]),
                                          cat([r.connections[name].mac for r in results]), c.dense_per_step)
    populations = {}
    for name, p in first.populations.items():
        ps = [r.populations[name] for r in results]
        rasters = {start + i: a for (start, r) in parts for i, a in r.populations[name].rasters.items()}
        populations[name] = PopulationStats(
            name=name, kind=p.kind, neurons=p.neurons, timesteps=p.timesteps,
            spikes=cat([q.spikes for q in ps]), synops=cat([q.synops for q in ps]),
            active_updates=cat([q.active_updates for q in ps]),
            neuron_spikes=np.sum([q.neuron_spikes for q in ps], axis=0, dtype=p.neuron_spikes.dtype),
            analog=p.analog, spiking=p.spiking, rasters=rasters,
            chunks_event=sum(q.chunks_event for q in ps), chunks_dense=sum(q.chunks_dense for q in ps),
            incoming=None if p.incoming is None else {c: connections[c] for c in p.incoming},
        )
    overflow: dict[str, dict[str, int]] = {}
    for r in results:
        for name, counts in r.overflow.items():
            acc = overflow.setdefault(name, {})
            for k, v in counts.items():
                acc[k] = acc.get(k, 0) + int(v)
    extra = {key: _merge_extra(key, [r.extra[key] for r in results]) for key in first.extra}
    return SimResult(
        predictions=cat([r.predictions for r in results]),
        outputs={k: cat([r.outputs[k] for r in results]) for k in first.outputs},
        populations=populations, timesteps=first.timesteps, arithmetic=first.arithmetic, timing=first.timing,
        labels=labels, wall_seconds=wall_seconds, overflow=overflow, extra=extra, connections=connections,
    )


def _merge_extra(key: str, values: list) -> Any:
    if key.startswith("projected"):  # {"spikes": {pop: (T, m)}, "active": {pop: (T, k)}}: sums over samples
        return {part: {pop: np.sum([v[part][pop] for v in values], axis=0) for pop in values[0][part]}
                for part in values[0]}
    if key == "spikes":  # {pop: (T, samples, n)}
        return {pop: np.concatenate([v[pop] for v in values], axis=1) for pop in values[0]}
    if key == "neurobench":  # per-sample arrays
        return {k: np.concatenate([v[k] for v in values]) for k in values[0]}
    raise InvalidOption(f"cannot merge the shards' {key!r} results")


# --- running -----------------------------------------------------------------------------------

@contextmanager
def connect(client=None, workers: int | None = None, cluster: str | None = None) -> Iterator[Any]:
    """A Dask client: ``client`` as given, one connected to the scheduler at ``cluster``
    (``tcp://HOST:PORT``), or a local cluster of ``workers`` processes of one thread each."""
    distributed = require_dask()
    given = sum(v is not None for v in (client, workers, cluster))
    if given != 1:
        raise InvalidOption("give exactly one of client=, workers= (a local cluster) or cluster= (a scheduler address)")
    if client is not None:
        yield client
        return
    if cluster is not None:
        if "://" not in cluster:
            raise InvalidOption(f"--cluster wants a scheduler address like tcp://HOST:8786, got {cluster!r}")
        try:
            c = distributed.Client(cluster, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise SncError(f"cannot reach the Dask scheduler at {cluster}: {exc}") from None
        try:
            yield c
        finally:
            c.close()
        return
    if int(workers) < 1:
        raise InvalidOption(f"workers must be >= 1, got {workers}")
    import logging

    with distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=logging.ERROR) as lc, \
            distributed.Client(lc) as c:
        yield c


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges of ``n`` samples in ``shards`` parts (sizes differ by <= 1)."""
    shards = max(1, min(int(shards), n)) if n else 1
    edges = np.linspace(0, n, shards + 1).round().astype(int) if n else np.array([0, 0])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _run(graph, data, labels, *, recorders: list, options: dict[str, Any], client, workers, cluster, shards,
         progress: Callable[[int, int], None] | None):
    distributed = require_dask()
    from snc.ir.artifact import to_bytes

    data = np.asarray(data)
    n = len(data)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InvalidData(f"labels must be {n} integers, got shape {labels.shape}")
    if shards is not None and int(shards) < 1:
        raise InvalidOption(f"shards must be >= 1, got {shards}")
    rate = [name for name in graph.input_names if graph.nodes[name].encoding == "rate"]
    t0 = time.perf_counter()
    with connect(client, workers, cluster) as c:
        n_workers = max(1, len(c.scheduler_info().get("workers", {})))
        bounds = shard_bounds(n, shards if shards is not None else 2 * n_workers)
        if rate and len(bounds) > 1:
            raise InvalidOption(f"input {rate[0]!r} is rate-encoded: its spikes are drawn per sample index, which "
                                f"sharding renumbers; simulate it in one process")
        payload = Payload(to_bytes(graph), [_recorder_spec(r) for r in recorders])
        [sent] = c.scatter([payload], broadcast=True, hash=False)
        futures = {}
        for a, b in bounds:
            # The shard's samples travel inside its task (not scattered): the scheduler keeps them,
            # so a shard whose worker dies reruns elsewhere. The graph is on every worker already.
            fut = c.submit(_run_shard, sent, data[a:b], None if labels is None else labels[a:b], a, options,
                           pure=False, retries=2, key=f"snc-shard-{payload.digest}-{a}-{b}-{time.monotonic_ns()}")
            futures[fut] = a
        parts = []
        try:
            for done, fut in enumerate(distributed.as_completed(list(futures)), 1):
                parts.append((futures[fut], fut.result()))
                if progress is not None:
                    progress(done, len(bounds))
        finally:
            c.cancel(list(futures) + [sent])
    return merge(parts, labels, wall_seconds=time.perf_counter() - t0)


def simulate_sharded(
    graph,
    data: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    timesteps: int | None = None,
    batch_size: int | None = None,
    arithmetic: str = "float32",
    timing: str = "sync",
    rasters: Sequence[int] = (),
    seed: int = 0,
    recorders: Sequence = (),
    progress: Callable[[int, int], None] | None = None,
    client=None,
    workers: int | None = None,
    cluster: str | None = None,
    shards: int | None = None,
):
    """``snc.backends.sim.simulate`` over sample shards on a Dask cluster; the same ``SimResult``.

    client / workers / cluster: exactly one (see ``connect``). shards: contiguous sample shards
    (default: twice the workers). progress: called as progress(shards_done, shards_total).
    recorders: ProjectedCounts, SpikeRecorder or NeuroBenchCounter, rebuilt on the workers;
    their merged results land in ``SimResult.extra`` as in one process.
    """
    require_dask()
    timesteps = int(timesteps if timesteps is not None else graph.meta.get("timesteps", 64))
    options = {"timesteps": timesteps, "batch_size": batch_size, "arithmetic": arithmetic, "timing": timing,
               "seed": seed, "rasters": [int(r) for r in rasters]}
    return _run(graph, data, labels, recorders=list(recorders), options=options, client=client, workers=workers,
                cluster=cluster, shards=shards, progress=progress)


def estimate(
    graph,
    data: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    hw: Sequence = ("loihi",),
    baseline: str | None = None,
    device_baseline: str | None = None,
    timesteps: int | None = None,
    batch_size: int | None = None,
    calibration: np.ndarray | None = None,
    raster_sample: int = 0,
    arithmetic: str = "float32",
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    client=None,
    workers: int | None = None,
    cluster: str | None = None,
    shards: int | None = None,
):
    """``snc.estimate.estimate`` with its simulation in sample shards on a Dask cluster: the same
    ``Estimate`` (document, merged result, mapped graphs, costs). ``arithmetic`` is the
    simulation's (``snc.estimate.estimate`` simulates float32); the rest as there and in
    ``simulate_sharded``."""
    from snc import estimate as single

    require_dask()  # before any mapping work
    setup = single.prepare(graph, data, hw=hw, baseline=baseline or single.DEFAULT_BASELINE,
                           device_baseline=device_baseline, timesteps=timesteps, calibration=calibration, stage=stage)
    if stage:
        stage("snc: simulating in shards")
    options = {"timesteps": setup.timesteps, "batch_size": batch_size, "arithmetic": arithmetic, "timing": "sync",
               "seed": 0, "rasters": [raster_sample] if len(data) else []}
    result = _run(graph, data, labels, recorders=setup.recorders, options=options, client=client, workers=workers,
                  cluster=cluster, shards=shards, progress=progress)
    return single.summarize(graph, setup, result, labels=labels, device_baseline=device_baseline)
