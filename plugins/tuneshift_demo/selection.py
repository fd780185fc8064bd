"""The selection ablation: each selection method on the same unfiltered pool, judged against the domain.

The no_filter arm's crawl scores every candidate and keeps them all, so it is
a pool on which every method can be replayed offline: which candidates would
it keep, and how many of those answers are wrong (the false-keep rate, from
the domain's ground truth in judge.py)? With `train` (the full preset), each
method's kept set is also cut to one common size and trained on, so the
methods compare at equal dataset size. A sweep of the paper's tau shows how
kept count and false-keep rate move with the threshold.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Callable

from tuneshift.api import Candidate, ModelSpec, State, build_context, read_jsonl, write_json

from .checking import beats
from .judge import Judge, false_keep_rate

METHODS: dict[str, dict[str, Any]] = {
    "ppl-ratio": {"threshold": 1.5},          # the paper's fixed tau
    "calibrated": {"quantile": 0.99},
    "confident-gap": {},
    "token-excess": {"threshold": 0.405},     # mean token excess > log 1.5
}
SWEEP = [1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0]


def selector(state: State, name: str, options: dict[str, Any], teacher: ModelSpec, work: Path) -> Any:
    """The installed selector `name` itself (each method is compared, whatever --plugin chose), with a
    context that answers through the chosen answerer and scores through the chosen scorer."""
    cls = state.named("selector", name)
    ctx = build_context(state, teacher, work_dir=work)
    answerer = state.build("answerer", ctx, batch_size=32)
    ctx.generate = answerer.answer
    return cls(cls.Options(**options), ctx)


def pool(crawl_run: Path) -> list[Candidate]:
    return [Candidate(**r) for r in read_jsonl(crawl_run / "candidates.jsonl") if r.get("nll_base") is not None]


def replay(seed: int, ctx: dict[str, Any], judge: Judge) -> dict[str, Any]:
    """Every method's kept set on the seed's pool, its false-keep rate, and the tau sweep (cached)."""
    out: Path = ctx["out"] / "arms" / f"selection-s{seed}"
    done = out / "methods.json"
    if done.exists():
        return json.loads(done.read_text())
    from .arms import run_arm

    run_arm("no_filter", seed, ctx)
    candidates = pool(ctx["out"] / "arms" / f"no_filter-s{seed}" / "crawl" / "run")
    verdicts = {c.id: judge(c.prompt, c.response) for c in candidates}
    teacher = ModelSpec(base=ctx["inputs"]["teacher_base"], adapter=ctx["inputs"]["teacher_adapter"])
    methods: dict[str, Any] = {}
    for name, options in METHODS.items():
        chosen = selector(ctx["state"], name, options, teacher, out)
        kept = [c.id for c, d in zip(candidates, chosen.decide(candidates, [])) if d.keep]
        methods[name] = {"kept": len(kept), "kept_ids": kept,
                         "false_keep_rate": false_keep_rate([verdicts[i] for i in kept]), **chosen.summary()}
    tuneshift_rows = read_jsonl(ctx["out"] / "arms" / f"tuneshift-s{seed}" / "run" / "candidates.jsonl")
    kept_rows = [r for r in tuneshift_rows if r["fate"] == "kept"]
    tuneshift_kept = [judge(r["prompt"], r["response"]) for r in kept_rows]
    right_facts = {judge.fact(r["prompt"]) for r, v in zip(kept_rows, tuneshift_kept) if v == "right"} - {None}
    result = {"pool": len(candidates), "verdicts": _count(verdicts.values()), "methods": methods,
              "sweep": [_at_tau(candidates, verdicts, tau) for tau in SWEEP],
              "tuneshift_arm": {"kept": len(tuneshift_kept), "false_keep_rate": false_keep_rate(tuneshift_kept),
                                "right_facts": len(right_facts)}}
    write_json(done, result)
    return result


def _count(verdicts: Any) -> dict[str, int]:
    out = {"right": 0, "wrong": 0, "unjudged": 0}
    for v in verdicts:
        out[v] += 1
    return out


def _at_tau(candidates: list[Candidate], verdicts: dict[int, str], tau: float) -> dict[str, Any]:
    kept = [verdicts[c.id] for c in candidates if c.ppl_ratio is not None and c.ppl_ratio > tau]
    return {"tau": tau, "kept": len(kept), "false_keep_rate": false_keep_rate(kept),
            "right": sum(v == "right" for v in kept)}


def train_arms(seed: int, ctx: dict[str, Any], replayed: dict[str, Any], judge: Judge,
               release: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Each method's kept set, cut to the smallest kept size (seeded draw), trained and evaluated (cached);
    with the judge's verdicts on the pairs it trained on, which say why accuracies differ or do not.
    `release` drops the models loaded for one method before the next (each evaluates its own adapter)."""
    from .arms import evaluate, train

    # a method that keeps nothing leaves the target untrained; the others share the smallest kept size
    size = min([m["kept"] for m in replayed["methods"].values() if m["kept"]] or [0])
    rows = {c.id: c for c in pool(ctx["out"] / "arms" / f"no_filter-s{seed}" / "crawl" / "run")}
    results = {}
    for name, method in replayed["methods"].items():
        out: Path = ctx["out"] / "arms" / f"select-{name}-s{seed}"
        ids = random.Random(seed).sample(method["kept_ids"], size) if method["kept"] else []
        pairs = [{"prompt": rows[i].prompt, "response": rows[i].response} for i in ids]
        done = out / "result.json"
        if done.exists():
            result = json.loads(done.read_text())
        else:
            adapter = train(ctx["state"], ctx["inputs"]["target"], pairs, out, ctx["settings"]["trainer"], seed,
                            ctx["progress"]) if pairs else None
            result = {"method": name, "seed": seed, "dataset_size": len(pairs),
                      **evaluate(ctx["state"], ctx["inputs"]["target"], adapter, ctx["evals"], out)}
            write_json(done, result)
            release()
        results[name] = {**result, "trained_on": _count(judge(p["prompt"], p["response"]) for p in pairs)}
    return results


