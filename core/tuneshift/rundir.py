"""The run directory: atomic files, JSONL records, a lock, and per-stage checkpoints.

Every file is written to a temporary name and renamed into place, so a killed
run leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import RunError, UsageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path, what: str = "file") -> list[Any]:
    """Every line of a JSONL file; a malformed line is a usage error naming its number."""
    return [row for _, row in read_jsonl_numbered(path, what)]


def read_jsonl_numbered(path: Path, what: str = "file") -> list[tuple[int, Any]]:
    """(line number, value) of every non-blank line, so a later check can name the line it rejects."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path}: no such file")
    rows = []
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{what} {path}, line {number}: not valid JSON ({exc.msg})") from None
                except RecursionError:
                    raise UsageError(f"{what} {path}, line {number}: nested too deeply") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path}: not UTF-8 text") from None
    return rows


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def make_writable_dir(path: Path) -> None:
    """Create `path` (and its parents) and prove it takes a file, or refuse with one line."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"output {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output {path}: not writable ({exc.strerror or exc})") from None


class RunDir:
    """Paths of one run and the lock that keeps a second process out."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()  # once, here: what is written from it reads back from any cwd
        self._lock_fh = None

    def open(self) -> "RunDir":
        make_writable_dir(self.path)
        self.state.mkdir(exist_ok=True)
        self._lock_fh = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.seek(0)
            holder = self._lock_fh.read().strip() or "?"
            self._lock_fh.close()
            raise UsageError(f"output {self.path}: another tuneshift run is using it (pid {holder})") from None
        self._lock_fh.seek(0)
        self._lock_fh.truncate()
        self._lock_fh.write(str(os.getpid()))
        self._lock_fh.flush()
        return self

    def close(self) -> None:
        if self._lock_fh:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    @property
    def state(self) -> Path:
        return self.path / "state"

    def stage_file(self, round_: int, stage: str) -> Path:
        return self.state / f"round-{round_:03d}" / f"{stage}.json"

    def __getattr__(self, name: str) -> Path:
        files = {"dataset": "dataset.jsonl", "candidates": "candidates.jsonl", "run_json": "run.json",
                 "report": "report.json", "adapter": "adapter", "cache_db": "cache.sqlite",
                 "config_snapshot": "config.toml"}
        if name in files:
            return self.path / files[name]
        raise AttributeError(name)
