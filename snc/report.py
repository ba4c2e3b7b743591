"""Plain-text tables for the CLI (inspect, simulate, compile reports)."""
from __future__ import annotations

from typing import Any, Iterable, Sequence


def fmt_num(value: Any, digits: int = 3) -> str:
    """Compact human formatting: 12,345 for integers, 3 significant digits (or %) for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        a = abs(value)
        if a >= 1e6 or a < 1e-3:
            return f"{value:.{digits - 1}e}"
        if a >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], align: str | None = None) -> str:
    """Fixed-width table. ``align`` is a string of 'l'/'r' per column (default: text left, numbers right)."""
    cells = [[fmt_num(c) if not isinstance(c, str) else c for c in row] for row in rows]
    if align is None:
        align = "".join("r" if rows and not isinstance(rows[0][i], str) else "l" for i in range(len(headers)))
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(items: Iterable[str]) -> str:
        out = []
        for i, c in enumerate(items):
            out.append(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in cells])


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100.0 * x:.2f}%"
