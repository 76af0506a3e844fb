"""The audit log: one JSON line per action, hold and fallback.

Fields (always present): ``time`` (RFC 3339, UTC), ``action_id``, ``namespace``, ``service``,
``knob`` (replicas/cpu/memory, or null for a hold), ``old``, ``new`` (pods, millicores or MiB),
``reason``, ``source`` (policy/fallback/hold/converge), ``dry_run``, ``result`` (applied, unchanged,
dry_run, refused, superseded, unsupported, failed, held, ...), plus ``attempts`` and
``detail`` where known. Lines go to the ``drpc.controller.audit`` logger, to ``path`` when
given (appended), and to an in-memory ring (:attr:`AuditLog.lines`) for tests and debugging.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["AuditLog"]

logger = logging.getLogger("drpc.controller.audit")


class AuditLog:
    """Writes audit records as JSON lines.

    Args:
        path: file to append to (None: logger and memory only).
        keep: how many recent records :attr:`lines` keeps.
    """

    FIELDS = ("time", "action_id", "namespace", "service", "knob", "old", "new", "reason",
              "source", "dry_run", "result")  # fmt: skip

    def __init__(self, path: str | Path | None = None, keep: int = 10_000):
        self.path = Path(path) if path is not None else None
        self.lines: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> dict[str, Any]:
        """Write one record (missing standard fields are null); returns it."""
        rec: dict[str, Any] = {k: None for k in self.FIELDS}
        rec["time"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rec.update(fields)
        line = json.dumps(rec, sort_keys=False, default=str)
        with self._lock:
            self.lines.append(rec)
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        logger.info("%s", line)
        return rec

    def find(self, **match: Any) -> list[dict[str, Any]]:
        """The kept records whose fields equal every ``match`` item."""
        with self._lock:
            return [r for r in self.lines if all(r.get(k) == v for k, v in match.items())]
