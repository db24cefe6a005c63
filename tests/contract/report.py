"""What a contract run saw: one :class:`Check` per expectation or observation, written as JSON and a table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DOCUMENTED = "documented"
AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Check:
    """
    :param case: the test that made it (without the target).
    :param name: what it checks, unique within the case.
    :param kind: ``documented`` (asserted on every target) or ``ambiguous`` (the docs leave it open:
        recorded, and asserted only against the emulator's stated reading).
    :param expectation: what the docs say (documented) or the open question (ambiguous).
    :param expected: the documented value, or the emulator's reading of an ambiguous point.
    :param observed: what the target answered.
    :param holds: whether ``observed`` meets ``expected``.
    :param target: ``live`` or ``emulator``.
    """

    case: str
    name: str
    kind: str
    expectation: str
    expected: Any
    observed: Any
    holds: bool
    target: str


def plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists), so that observations compare alike."""
    return json.loads(json.dumps(value, default=str))


@dataclass
class Report:
    """All checks of one run, and what the run spent."""

    target: str
    host: str
    checks: list[Check]
    counted_requests: int = 0
    exempt_requests: int = 0
    leftover_queues: list[str] = field(default_factory=list)
    stopped_early: str | None = None

    def rows(self) -> list[dict[str, Any]]:
        """One row per (case, check): each target's observation and whether the emulator matched."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for check in self.checks:
            row = rows.setdefault(
                (check.case, check.name),
                {"case": check.case, "check": check.name, "kind": check.kind, "expectation": check.expectation},
            )
            row[check.target] = check.observed
            row[f"{check.target}_holds"] = check.holds
            if check.target == "emulator":
                row["emulator_reading"] = check.expected
        for row in rows.values():
            row["emulator_matched"] = self._matched(row)
        return list(rows.values())

    def _matched(self, row: dict[str, Any]) -> bool | None:
        if "emulator" not in row:
            return None
        if self.target == "live":  # the service is the reference
            return row["emulator"] == row["live"] if "live" in row else None
        # emulator only: a documented point is matched when the docs hold; an open one has no reference
        return row["emulator_holds"] if row["kind"] == DOCUMENTED else None

    def as_json(self) -> dict[str, Any]:
        rows = self.rows()
        return {
            "target": self.target,
            "host": self.host,
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "requests": {"counted_by_the_api_budget": self.counted_requests, "exempt": self.exempt_requests},
            "leftover_queues": self.leftover_queues,
            "stopped_early": self.stopped_early,
            "summary": summarize(rows),
            "cases": rows,
        }

    def table(self, secrets: list[str] = ()) -> str:  # type: ignore[assignment]
        """A Markdown table: readable in a terminal and renders in a GitHub issue. Each cell is redacted
        before it is shortened, so that no part of a secret survives the cut."""
        observed = ["live", "emulator"] if self.target == "live" else ["emulator"]
        header = ["case", "check", "kind", "expectation", *observed, "emulator matched"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        mark = {True: "yes", False: "**no**", None: "n/a"}
        for row in self.rows():
            cells = [row["case"], row["check"], row["kind"], row["expectation"]]
            cells += [_cell(row[name], secrets) if name in row else "not reached" for name in observed]
            cells.append(mark[row["emulator_matched"]])
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, secrets: list[str]) -> list[Path]:
        """Write ``contract-report.json`` and ``contract-report.md``, with ``secrets`` blotted out."""
        directory.mkdir(parents=True, exist_ok=True)
        extra = "".join(f"\n- left behind: {line}" for line in self.leftover_queues)
        if self.stopped_early:
            extra += f"\n- stopped early: {self.stopped_early}"
        texts = {
            "contract-report.json": json.dumps(self.as_json(), indent=2) + "\n",
            "contract-report.md": f"# Contract run against {self.target} ({self.host})\n{extra}\n\n"
            + self.table(secrets),
        }
        paths = []
        for name, text in texts.items():
            for secret in secrets:
                if secret:
                    text = text.replace(secret, "<redacted>")
            path = directory / name
            path.write_text(text)
            paths.append(path)
        return paths


def summarize(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many checks, and how many of them the emulator matched, differed on, or had no reference for."""
    return {
        "checks": len(rows),
        "emulator_matched": sum(row["emulator_matched"] is True for row in rows),
        "emulator_differed": sum(row["emulator_matched"] is False for row in rows),
        "no_reference": sum(row["emulator_matched"] is None for row in rows),
    }


def _cell(value: Any, secrets: list[str] = ()) -> str:  # type: ignore[assignment]
    text = json.dumps(value) if not isinstance(value, str) else value
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text if len(text) <= 60 else text[:57] + "..."
