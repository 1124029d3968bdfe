"""The append-only record of finished points that makes a sweep resumable.

One JSON object per line, keyed by the point's hash (which includes the pimc version). Each line is
written and flushed as its point finishes, so a killed sweep loses at most the line being written;
a torn last line is cut off when the journal is opened again. Only the coordinating process writes
it; appends take an exclusive `flock`, so concurrent sweeps into one directory keep whole lines.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.exists():
            self._read()

    def _read(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):  # killed mid-write: drop the partial line
            with self.path.open("r+b") as f:
                f.truncate(len(complete))
        for line in complete.decode("utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                self.records[record["key"]] = record

    def append(self, record: dict[str, Any]) -> None:
        """One whole line per record, under an exclusive lock: only a sweep's coordinating process
        appends (workers return their records to it), but two sweeps run into one directory must
        not interleave their lines."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = memoryview((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            while line:
                line = line[os.write(fd, line):]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        self.records[record["key"]] = record
