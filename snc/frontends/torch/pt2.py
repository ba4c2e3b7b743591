""".pt2 archives: load_pt2, checked and rewritten so that nothing is unpickled or evaluated."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.fx

from snc.errors import InvalidModel, SncError
from snc.ir import Graph
from snc.ir.graph import wrap_errors


from .common import _one_line
from .converter import from_exported


def load_pt2(path: str | os.PathLike) -> Graph:
    """Read a program saved with ``torch.export.save`` without unpickling anything from it.

    Raises InvalidModel (one line, naming the file) for files that are not a readable .pt2
    archive, and for archives holding pickled payloads, compiled code or unsafe expressions.
    """
    path = Path(path)
    file = str(path)
    with wrap_errors(file):
        archive = _sanitized_archive(path)
        ep = _load_sanitized(archive)
        graph = from_exported(ep, name=path.stem)
        graph.meta["source"]["file"] = file
    return graph


_MAX_EXPANSION = 64  # uncompressed bytes allowed per archive byte (pt2 entries are stored, ratio ~1)


_META_RECORDS = {".data/version", ".data/serialization_id", "byteorder"}  # rewritten by torch's writer


_NAME = r"[A-Za-z0-9_.\-]+"


_RE_MODEL = re.compile(rf"models/({_NAME})\.json")


_RE_WEIGHTS_CONFIG = re.compile(rf"data/weights/({_NAME})_weights_config\.json")


_RE_CONSTANTS_CONFIG = re.compile(rf"data/constants/({_NAME})_constants_config\.json")


_RE_WEIGHT = re.compile(r"data/weights/(weight_\d+)")


_RE_CONSTANT = re.compile(r"data/constants/(tensor_\d+)")


_RE_SAMPLE_INPUTS = re.compile(rf"data/sample_inputs/({_NAME})\.pt")


# Symbolic shape expressions are passed to sympy.sympify (an eval). Only plain arithmetic on
# shape symbols and these names is accepted; no attributes, no subscripts, no power operator.
_SYM_NAMES = {
    "Symbol", "Integer", "Add", "Mul", "Max", "Min", "Mod", "FloorDiv", "CeilDiv", "CleanDiv", "PythonMod",
    "ModularIndexing", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "oo",
    "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "zero", "nonzero",
    "even", "odd", "rational", "commutative", "extended_real",
}


_SYM_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d{1,19})(?![\w.])|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>'[A-Za-z0-9_]{1,32}')"
    r"|(?P<op><=|>=|==|!=|//|[-+*/%(),<>=&|~]))"
)


_SYM_SYMBOL = re.compile(r"[a-z]{1,4}\d{1,9}")


def _safe_sym_expr(expr: str) -> bool:
    if not isinstance(expr, str) or len(expr) > 2000:
        return False
    pos = 0
    while pos < len(expr):
        m = _SYM_TOKEN.match(expr, pos)
        if m is None:
            return expr[pos:].strip() == ""
        if m.group("op") == "*" and expr[m.end():m.end() + 1] == "*":
            return False
        name = m.group("name")
        if name is not None and name not in _SYM_NAMES and not _SYM_SYMBOL.fullmatch(name):
            return False
        pos = m.end()
    return True


def _expr_strings(obj: Any) -> list[str]:
    found: list[str] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "expr_str":
                    found.append(v)
                else:
                    stack.append(v)
        elif isinstance(o, list):
            stack.extend(o)
    return found


def _sanitized_archive(path: Path) -> bytes:
    """Check a .pt2 file and return a rebuilt archive holding only raw tensors and JSON."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InvalidModel("is a directory, not a .pt2 file") from None
    except OSError as exc:
        raise InvalidModel(f"cannot read the file ({exc.strerror or exc})") from None
    if not data:
        raise InvalidModel("the file is empty, not a torch.export .pt2 archive")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidModel("not a torch.export .pt2 archive (not a zip file, or truncated)")
    records: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if not infos:
                raise InvalidModel("the .pt2 archive is empty")
            total = sum(i.file_size for i in infos)
            if total > _MAX_EXPANSION * len(data) + (1 << 20):
                raise InvalidModel("the .pt2 archive expands to an implausible size (zip bomb?)")
            roots = {i.filename.split("/", 1)[0] for i in infos}
            if len(roots) != 1 or any("/" not in i.filename for i in infos):
                raise InvalidModel("not a torch.export .pt2 archive (entries are not under one root folder)")
            for info in infos:
                if info.is_dir():
                    continue
                rel = info.filename.split("/", 1)[1]
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise InvalidModel(f"the .pt2 archive holds an unsafe entry name {info.filename!r}")
                records[rel] = zf.read(info)
    except SncError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, ValueError, RuntimeError) as exc:
        raise InvalidModel(f"corrupt or truncated .pt2 archive ({_one_line(exc)})") from None
    except Exception as exc:  # zlib.error and friends
        raise InvalidModel(f"corrupt or truncated .pt2 archive ({_one_line(exc)})") from None

    if records.get("archive_format", b"").strip() != b"pt2":
        if "serialized_exported_program.json" in records or any(r.endswith(".pt") for r in records):
            raise InvalidModel("legacy torch.export archive with pickled state; snc never unpickles model files (re-save with torch >= 2.8)")
        raise InvalidModel("not a torch.export .pt2 archive (no 'archive_format' record)")

    keep: dict[str, bytes] = {}
    models, weight_cfg, const_cfg, samples = {}, {}, {}, set()
    for rel, blob in records.items():
        m = None
        if rel in _META_RECORDS:
            continue
        if rel in ("archive_format", "archive_version"):
            keep[rel] = blob
        elif (m := _RE_MODEL.fullmatch(rel)):
            models[m.group(1)] = blob
            keep[rel] = blob
        elif (m := _RE_WEIGHTS_CONFIG.fullmatch(rel)):
            weight_cfg[m.group(1)] = blob
            keep[rel] = blob
        elif (m := _RE_CONSTANTS_CONFIG.fullmatch(rel)):
            const_cfg[m.group(1)] = blob
            keep[rel] = blob
        elif _RE_WEIGHT.fullmatch(rel) or _RE_CONSTANT.fullmatch(rel):
            keep[rel] = blob
        elif (m := _RE_SAMPLE_INPUTS.fullmatch(rel)):
            samples.add(m.group(1))  # a pickle of the example inputs: never read, replaced below
        elif rel.startswith("extra/"):
            continue  # free-form user files; not needed
        else:
            raise InvalidModel(f"the .pt2 archive holds {_describe_refused(rel)}; snc refuses to load it")
    if "model" not in models:
        raise InvalidModel("the .pt2 archive holds no exported program ('models/model.json')")
    for model, blob in models.items():
        if model not in weight_cfg or model not in const_cfg:
            raise InvalidModel(f"the .pt2 archive lacks the weights or constants table of program {model!r}")
        _check_payload_config(weight_cfg[model], "weights", "weight_", "data/weights/", keep)
        _check_payload_config(const_cfg[model], "constants", "tensor_", "data/constants/", keep)
        try:
            program = json.loads(blob)
        except ValueError as exc:
            raise InvalidModel(f"program {model!r} is not valid JSON ({exc})") from None
        for expr in _expr_strings(program):
            if not _safe_sym_expr(expr):
                raise InvalidModel(f"program {model!r} holds a symbolic shape expression snc will not evaluate: {str(expr)[:80]!r}")
        keep[f"data/sample_inputs/{model}.pt"] = b""

    from torch.export.pt2_archive._package import PT2ArchiveWriter

    buffer = io.BytesIO()
    with PT2ArchiveWriter(buffer) as writer:
        for rel, blob in keep.items():
            writer.write_bytes(rel, blob)
    return buffer.getvalue()


