"""`tuneshift export RUN_DIR --format jsonl|parquet|hf --out PATH`: a run's dataset as the ecosystem reads it.

Every column has one declared type (`datasets` Features), so no reader has to
guess it from the first rows: a column that is null in the first thousands of
rows and a string later fails `datasets`' own JSON loader, never an export.
`hf` writes a `datasets` dataset on disk (`datasets.load_from_disk`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from tuneshift._errors import UsageError
from tuneshift._rundir import mark, move_into_place, owner, read_jsonl, write_jsonl

FORMATS = ("jsonl", "parquet", "hf")
TABLES = ("dataset", "candidates")


def features(table: str) -> Any:
    """The declared column types of a table (the dataset's chat columns included)."""
    from datasets import Features, List, Value

    number, integer, text = Value("float64"), Value("int64"), Value("string")
    if table == "dataset":
        return Features({"id": integer, "round": integer, "prompt": text, "response": text, "score": number,
                         "nll_finetuned": number, "nll_base": number, "ppl_ratio": number, "origin": text,
                         "train_spans": List(List(integer)), "fact": integer, "completion": text,
                         "messages": List({"role": text, "content": text})})
    return Features({"id": integer, "round": integer, "prompt": text, "origin": text, "parent": text,
                     "operator": text, "response": text, "nll_finetuned": number, "nll_base": number,
                     "ppl_ratio": number, "score": number, "fate": text, "reason": text, "dup_of": text,
                     "similarity": number, "extra": text})


def rows_of(run_dir: Path, table: str) -> list[dict[str, Any]]:
    """The table's rows with every declared column (older runs' dataset.jsonl lacks the chat columns)."""
    from tuneshift._pipeline import with_chat_columns

    path = run_dir / f"{table}.jsonl"
    if not path.is_file():
        raise UsageError(f"{run_dir}: no {path.name}; expected the directory of a tuneshift run")
    rows = read_jsonl(path, table)
    if table == "dataset":
        return [with_chat_columns(row) for row in rows]
    names = list(features("candidates"))
    return [{**dict.fromkeys(names), **{k: v for k, v in row.items() if k in names},
             "extra": json.dumps(row.get("extra") or {}, ensure_ascii=False, sort_keys=True)} for row in rows]


def check_out(out: Path, fmt: str) -> None:
    """Refuse, before any work, an output that is not tuneshift's to write."""
    if fmt == "hf":
        if out.exists() and not (out.is_dir() and owner(out) == "export"):
            raise UsageError(f"--out {out}: exists and is not an earlier `tuneshift export --format hf`; "
                             "give a new path")
    elif out.exists():
        raise UsageError(f"--out {out}: exists; remove it or give a new path")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: no such directory {out.parent}")


def export(run_dir: Path, fmt: str, out: Path, table: str = "dataset") -> int:
    """Write the run's `table` to `out` in `fmt`, atomically; returns the row count."""
    run_dir, out = run_dir.resolve(), out.resolve()
    check_out(out, fmt)
    rows = rows_of(run_dir, table)
    if fmt == "jsonl":
        write_jsonl(out, rows)
        return len(rows)
    from datasets import Dataset

    data = Dataset.from_list(rows, features=features(table))
    staging = out.parent / f".{out.name}.partial"
    if staging.is_dir():  # a killed export's
        shutil.rmtree(staging)
    else:
        staging.unlink(missing_ok=True)
    if fmt == "parquet":
        data.to_parquet(str(staging))
        staging.replace(out)
        return len(rows)
    data.save_to_disk(str(staging))
    mark(staging, "export", table=table, run=str(run_dir))
    move_into_place(staging, out)  # an existing one is an earlier export (checked)
    return len(rows)


@click.command("export")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="jsonl, parquet, or hf (a datasets dataset on disk, for datasets.load_from_disk).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The file (or, for hf, folder) to write.")
@click.option("--table", type=click.Choice(TABLES), default="dataset", show_default=True,
              help="dataset.jsonl (the training pairs) or candidates.jsonl (every candidate and its fate).")
def command(run_dir: Path, fmt: str, out: Path, table: str) -> None:
    """Export RUN_DIR's dataset with declared column types, for TRL, datasets and pandas."""
    n = export(run_dir, fmt, out, table)
    click.echo(f"exported {n} rows of {table} into {out}", err=True)

