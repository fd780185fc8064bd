"""Knowledge augmentation on one kept set: the same crawl and trainer, only the augmentation (and the training seed) changed.

    .venv/bin/python benchmarks/augmentation.py [--out runs/demo] [--seed 0 | --run RUN_DIR] [--train-seeds 0,1]
                                                [--variants none,rules,shipped,no_kind_filter] [--work DIR]

The tuneshift arm of the demo in --out (arms/tuneshift-s<seed>/run) holds a
finished crawl. For every variant and training seed the run folder is copied
into --work (default: a new temporary folder, removed afterwards); the copy
keeps its rounds (state/round-*) and its cache, and loses the job marker and
everything after the rounds (training state, adapter, reports), so `tuneshift
run` on it (in this process, through the public API) re-runs only the
augmentation and the training, with the variant's [augment] section and
`trainer.seed`. Each trained target answers the demo's held-out questions
(its `evaluate`), scored per relation. `--run` takes another finished run
of the demo's domain (a `tuneshift run` of an arm's config) instead of the
seed's arm; --out still names the domain and preset.

Variants:
- none: no augmentation, the kept pairs alone;
- rules: rule rewrites and wrappers, no model;
- shipped: the demo's AUGMENT (the target rephrases, filtered by `tuneshift._phrasing.asks_the_same`);
- no_kind_filter: shipped, with the filter's question-kind check off (`ASKED_KINDS` emptied), the
  paraphraser as it was before that check;
- similar: shipped, with a model's phrasings used only at `augment.similarity` >= SIMILAR to the question
  (sentence embeddings, names masked; `tuneshift._phrasing.near_the_question`);
- six, eight: shipped, with 6 or 8 phrasings a kept question instead of 4;
- held_out: shipped, the trainer choosing its epoch by a held-out tenth of the pairs (`held_out = 0.1`,
  the recipe's epochs the most), whole facts held out: what the epoch choice costs or adds;
- held_out_phrasing: the same, one phrasing of a tenth of the facts held out (`held_out_by = "phrasing"`).

One training seed is one draw: on the full preset one draw moved held-out
accuracy by 0.16 with the same facts (docs/generators.md), so compare
variants over several --train-seeds. Prints one JSON object; progress on
stderr. Cost: one training per variant and seed (quick: 1-4 min each; full:
20-40 min each on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE / "core"), str(HERE / "plugins")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIMILAR = 0.8
"""The `similar` variant's floor."""
AFTER_ROUNDS = ("adapter", "tensorboard", "report.json", "run.json", "verification.jsonl", "verification.md",
                "verification.png", "dataset.jsonl", ".lock", "job.json", "train", "train.done.json", "verify")
"""What a copy drops: the job marker (the augment section changes) and everything the final stages write."""


def variants() -> dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """name -> ([augment] section, module globals to set while it runs, [trainer] options it changes)."""
    from tuneshift_demo.run import AUGMENT

    return {"none": ({"enabled": False}, {}, {}),
            "rules": ({"enabled": True, "rephrasings": AUGMENT["rephrasings"]}, {}, {}),
            "shipped": (dict(AUGMENT), {}, {}),
            "no_kind_filter": (dict(AUGMENT), {"ASKED_KINDS": {}}, {}),
            "similar": ({**AUGMENT, "similarity": SIMILAR}, {}, {}),
            "six": ({**AUGMENT, "rephrasings": 6}, {}, {}),
            "eight": ({**AUGMENT, "rephrasings": 8}, {}, {}),
            "held_out": (dict(AUGMENT), {}, {"held_out": 0.1}),
            "held_out_phrasing": (dict(AUGMENT), {}, {"held_out": 0.1, "held_out_by": "phrasing"})}


def copy_rounds(run_dir: Path, dst: Path, cache_from: Path | None = None) -> None:
    """The run folder with its rounds and cache only (tuneshift's own marker included, so the copy is a run
    folder tuneshift owns); the cache of `cache_from`, an earlier copy, when given: it holds that copy's
    augmentation calls too, so a variant rephrases once for all its training seeds."""
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns(*AFTER_ROUNDS))
    if cache_from is not None:
        shutil.copy2(cache_from / "cache.sqlite", dst / "cache.sqlite")


