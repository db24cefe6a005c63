"""Shared bits of the benchmarks: result rows and the table they print."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measurement beside its baseline, measured in the same run."""

    benchmark: str
    case: str
    value: str
    baseline: str
    ratio: float | None
    note: str = ""


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| benchmark | case | measured | baseline | ratio | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(f"| {row.benchmark} | {row.case} | {row.value} | {row.baseline} | {ratio} | {row.note} |")
    return "\n".join(lines)
