"""`tuneshift score`: score any JSONL of (prompt, response) pairs with the chosen scorer.

The output is checked first, before the input is read or a model loads: it
must not be a directory, its folder must be writable, it must not be the
input, and an existing file is replaced only when it is a score output
already (every line a JSON object with `nll_finetuned`, `nll_base` and
`ppl_ratio`), so a rerun overwrites its own result and never a user's file.
A scorer with a `check_pairs(model, pairs)` method (the hf scorer: prompt and
response against the model's context) vets every pair before the first one is
scored; the first pair it refuses is reported with its line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click

from tuneshift._commands.state import State
from tuneshift._errors import UsageError
from tuneshift._hub import local_model
from tuneshift._inputs import pair_rows
from tuneshift._models import Models, build_context
from tuneshift._rundir import write_jsonl
from tuneshift._stages.score import ppl_ratio
from tuneshift.kinds import ModelSpec

SCORE_KEYS = ("nll_finetuned", "nll_base", "ppl_ratio")


def is_score_output(path: Path) -> bool:
    """Whether `path` holds `tuneshift score` output: at least one line, each an object with the score keys."""
    seen = False
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if not (isinstance(row, dict) and all(k in row for k in SCORE_KEYS)):
                    return False
                seen = True
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return seen


def check_output(output_path: Path, input_path: Path) -> None:
    """Refuse, with one line, an --output that cannot or must not be written."""
    label = f"output {output_path}"
    if output_path.is_dir():
        raise UsageError(f"{label}: is a directory; give a file path for the scores")
    folder = output_path.absolute().parent
    while not folder.exists() and folder != folder.parent:  # atomic_write_text creates the missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{label}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{label}: cannot write in {folder} (Permission denied)")
    if output_path.exists():
        if input_path.exists() and os.path.samefile(output_path, input_path):
            raise UsageError(f"{label}: is the --input file; give another path")
        if not is_score_output(output_path):
            raise UsageError(f"{label}: exists and is not a tuneshift score output; remove it or give a new path")


@click.command("score")
@click.option("--base", required=True, help="Base model: a local directory, a .gguf file or a hub id.")
@click.option("--adapter", default=None, help="PEFT adapter directory of the fine-tuned model.")
@click.option("--finetuned", default=None, help="A full fine-tuned model instead of an adapter.")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="JSONL of pairs; - reads standard input.")
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path),
              help="JSONL to write; - writes standard output.")
@click.option("--batch-size", default=16, show_default=True)
@click.pass_obj
def command(state: State, base: str, adapter: str | None, finetuned: str | None, input_path: Path,
            output_path: Path, batch_size: int) -> None:
    """Score (prompt, response) pairs under the fine-tuned model and its base."""
    with tempfile.TemporaryDirectory(prefix="tuneshift-score-") as scratch:
        if str(input_path) == "-":  # read whole first: a usage error still comes before any model loads
            input_path = Path(scratch) / "stdin.jsonl"
            input_path.write_text(sys.stdin.read(), encoding="utf-8")
        to_stdout = str(output_path) == "-"
        target = Path(scratch) / "scores.jsonl" if to_stdout else output_path
        n = score_file(state, base, adapter, finetuned, input_path, target, batch_size)
        if to_stdout:
            sys.stdout.write(target.read_text(encoding="utf-8"))
    click.echo(f"scored {n} pairs into {'standard output' if to_stdout else output_path}", err=True)


def score_file(state: State, base: str, adapter: str | None, finetuned: str | None, input_path: Path,
               output_path: Path, batch_size: int) -> int:
    check_output(output_path, input_path)
    if bool(adapter) == bool(finetuned):
        raise UsageError("give exactly one of --adapter DIR or --finetuned MODEL")
    base, adapter, finetuned = (local_model(p, label) if p else p for label, p in  # hub ids: their snapshots
                                (("--base", base), ("--adapter", adapter), ("--finetuned", finetuned)))
    for label, path in (("--base", base), ("--adapter", adapter), ("--finetuned", finetuned)):
        if path and not Path(path).exists():
            raise UsageError(f"{label} {path}: no such file or directory")
    numbered = pair_rows(input_path, "input")
    rows = [row for _, row in numbered]
    model = ModelSpec(base=base, adapter=adapter, finetuned=finetuned)
    observers = state.registry.observers
    context = build_context(state, Models(teacher=model, target=None), 0, output_path.parent,
                            progress=lambda n: observers.on_progress(stage="score", advance=n))
    scorer = state.build("scorer", context)
    out = []
    try:
        scorer.check()  # file headers: an adapter of another base is refused before any model loads
        check_pairs = getattr(scorer, "check_pairs", None)
        refused = check_pairs(model, [(r["prompt"], r["response"]) for r in rows]) if check_pairs else None
        if refused is not None:
            index, reason = refused
            raise UsageError(f"input {input_path}, line {numbered[index][0]}: {reason}")
        observers.on_stage_start(stage="score", round=None, total=len(rows))
        started = time.perf_counter()
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            for row, sc in zip(chunk, scorer.score(model, [(r["prompt"], r["response"]) for r in chunk]), strict=True):
                out.append({**row, "nll_finetuned": sc.nll_finetuned, "nll_base": sc.nll_base,
                            "ppl_ratio": ppl_ratio(sc.nll_base, sc.nll_finetuned), "n_tokens": sc.n_tokens,
                            **({"extra": sc.extra} if sc.extra else {})})
            observers.on_progress(stage="score", advance=len(chunk))
    finally:
        scorer.close()
    observers.on_stage_end(stage="score", round=None, counts={"scored": len(out)},
                                  seconds=time.perf_counter() - started)
    write_jsonl(output_path, out)
    return len(out)