def one(state: Any, run_dir: Path, work: Path, name: str, augment: dict[str, Any], patch: dict[str, Any],
        trainer: dict[str, Any], train_seed: int, evals: list[dict[str, str]], cache_from: Path | None) -> dict[str, Any]:
    """Augment and train one copy, then answer the held-out questions."""
    import tomli_w

    import tuneshift._phrasing as phrasing
    from tuneshift.api import run_pipeline
    from tuneshift_demo.arms import evaluate

    dst = work / f"{name}-t{train_seed}"
    copy_rounds(run_dir, dst, cache_from)
    config = tomllib.loads((run_dir / "config.toml").read_text())
    config["augment"] = augment
    config["target"]["train"] = True
    config["trainer"].update(trainer, seed=train_seed)
    config["verify"] = {"enabled": False}
    path = work / f"{name}-t{train_seed}.toml"
    path.write_text(tomli_w.dumps(config))
    saved = {key: getattr(phrasing, key) for key in patch}
    started = time.time()
    try:
        for key, value in patch.items():
            setattr(phrasing, key, value)
        report = run_pipeline(state, path, dst)
    finally:
        for key, value in saved.items():
            setattr(phrasing, key, value)
    trained = time.time() - started
    result = evaluate(state, config["target"]["model"], str(dst / "adapter"), evals, dst / "evaluate")
    relations: dict[str, list[int]] = {}
    for item, ok in zip(evals, result["correct"]):
        counts = relations.setdefault(item["relation"], [0, 0])
        counts[0] += ok
        counts[1] += 1
    pairs = sum(1 for line in (dst / "dataset.jsonl").read_text().splitlines() if line.strip())
    print(f"{name} train seed {train_seed}: {result['accuracy']:.3f} on {pairs} pairs ({trained:.0f} s)",
          file=sys.stderr, flush=True)
    return {"accuracy": round(result["accuracy"], 4), "pairs": pairs, "seconds": round(trained, 1),
            "augmentation": report.get("augmentation"), "train": report.get("train"),
            "relations": {rel: f"{right}/{asked}" for rel, (right, asked) in relations.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="a finished demo's folder")
    parser.add_argument("--seed", type=int, default=0, help="which seed's tuneshift arm")
    parser.add_argument("--run", type=Path, default=None, help="a finished run folder instead of the seed's arm")
    parser.add_argument("--train-seeds", default="0,1", help="training seeds, comma-separated")
    parser.add_argument("--variants", default="none,rules,shipped,no_kind_filter")
    parser.add_argument("--work", type=Path, default=None, help="where the copies go (kept); default a temp folder")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads (two benchmarks side by side: half each)")
    ns = parser.parse_args()
    import torch

    from tuneshift._registry import Registry
    from tuneshift.api import State
    from tuneshift_demo.run import make_domain

    torch.set_num_threads(ns.threads)
    known = variants()
    chosen = ns.variants.split(",")
    unknown = [v for v in chosen if v not in known]
    if unknown:
        sys.exit(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    run_dir = ns.run or ns.out / "arms" / f"tuneshift-s{ns.seed}" / "run"
    finished = (run_dir / "run.json").is_file() and json.loads((run_dir / "run.json").read_text()).get("status") == "ok"
    if not finished:
        sys.exit(f"{run_dir}: holds no finished run; run `tuneshift demo --out {ns.out}` first")
    if ns.work is not None and ns.work.exists():
        sys.exit(f"--work {ns.work}: exists; give a new folder")
    demo = json.loads((ns.out / "report.json").read_text())
    domain, _ = make_domain(demo.get("domain", "organisation"), demo["preset"], None)
    evals = domain.eval_set()
    train_seeds = [int(s) for s in ns.train_seeds.split(",")]
    state = State(Registry(), [])
    work = ns.work or Path(tempfile.mkdtemp(prefix="tuneshift-augmentation-"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"demo": str(ns.out), "run": str(run_dir), "preset": demo["preset"],
                           "kept": sum(1 for r in map(json.loads, (run_dir / "candidates.jsonl").read_text().splitlines())
                                       if r.get("fate") == "kept"),
                           "train_seeds": train_seeds, "variants": {}}
    try:
        for name in chosen:
            augment, patch, trainer = known[name]
            runs = {}
            for k, seed in enumerate(train_seeds):
                earlier = work / f"{name}-t{train_seeds[k - 1]}" if k else None
                runs[seed] = one(state, run_dir, work, name, augment, patch, trainer, seed, evals, earlier)
            scores = [r["accuracy"] for r in runs.values()]
            out["variants"][name] = {"mean": round(statistics.mean(scores), 4),
                                     "std": round(statistics.stdev(scores), 4) if len(scores) > 1 else None,
                                     "runs": runs}
    finally:
        if ns.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
