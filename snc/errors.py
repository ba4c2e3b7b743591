"""Typed errors raised by snc.

Every error carries, where known, the file and the graph node it concerns, and renders as a single
line ``file: node 'name': problem`` so that the CLI can print it verbatim (exit code 2) and API
users can catch a precise type.
"""
from __future__ import annotations


class SncError(Exception):
    """Base class of every error snc raises on purpose."""

    def __init__(self, message: str, *, file: str | None = None, node: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.node = node

    def with_file(self, file: str) -> "SncError":
        """Attach the file name if none is set yet (frontends know the file, the IR does not)."""
        if self.file is None:
            self.file = str(file)
        return self

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.node is not None:
            parts.append(f"node {self.node!r}")
        parts.append(self.message)
        # One line, always: the CLI prints this verbatim.
        return ": ".join(parts).replace("\n", " ")


class InvalidModel(SncError):
    """The model file is unreadable, truncated, empty or structurally wrong."""


class UnsupportedOperator(SncError):
    """The model uses an operator (or an attribute of it) that snc cannot represent."""


class ShapeError(SncError):
    """Shapes along an edge of the graph do not agree."""


class InvalidGraph(SncError):
    """The IR graph breaks one of its invariants (cycles, dangling edges, bad parameters)."""


class InvalidOption(SncError):
    """A pass option (or a pipeline) is unknown, ill-typed, out of range or in the wrong order."""


class InvalidData(SncError):
    """Input data (samples, labels, calibration set) is unreadable or does not fit the model."""


class ArtifactError(SncError):
    """A .snir artifact is unreadable, of an unknown version, or inconsistent."""


class CalibrationError(SncError):
    """A pass that needs calibration data did not get usable data."""


class MappingError(SncError):
    """The network does not fit the chosen hardware."""


class HardwareProfileError(SncError):
    """A hardware profile file is invalid."""


class BackendError(SncError):
    """A backend (simulator, emitter, external runtime) failed."""


class PluginError(SncError):
    """A registered plug-in (entry point of snc.frontends, snc.backends, snc.hw) could not be
    loaded or is not what its group expects."""
