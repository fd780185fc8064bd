"""The run directory: atomic files, JSONL records, a lock, and per-stage checkpoints.

Every file is written to a temporary name and renamed into place, so a killed
run leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import codecs
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from tuneshift._errors import RunError, UsageError


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


def _strict(path: Path, dump: Callable[[], str]) -> str:
    """JSON as the standard has it: a NaN or infinity (a diverged number) is a failure, not `NaN` on disk."""
    try:
        return dump()
    except ValueError as exc:
        raise RunError(f"cannot write {path}: a value is NaN or infinite ({exc})") from None


def write_json(path: Path, obj: Any) -> None:
    text = _strict(path, lambda: json.dumps(obj, indent=2, ensure_ascii=False, default=str, allow_nan=False))
    atomic_write_text(path, text + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    text = _strict(path, lambda: "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows))
    atomic_write_text(path, text)


def read_jsonl(path: Path, what: str = "file") -> list[Any]:
    """Every line of a JSONL file; a malformed line is a usage error naming its number."""
    return [row for _, row in read_jsonl_numbered(path, what)]


def read_jsonl_numbered(path: Path, what: str = "file") -> list[tuple[int, Any]]:
    """(line number, value) of every non-blank line, so a later check can name the line it rejects."""
    rows = []
    for number, line in read_text_lines(path, what):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{what} {path}, line {number}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise UsageError(f"{what} {path}, line {number}: nested too deeply") from None
        if "\\u" in line:  # only an escape makes a lone surrogate: the line itself decoded as UTF-8
            check_unicode(value, f"{what} {path}, line {number}")
        rows.append((number, value))
    return rows


def read_text_lines(path: Path, what: str = "file") -> list[tuple[int, str]]:
    """(line number, text) of every line of a UTF-8 text file: a BOM at its start is dropped, lines end
    in LF, CRLF or CR; bytes that are not UTF-8 (or encode a surrogate) are a usage error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path}: no such file")
    try:
        data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    lines = []
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            lines.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise UsageError(f"{what} {path}, line {number}: not UTF-8 text (byte {exc.start + 1})") from None
    return lines


def check_unicode(value: Any, where: str) -> None:
    """Every string in `value` (a JSON value) is valid Unicode: a lone surrogate ("\\ud800") cannot be
    written as UTF-8, so it would fail the run when its record is written, not here."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"{where}: a lone surrogate \\u{ord(exc.object[exc.start]):04x} in a string; "
                         "text must be valid Unicode") from None
    except (RecursionError, ValueError):  # as deep as json.loads allowed, or NaN: no strings to blame
        pass


def read_json(path: Path) -> Any:
    """A state file of a directory tuneshift wrote; a damaged one is a usage error naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    except UnicodeDecodeError:
        reason = "not UTF-8 text"
    except RecursionError:
        reason = "nested too deeply"
    raise UsageError(f"state file {path}: not valid JSON ({reason}); remove the directory or use a new --out")


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


MARKER = ".tuneshift"
"""The file that marks a directory as tuneshift's own (its kind: run, demo, adapter), written at creation."""


def move_into_place(staging: Path, target: Path) -> None:
    """Replace the directory `target` (tuneshift's own: the caller checked) by the finished `staging`; the
    old one is set aside first, so a kill leaves the old directory or the new one, never neither."""
    if target.exists():
        old = target.parent / f".{target.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def owner(path: Path) -> str | None:
    """The kind of tuneshift directory `path` is, from its marker; None when it has none."""
    try:
        return json.loads((path / MARKER).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def mark(path: Path, kind: str, **extra: Any) -> None:
    from tuneshift import __version__

    write_json(path / MARKER, {"kind": kind, "tuneshift": __version__, **extra})


def claim(path: Path, kind: str, legacy: Callable[[Path], bool] = lambda p: False) -> None:
    """Make `path` a `kind` directory of tuneshift's, or refuse with one line before anything is written.

    A new or empty directory is claimed (created and marked); one marked as `kind` is ours already;
    `legacy(path)` adopts what an earlier version made before markers existed. Anything else (a
    user's folder, the current directory with their files in it) is refused: never overwrite.
    """
    found = owner(path) if path.is_dir() else None  # a file in the way: make_writable_dir says so
    if found is not None and found != kind:
        raise UsageError(f"output {path}: holds a tuneshift {found}, not a {kind}; give another directory")
    if found is None and path.is_dir() and any(path.iterdir()) and not legacy(path):
        raise UsageError(f"output {path}: exists and holds files tuneshift did not write; "
                         "give a new or empty directory")
    make_writable_dir(path)
    if found is None:
        mark(path, kind)


def is_legacy_run(path: Path) -> bool:
    """A run directory of a tuneshift before markers: it holds the job fingerprint."""
    return (path / "state" / "job.json").is_file()


class RunDir:
    """Paths of one run and the lock that keeps a second process out."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()  # once, here: what is written from it reads back from any cwd
        self._lock_fh = None

    def open(self) -> "RunDir":
        claim(self.path, "run", is_legacy_run)
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
