"""Batch jobs that keep going past a bad item, record it, and fail at the end with a summary."""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from use_repro.fs import atomic_path

log = logging.getLogger(__name__)


@dataclass
class Failures:
    """Collects (item id, reason) pairs while a batch runs.

    Usage::

        failures = Failures("render")
        for row in rows:
            try: ...
            except (AudioError, ValueError) as e:
                failures.add(row.id, e)
        failures.write("rejects.tsv")
        return failures.exit_status(total=len(rows))
    """

    stage: str
    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, item_id: str, reason: object) -> None:
        msg = str(reason).replace("\t", " ").replace("\n", " ")
        log.error("%s: %s: %s", self.stage, item_id, msg)
        self.items.append((item_id, msg))

    def __len__(self) -> int:
        return len(self.items)

    def write(self, path: str | Path) -> None:
        """Write `id<TAB>reason` rows (header included; written even when empty)."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["id", "reason"])
            w.writerows(self.items)

    def summary(self, total: int) -> str:
        if not self.items:
            return f"{self.stage}: {total} of {total} done, no failures"
        head = "; ".join(f"{i}: {r}" for i, r in self.items[:5])
        more = f" (+{len(self.items) - 5} more)" if len(self.items) > 5 else ""
        return f"{self.stage}: {total - len(self.items)} of {total} done, {len(self.items)} failed: {head}{more}"

    def exit_status(self, total: int) -> int:
        """Log the summary; 0 when nothing failed, 1 otherwise."""
        (log.error if self.items else log.info)(self.summary(total))
        return 1 if self.items else 0
