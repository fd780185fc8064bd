"""confident-gap with and without `repeat_nll`, replayed on a finished demo's pools and judged: what the band adds.

    .venv/bin/python benchmarks/repeat_band.py [--out runs/demo] [--bounds 0.05,0.08,0.1]

For every seed of the demo in --out, two pools: the tuneshift arm's own
candidates (arms/tuneshift-s<seed>/run) and the no_filter arm's crawl, which
keeps everything (arms/no_filter-s<seed>/crawl/run). Each variant of
confident-gap decides round by round, as in a run: a round sees the pairs the
variant kept in earlier rounds. The variants: the shipped bounds, `repeat_nll`
at each bound, and the fixed bound simply loosened to the largest one
(`max_nll`), the baseline a band must beat. Per variant and pool it prints the
kept count (no per-answer cap), the kept pairs the demo's judge finds right
and wrong, the false-keep rate, and the distinct facts judged right. One JSON
object; no model is loaded, so it takes seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE / "core"), str(HERE / "plugins")]


def replay(pool: list, options: dict[str, Any], judge: Any) -> dict[str, Any]:
    """One variant's kept set on a pool, decided round by round, and the judge's verdicts on it."""
    from tuneshift.api import Context, ModelSpec
    from tuneshift_demo.judge import false_keep_rate
    from tuneshift_select.confident import ConfidentGap

    selector = ConfidentGap(ConfidentGap.Options(**options), Context(teacher=ModelSpec(base="unused"), target=None,
                                                                     seed=0, work_dir="."))
    kept: list = []
    for rnd in sorted({c.round for c in pool}):
        scored = [c for c in pool if c.round == rnd]
        kept += [c for c, d in zip(scored, selector.decide(scored, kept)) if d.keep]
    verdicts = [judge(c.prompt, c.response) for c in kept]
    facts = {judge.fact(c.prompt) for c, v in zip(kept, verdicts) if v == "right"} - {None}
    rate = false_keep_rate(verdicts)
    return {"kept": len(kept), "right": verdicts.count("right"), "wrong": verdicts.count("wrong"),
            "false_keep_rate": None if rate is None else round(rate, 3), "right_facts": len(facts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="a finished demo's folder")
    parser.add_argument("--bounds", default="0.05,0.08,0.1", help="repeat_nll values to try, comma-separated")
    args = parser.parse_args()
    from tuneshift.api import Candidate, read_json, read_jsonl
    from tuneshift_demo.run import make_domain

    out = Path(args.out)
    report = read_json(out / "report.json")
    _, judge = make_domain(report.get("domain", "organisation"), report["preset"], None)
    bounds = [float(b) for b in args.bounds.split(",")]
    variants = {"shipped": {}, **{f"repeat_nll={b:g}": {"repeat_nll": b} for b in bounds},
                f"max_nll={max(bounds):g}": {"max_nll": max(bounds)}}
    pools: dict[str, Any] = {}
    for seed in report["seeds"]:
        for arm, folder in (("tuneshift", out / "arms" / f"tuneshift-s{seed}" / "run"),
                            ("no_filter", out / "arms" / f"no_filter-s{seed}" / "crawl" / "run")):
            if not (folder / "candidates.jsonl").exists():
                continue
            pool = [Candidate(**r) for r in read_jsonl(folder / "candidates.jsonl") if r.get("nll_base") is not None]
            pools[f"{arm}-s{seed}"] = {name: replay(pool, options, judge) for name, options in variants.items()}
    print(json.dumps({"demo": str(out), "preset": report["preset"], "variants": variants, "pools": pools}, indent=1))


if __name__ == "__main__":
    main()
