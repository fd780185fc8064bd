"""A cache of expensive model calls keyed by fingerprint, so a rerun skips finished work.

The key of one call hashes the implementation's identity (name, options), the
model's identity (its files) and the input; the value is JSON. Backed by
SQLite, committed per batch, so a killed run keeps what it finished.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from tuneshift._errors import RunError

T = TypeVar("T")
SMALL_FILE = 4 << 20  # files up to this size are identified by content


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


DOCUMENTS = {"README.md"}
"""Files of a model folder that are documentation, not model: left out of its identity."""


def model_identity(*paths: str | None) -> list[Any]:
    """Identity of model files, wherever they lie: each file's relative name and size, the content hash
    of small files (configs, adapters: a copied run directory still hits), and for large weights their
    mtime and the hash of their first 64 KiB (the safetensors / GGUF header: names, shapes, dtypes). A model
    card (README.md) says nothing the model computes with: the run writes one into its adapter after
    evaluating it, and the adapter stays the same model."""
    out: list[Any] = []
    for p in paths:
        if not p:
            out.append(None)
            continue
        path = Path(p)
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.name not in DOCUMENTS) if path.is_dir() else [path]
        entries = []
        for f in files:
            stat = f.stat()
            small = stat.st_size <= SMALL_FILE
            digest = hashlib.sha256(f.read_bytes()).hexdigest() if small else [stat.st_mtime_ns, _head_hash(f)]
            entries.append((str(f.relative_to(path)) if path.is_dir() else f.name, stat.st_size, digest))
        out.append(entries)
    return out


def _head_hash(path: Path, size: int = 64 << 10) -> str:
    with path.open("rb") as fh:
        return hashlib.sha256(fh.read(size)).hexdigest()


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=30)
            self.db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.commit()
        except sqlite3.Error as exc:
            raise RunError(f"cannot open the cache {path}: {exc}") from None
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        row = self.db.execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_many(self, items: list[tuple[str, Any]]) -> None:
        try:
            self.db.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?)",
                                [(k, json.dumps(v, ensure_ascii=False)) for k, v in items])
            self.db.commit()
        except sqlite3.Error as exc:  # a full disk, mostly: the batches committed before stay valid
            self.db.rollback()
            raise RunError(f"cannot write the cache {self.path}: {exc}") from None

    def map(self, namespace: Any, inputs: Sequence[Any], compute: Callable[[list[Any]], list[Any]],
            batch_size: int, on_done: Callable[[int], None] = lambda n: None) -> list[Any]:
        """compute() over the inputs not yet cached, batch by batch; cached values for the rest."""
        seen: dict[str, int] = {}
        keys = []
        for x in inputs:  # the k-th copy of an input gets its own key: sampled calls may differ
            base = fingerprint(namespace, x)
            seen[base] = seen.get(base, -1) + 1
            keys.append(base if seen[base] == 0 else fingerprint(base, seen[base]))
        results: list[Any] = [self.get(k) for k in keys]
        todo = [i for i, r in enumerate(results) if r is None]
        self.hits += len(inputs) - len(todo)
        self.misses += len(todo)
        on_done(len(inputs) - len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            values = compute([inputs[i] for i in chunk])
            if len(values) != len(chunk):
                raise ValueError(f"expected {len(chunk)} results, got {len(values)}")
            for i, v in zip(chunk, values):
                results[i] = v
            self.put_many([(keys[i], v) for i, v in zip(chunk, values)])
            on_done(len(chunk))
        return results

    def close(self) -> None:
        self.db.close()
