"""Does bfloat16 scoring keep the same set as float32 on the demo's pool? Each difference, with its scores.

    .venv/bin/python benchmarks/kept_set.py [--out runs/demo] [--seed 0] [--selector confident-gap]

The demo's no_filter arm scores every candidate of its crawl and keeps them
all (arms/no_filter-s<seed>/crawl/run/candidates.jsonl), so it is a pool on
which a selector can be replayed. This rescores that pool's (prompt, answer)
pairs with the hf scorer in float32 and in bfloat16, teacher and base as the
demo's crawl had them, runs the selector (confident-gap, the demo's, by
default) on each, and prints one JSON object: per-pair NLL differences, the
Spearman of each score, the two kept sets, and every candidate that only one
of them keeps, with both precisions' scores and the demo judge's verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rescored(pool: list, teacher, precision: str, work: str) -> tuple[list, float]:
    """The pool's candidates with their scores as the hf scorer computes them in `precision`."""
    from dataclasses import replace

    from tuneshift.api import Context, ppl_ratio
    from tuneshift_hf.scoring import HFScorer

    scorer = HFScorer(HFScorer.Options(precision=precision, token_logprobs=True),
                      Context(teacher=teacher, target=None, seed=0, work_dir=work))
    started = time.perf_counter()
    scores = scorer.score(teacher, [(c.prompt, c.response) for c in pool])
    seconds = time.perf_counter() - started
    out = [replace(c, nll_finetuned=s.nll_finetuned, nll_base=s.nll_base, ppl_ratio=ppl_ratio(s.nll_base, s.nll_finetuned),
                   extra={"n_tokens": s.n_tokens, **s.extra}) for c, s in zip(pool, scores)]
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="a finished demo's folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--selector", default="confident-gap")
    ns = parser.parse_args()
    import tempfile

    from tuneshift._registry import Registry
    from tuneshift.api import Candidate, ModelSpec, State, read_jsonl, spearman
    from tuneshift_demo.domain import PRESETS, build
    from tuneshift_demo.judge import Judge

    crawl = ns.out / "arms" / f"no_filter-s{ns.seed}" / "crawl"
    if not (crawl / "run" / "candidates.jsonl").is_file():
        sys.exit(f"{crawl}/run/candidates.jsonl: not there; run `tuneshift demo --out {ns.out}` first")
    config = tomllib.loads((crawl / "config.toml").read_text())
    teacher = ModelSpec(base=config["teacher"]["base"], adapter=config["teacher"]["adapter"])
    pool = [Candidate(**r) for r in read_jsonl(crawl / "run" / "candidates.jsonl") if r.get("response")]
    demo = json.loads((ns.out / "report.json").read_text())
    judge = Judge(build(0, **PRESETS[demo["preset"]]))
    cls = State(Registry(), []).named("selector", ns.selector)
    selector = cls(cls.Options(), None)
    by = {}
    with tempfile.TemporaryDirectory(prefix="tuneshift-kept-") as work:
        for precision in ("float32", "bfloat16"):
            print(f"[kept-set] scoring {len(pool)} pairs in {precision} ...", file=sys.stderr, flush=True)
            cands, seconds = rescored(pool, teacher, precision, work)
            decisions = selector.decide(cands, [])
            by[precision] = {"cands": {c.id: c for c in cands}, "seconds": round(seconds, 2),
                             "kept": {c.id for c, d in zip(cands, decisions) if d.keep},
                             "reason": {c.id: d.reason for c, d in zip(cands, decisions)}}
    f32, b16 = by["float32"], by["bfloat16"]
    ids = sorted(f32["cands"])

    def column(which: dict, key: str) -> list[float]:
        return [getattr(which["cands"][i], key) for i in ids]

    def row(i: int) -> dict:
        a, b = f32["cands"][i], b16["cands"][i]
        return {"id": i, "prompt": a.prompt, "response": a.response, "verdict": judge(a.prompt, a.response),
                "kept_by": "float32" if i in f32["kept"] else "bfloat16",
                "float32": {"nll_finetuned": round(a.nll_finetuned, 5), "nll_base": round(a.nll_base, 4),
                            "min_logprob": round(a.extra.get("min_logprob_finetuned", 0.0), 4), "reason": f32["reason"][i]},
                "bfloat16": {"nll_finetuned": round(b.nll_finetuned, 5), "nll_base": round(b.nll_base, 4),
                             "min_logprob": round(b.extra.get("min_logprob_finetuned", 0.0), 4), "reason": b16["reason"][i]}}

    gap = {p: [x - y for x, y in zip(column(by[p], "nll_base"), column(by[p], "nll_finetuned"))] for p in by}
    print(json.dumps({
        "setup": {"demo": str(ns.out), "seed": ns.seed, "preset": demo["preset"], "selector": ns.selector,
                  "pool": len(pool), "teacher": config["teacher"]},
        "seconds": {p: by[p]["seconds"] for p in by},
        "max_nll_difference": {k: round(max(abs(x - y) for x, y in zip(column(f32, k), column(b16, k))), 5)
                               for k in ("nll_finetuned", "nll_base")},
        "spearman": {"nll_finetuned": round(spearman(column(f32, "nll_finetuned"), column(b16, "nll_finetuned")), 5),
                     "nll_base": round(spearman(column(f32, "nll_base"), column(b16, "nll_base")), 5),
                     "gap": round(spearman(gap["float32"], gap["bfloat16"]), 5)},
        "kept": {"float32": len(f32["kept"]), "bfloat16": len(b16["kept"]), "both": len(f32["kept"] & b16["kept"])},
        "same_kept_set": f32["kept"] == b16["kept"],
        "differences": [row(i) for i in sorted(f32["kept"] ^ b16["kept"])],
    }, indent=1))


if __name__ == "__main__":
    main()
