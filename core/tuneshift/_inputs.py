"""The files a user gives tuneshift, each read and checked in one place: seeds, eval, (prompt, response) pairs.

Every problem is one UsageError naming the file and line, raised before any model loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneshift._errors import UsageError
from tuneshift._rundir import read_jsonl_numbered, read_text_lines

PROMPT_KEYS = ("prompt", "instruction", "question", "text")


def load_seeds(path: str | None, prompts: list[str] | None) -> list[str]:
    """Seeds from the config's inline list, a JSONL file (objects with `prompt`, or strings) or a text file."""
    if prompts is not None:
        seeds = prompts
        where = "seeds.prompts"
    else:
        where = f"seeds {path}"
        seeds = _read_file(Path(path))
    seeds = [s.strip() for s in seeds]
    if not seeds:
        raise UsageError(f"{where}: no seed prompts (the file or list is empty)")
    if any(not s for s in seeds):
        raise UsageError(f"{where}: seed {seeds.index('') + 1} is an empty prompt")
    # repeated seeds would only be dropped as duplicates: keep the first of each
    return list(dict.fromkeys(seeds))


def _read_file(path: Path) -> list[str]:
    if not path.is_file():
        raise UsageError(f"seeds {path}: no such file")
    if path.suffix == ".jsonl":
        out = []
        for number, row in read_jsonl_numbered(path, "seeds"):
            if isinstance(row, str):
                out.append(row)
                continue
            if isinstance(row, dict):
                key = next((k for k in PROMPT_KEYS if k in row), None)
                if key and isinstance(row[key], str):
                    out.append(row[key])
                    continue
                if key:
                    raise UsageError(f"seeds {path}, line {number}: {key!r} is {type(row[key]).__name__}, "
                                     "expected a string")
            raise UsageError(
                f"seeds {path}, line {number}: expected a string or an object with a string "
                f"'prompt', got {type(row).__name__}"
            )
        return out
    # one prompt a line (LF, CRLF or CR), a leading BOM dropped; bytes that are not UTF-8 name their line
    return [line for _, line in read_text_lines(path, "seeds") if line.strip()]


def string_rows(path: str | Path, what: str, keys: tuple[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """A JSONL file whose every line is an object with string values at both `keys`, with line numbers."""
    numbered = read_jsonl_numbered(path, what)
    for number, row in numbered:
        if not (isinstance(row, dict) and all(isinstance(row.get(k), str) for k in keys)):
            raise UsageError(f"{what} {path}, line {number}: expected an object with string {keys[0]!r} and {keys[1]!r}")
    return numbered


def load_eval(path: str) -> list[dict[str, str]]:
    """The evaluation file: objects with a `prompt` and the `answer` a correct response contains."""
    rows = [row for _, row in string_rows(path, "eval", ("prompt", "answer"))]
    if not rows:
        raise UsageError(f"eval {path}: empty")
    return rows


def pair_rows(path: str | Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    """(prompt, response) objects with their line numbers: `tuneshift score`'s input, a run's dataset.jsonl."""
    return string_rows(path, what, ("prompt", "response"))
