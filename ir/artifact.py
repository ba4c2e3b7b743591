"""The ``.snir`` artifact: one zip holding ``graph.json`` (structure) and ``arrays.npz`` (tensors).

Loading never unpickles (``np.load(..., allow_pickle=False)``), checks the format version and
rebuilds every node through its dataclass, so a round trip is exact: arrays bit for bit, floats
through ``repr``, tuples as tuples. Saving writes a temporary file and renames it, so a failed
save never leaves a half-written artifact behind.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from snc.errors import ArtifactError, SncError

from .fixed_point import NeuronFixed, SynapseFixed
from .graph import Graph
from .kinds import KINDS

FORMAT = "snir"
FORMAT_VERSION = 1
_DATACLASSES = {cls.__name__: cls for cls in (SynapseFixed, NeuronFixed)}
_MAX_JSON_BYTES = 256 * 1024 * 1024


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise ArtifactError("object arrays cannot be stored")
            key = f"a{len(self.arrays)}"
            self.arrays[key] = value
            return {"$array": key}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v) for v in value]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise ArtifactError(f"metadata keys must be strings, got {k!r}")
                out[k] = self.encode(v)
            # A user dict whose keys look like our markers is wrapped so it decodes as a dict.
            if any(k.startswith("$") for k in out):
                return {"$dict": out}
            return out
        if dataclasses.is_dataclass(value) and type(value).__name__ in _DATACLASSES:
            return {
                "$dataclass": type(value).__name__,
                "fields": {f.name: self.encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
            }
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ArtifactError(f"cannot store a value of type {type(value).__name__}")


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if isinstance(value, dict):
            if set(value) == {"$array"}:
                key = value["$array"]
                if key not in self.arrays:
                    raise ArtifactError(f"missing array {key!r}")
                return self.arrays[key]
            if set(value) == {"$tuple"}:
                return tuple(self.decode(v) for v in value["$tuple"])
            if set(value) == {"$dict"}:
                inner = value["$dict"]
                if not isinstance(inner, dict):
                    raise ArtifactError("malformed $dict entry")
                return {k: self.decode(v) for k, v in inner.items()}
            if set(value) == {"$dataclass", "fields"}:
                cls = _DATACLASSES.get(value["$dataclass"])
                if cls is None:
                    raise ArtifactError(f"unknown parameter block {value['$dataclass']!r}")
                fields = value["fields"]
                if not isinstance(fields, dict):
                    raise ArtifactError(f"malformed {value['$dataclass']} block")
                try:
                    return cls(**{k: self.decode(v) for k, v in fields.items()})
                except TypeError as exc:
                    raise ArtifactError(f"bad {value['$dataclass']} block: {exc}") from None
            return {k: self.decode(v) for k, v in value.items()}
        return value


def to_bytes(graph: Graph) -> bytes:
    """Serialise ``graph`` to the bytes of a .snir zip."""
    enc = _Encoder()
    nodes = []
    for name, node in graph.nodes.items():
        try:
            fields = {
                f.name: enc.encode(getattr(node, f.name)) for f in dataclasses.fields(node) if f.name != "meta"
            }
            meta = enc.encode(node.meta)
        except ArtifactError as exc:
            exc.node = name
            raise
        nodes.append(
            {
                "name": name,
                "kind": node.kind,
                "inputs": graph.inputs_of(name),
                "fields": fields,
                "meta": meta,
            }
        )
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": graph.name,
        "outputs": list(graph.outputs),
        "meta": enc.encode(graph.meta),
        "nodes": nodes,
    }
    arrays = io.BytesIO()
    np.savez(arrays, **enc.arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("graph.json", json.dumps(doc, indent=1))
        zf.writestr("arrays.npz", arrays.getvalue())
    return out.getvalue()


def from_bytes(data: bytes, file: str = "<bytes>", *, validate: bool = True) -> Graph:
    """Rebuild a graph from .snir bytes. Raises a typed error naming the file.

    validate: check the graph's invariants too (a compiled artifact always satisfies them);
    False round-trips any graph, finished or not."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArtifactError(f"not a .snir artifact (not a zip file: {exc})", file=file) from None
    with zf:
        names = set(zf.namelist())
        if not {"graph.json", "arrays.npz"} <= names:
            raise ArtifactError("not a .snir artifact (graph.json or arrays.npz missing)", file=file)
        info = zf.getinfo("graph.json")
        if info.file_size > _MAX_JSON_BYTES:
            raise ArtifactError("graph.json is implausibly large", file=file)
        try:
            doc = json.loads(zf.read("graph.json").decode("utf-8"))
            with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise ArtifactError(f"corrupt artifact ({exc})", file=file) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError("not a .snir artifact (wrong format tag)", file=file)
    version = doc.get("version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"artifact format version {version!r}; this snc reads version {FORMAT_VERSION}", file=file)
    dec = _Decoder(arrays)
    graph = Graph(str(doc.get("name", "graph")))
    try:
        pending = []
        for entry in doc["nodes"]:
            name, kind = entry["name"], entry["kind"]
            cls = KINDS.get(kind)
            if cls is None:
                raise ArtifactError(f"unknown node kind {kind!r}", file=file, node=name)
            if not isinstance(entry["fields"], dict):
                raise ArtifactError(f"malformed fields of a {kind}", file=file, node=name)
            fields = {k: dec.decode(v) for k, v in entry["fields"].items()}
            meta = dec.decode(entry.get("meta", {}))
            if not isinstance(meta, dict):
                raise ArtifactError("node metadata must be a dict", file=file, node=name)
            try:
                node = cls(**fields, meta=meta)
            except (TypeError, ValueError, AttributeError) as exc:
                raise ArtifactError(f"bad fields for {kind}: {exc}", file=file, node=name) from None
            graph.add(name, node)
            pending.append((name, entry["inputs"]))
        for name, inputs in pending:
            graph.set_inputs(name, inputs)
        graph.outputs = list(doc["outputs"])
        graph.meta = dec.decode(doc.get("meta", {}))
        if not isinstance(graph.meta, dict):
            raise ArtifactError("graph metadata must be a dict", file=file)
        if validate:
            graph.validate()
    except (KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"malformed graph.json ({exc!r})", file=file) from None
    except SncError as exc:
        raise exc.with_file(file)
    return graph


def save(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    data = to_bytes(graph)
    write_atomic(path, data)
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary sibling file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp creates 0600; give the artifact the mode a plain new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load(path: str | os.PathLike, *, validate: bool = True) -> Graph:
    """Read a .snir artifact. Raises a typed error (ArtifactError, InvalidGraph) naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read ({exc.strerror or exc})", file=str(path)) from None
    return from_bytes(data, file=str(path), validate=validate)
