"""`tuneshift score`: score any JSONL of (prompt, response) pairs with the chosen scorer."""

from __future__ import annotations

import time
from pathlib import Path

from .errors import UsageError
from .kinds import Context, ModelSpec
from .plugins import Registry
from .rundir import read_jsonl, write_jsonl
from .stages.score import ppl_ratio


def score_file(registry: Registry, selected: list[str], base: str, adapter: str | None, finetuned: str | None,
               input_path: Path, output_path: Path, batch_size: int) -> int:
    if bool(adapter) == bool(finetuned):
        raise UsageError("give exactly one of --adapter DIR or --finetuned MODEL")
    for label, path in (("--base", base), ("--adapter", adapter), ("--finetuned", finetuned)):
        if path and not Path(path).exists():
            raise UsageError(f"{label} {path}: no such file or directory")
    rows = read_jsonl(input_path, "input")
    for number, row in enumerate(rows, 1):
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str)):
            raise UsageError(f"input {input_path}, line {number}: expected an object with string 'prompt' and 'response'")
    model = ModelSpec(base=base, adapter=adapter, finetuned=finetuned)
    entry = registry.choose("scorer", selected, None)
    progress = registry.pm.hook.on_progress
    context = Context(teacher=model, target=None, seed=0, work_dir=str(output_path.parent),
                      progress=lambda n: progress(stage="score", advance=n))
    scorer = entry.cls(entry.cls.Options(), context)
    registry.pm.hook.on_stage_start(stage="score", round=None, total=len(rows))
    started = time.perf_counter()
    out = []
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            for row, sc in zip(chunk, scorer.score(model, [(r["prompt"], r["response"]) for r in chunk]), strict=True):
                out.append({**row, "nll_finetuned": sc.nll_finetuned, "nll_base": sc.nll_base,
                            "ppl_ratio": ppl_ratio(sc.nll_base, sc.nll_finetuned), "n_tokens": sc.n_tokens,
                            **({"extra": sc.extra} if sc.extra else {})})
            progress(stage="score", advance=len(chunk))
    finally:
        scorer.close()
    registry.pm.hook.on_stage_end(stage="score", round=None, counts={"scored": len(out)},
                                  seconds=time.perf_counter() - started)
    write_jsonl(output_path, out)
    return len(out)
