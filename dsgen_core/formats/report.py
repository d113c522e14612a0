"""Validation reports: every problem names the file, the record, the field and the reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from dsgen_core.errors import DsgenError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    file: str
    record: str  # e.g. "annotations[12] (id=40)"
    field: str
    reason: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.field}: {self.reason}"


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # what --skip-invalid left out, by kind

    def error(self, file: str, record: object, fld: str, reason: str) -> None:
        self.problems.append(Problem(file, str(record), fld, reason, "error"))

    def warning(self, file: str, record: object, fld: str, reason: str) -> None:
        self.problems.append(Problem(file, str(record), fld, reason, "warning"))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "skipped": dict(self.skipped),
            "problems": [asdict(p) for p in self.problems],
        }

    def to_text(self, limit: int = 50) -> str:
        lines = [f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"]
        shown = sorted(self.problems, key=lambda p: p.severity != "error")[:limit]
        lines += [f"  [{p.severity}] {p}" for p in shown]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more (write them all with --report FILE)")
        return "\n".join(lines)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))
        return path


class ImportRefused(DsgenError):
    """The input has errors and the user did not ask to skip invalid records: nothing was written."""

    def __init__(self, source: str, report: ValidationReport) -> None:
        self.report = report
        super().__init__(f"import of {source} refused, nothing was written:\n{report.to_text()}\n"
                         "Fix the file, or pass --skip-invalid to import the valid records and report the rest.")