def _describe_refused(rel: str) -> str:
    if rel.startswith("data/aotinductor/") or rel.startswith("data/executorch") or rel.startswith("data/mtia"):
        return f"compiled code ({rel!r})"
    if "custom_obj_" in rel or "opaque_obj_" in rel:
        return f"a pickled object constant ({rel!r})"
    if rel.endswith(".pt") or rel.endswith(".pkl"):
        return f"a pickled payload ({rel!r})"
    return f"an unexpected entry {rel!r}"


def _check_payload_config(blob: bytes, what: str, prefix: str, folder: str, keep: dict[str, bytes]) -> None:
    try:
        config = json.loads(blob)
    except ValueError as exc:
        raise InvalidModel(f"the {what} table is not valid JSON ({exc})") from None
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise InvalidModel(f"the {what} table has no 'config' mapping")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            raise InvalidModel(f"the {what} table entry {fqn!r} is malformed")
        if meta.get("use_pickle") is not False:
            raise InvalidModel(f"{what} entry {fqn!r} is stored as a pickle (use_pickle); snc never unpickles model files")
        path_name = meta.get("path_name")
        if not isinstance(path_name, str) or not re.fullmatch(rf"{prefix}\d+", path_name):
            raise InvalidModel(f"{what} entry {fqn!r} points at {path_name!r}, which is not a raw tensor record")
        if folder + path_name not in keep:
            raise InvalidModel(f"{what} entry {fqn!r} points at the missing record {folder + path_name!r}")
        if not isinstance(meta.get("tensor_meta"), dict):
            raise InvalidModel(f"{what} entry {fqn!r} has no tensor metadata")


class _PickleRefused(Exception):
    pass


_LOAD_LOCK = threading.Lock()


def _refuse_torch_load(*args: Any, **kwargs: Any) -> Any:
    raise _PickleRefused("torch.load was called while loading a .pt2 archive")


def _load_sanitized(archive: bytes) -> "torch.export.ExportedProgram":
    """torch.export.load on the rebuilt archive, with torch.load disabled (defence in depth:
    the rebuilt archive holds nothing torch would unpickle)."""
    export_log = logging.getLogger("torch.export")
    with _LOAD_LOCK:
        original = torch.load
        level = export_log.level
        torch.load = _refuse_torch_load  # type: ignore[assignment]
        export_log.setLevel(logging.ERROR)  # torch logs a traceback before its legacy fallback
        try:
            return torch.export.load(io.BytesIO(archive))
        except _PickleRefused:
            raise InvalidModel("the archive asks torch to unpickle data; snc never unpickles model files") from None
        except Exception as exc:
            if isinstance(exc.__context__, _PickleRefused) or isinstance(exc.__cause__, _PickleRefused):
                raise InvalidModel("the archive asks torch to unpickle data; snc never unpickles model files") from None
            raise InvalidModel(f"torch could not load the exported program ({_one_line(exc)})") from None
        finally:
            torch.load = original  # type: ignore[assignment]
            export_log.setLevel(level)