def summarise(per_seed: list[dict[str, Any]], trained: list[dict[str, Any]]) -> dict[str, Any]:
    """report.json's `selection`: per method mean and std over seeds of kept, false-keep rate, accuracy."""
    def stats(values: list[float | None]) -> dict[str, Any]:
        known = [v for v in values if v is not None]
        mean = sum(known) / len(known) if known else None
        std = math.sqrt(sum((v - mean) ** 2 for v in known) / (len(known) - 1)) if len(known) > 1 else 0.0
        return {"mean": mean, "std": std, "per_seed": values}

    methods = {}
    for name in METHODS:
        entry = {"kept": stats([s["methods"][name]["kept"] for s in per_seed]),
                 "false_keep_rate": stats([s["methods"][name]["false_keep_rate"] for s in per_seed])}
        if trained:
            entry["accuracy"] = stats([t[name]["accuracy"] for t in trained])
            entry["dataset_size"] = stats([t[name]["dataset_size"] for t in trained])
            entry["right_pairs_trained"] = stats([t[name]["trained_on"]["right"] for t in trained])
        methods[name] = entry
    versus = {}
    if trained:  # at equal size: ahead of the paper's tau by more than twice the larger std over seeds?
        arm = lambda s: {"accuracy": s["mean"], "std": s["std"], "per_seed": s["per_seed"]}  # noqa: E731
        versus = {name: beats(arm(methods[name]["accuracy"]), arm(methods["ppl-ratio"]["accuracy"]))
                  for name in METHODS if name != "ppl-ratio"}
    return {"methods": methods, "versus_paper_tau": versus,
            "pool": [s["pool"] for s in per_seed], "verdicts": [s["verdicts"] for s in per_seed],
            "sweep": per_seed[0]["sweep"] if per_seed else [],
            "tuneshift_arm_false_keep_rate": stats([s["tuneshift_arm"]["false_keep_rate"] for s in per_seed]),
            "tuneshift_arm_right_facts": stats([s["tuneshift_arm"].get("right_facts") for s in per_seed]),
            "equal_size_training": bool(trained)}


def markdown(report: dict[str, Any]) -> list[str]:
    sel = report.get("selection")
    if not sel:
        return []
    fmt = lambda s: "" if s is None or s["mean"] is None else f"{s['mean']:.3f} ± {s['std']:.3f}"  # noqa: E731
    lines = ["", "## Selection methods on the unfiltered pool", "",
             "False-keep rate: share of a method's kept pairs whose answer is wrong by the domain's ground truth "
             "(a question about a non-existent entity or fact counts as wrong).", "",
             "| method | kept | false-keep rate | accuracy (equal size) | right pairs trained on |",
             "| --- | --- | --- | --- | --- |"]
    for name, m in sel["methods"].items():
        lines.append(f"| {name} | {fmt(m['kept'])} | {fmt(m['false_keep_rate'])} | {fmt(m.get('accuracy'))} "
                     f"| {fmt(m.get('right_pairs_trained'))} |")
    if not sel["equal_size_training"]:
        lines.append("\nAccuracy at equal dataset size is measured by the full preset (one training per method).")
    for name, v in sel.get("versus_paper_tau", {}).items():
        verdict = {True: "beats it", False: "does not beat it", None: "one seed: no verdict"}[v["beats"]]
        lines.append(f"\n- {name} vs the paper's tau 1.5 at equal size: margin {v['margin']:+.3f}, twice the std "
                     f"{v['twice_std']:.3f}: {verdict}.")
    lines.append(f"\nThe tuneshift arm's own kept set: false-keep rate {fmt(sel['tuneshift_arm_false_keep_rate'])}, "
                 f"distinct facts judged right {fmt(sel.get('tuneshift_arm_right_facts'))}.")
    return lines


def plot(out: Path, report: dict[str, Any]) -> list[str]:
    sel = report.get("selection")
    if not sel:
        return []
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(sel["methods"])
    rates = [sel["methods"][n]["false_keep_rate"] for n in names]
    left.bar(names, [r["mean"] or 0 for r in rates], yerr=[r["std"] for r in rates], capsize=5, color="#c72")
    left.set_ylabel("false-keep rate (kept pairs with a wrong answer)")
    left.set_ylim(0, 1)
    left.set_title("False-keep rate per selection method")
    sweep = sel["sweep"]
    right.plot([s["tau"] for s in sweep], [s["kept"] for s in sweep], "o-", color="#27c", label="kept")
    right.plot([s["tau"] for s in sweep], [s["right"] for s in sweep], "^-", color="#2a7", label="kept and right")
    right.set_xscale("log")
    right.set_xlabel("tau (PPL_base / PPL_finetuned)")
    right.set_ylabel("pairs")
    twin = right.twinx()
    twin.plot([s["tau"] for s in sweep], [s["false_keep_rate"] or 0 for s in sweep], "s--", color="#c72")
    twin.set_ylabel("false-keep rate", color="#c72")
    twin.set_ylim(0, 1)
    right.legend(loc="upper right")
    right.set_title("Sweep of the paper's tau on the pool (first seed)")
    fig.tight_layout()
    fig.savefig(out / "selection.png", dpi=110)
    plt.close(fig)
    return ["selection.png"]
