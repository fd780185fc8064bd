"""The method, top to bottom: rounds of expand -> dedup -> answer -> score -> select,
then train the target, evaluate it and verify it (data-free).

Each stage of each round is checkpointed in state/round-NNN/STAGE.json; a
rerun loads finished stages instead of running them, and candidates.jsonl and
dataset.jsonl are rewritten whole from that state, so nothing is duplicated
or lost.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from itertools import chain
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from tuneshift._coverage import budget_spent, round_coverage, saturated
from tuneshift._card import write_card
from tuneshift._errors import TuneshiftError
from tuneshift._rundir import read_json, write_json, write_jsonl
from tuneshift._runner import Run
from tuneshift._stages import FINAL_STAGES, ROUND_STAGES
from tuneshift._stages.train import fact_of
from tuneshift.kinds import Candidate

DATASET_FIELDS = ("id", "round", "prompt", "response", "score", "nll_finetuned", "nll_base", "ppl_ratio", "origin")
DATASET_EXTRA = ("train_spans", "fact")
"""Keys of a candidate's extra that dataset.jsonl carries (for the trainer) when a selector set them."""


def dataset_row(c: Candidate, augmented: bool = False) -> dict[str, Any]:
    """A kept candidate's row; with augmentation every kept pair names its fact (its own id when no phrasing
    of it agreed), so the `fact` column holds integers from its first row on."""
    row = {**{k: getattr(c, k) for k in DATASET_FIELDS}, **{k: c.extra.get(k) for k in DATASET_EXTRA}}
    if augmented:
        row["fact"] = fact_of(c)
    return with_chat_columns(row)



def with_chat_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A dataset.jsonl row in every shape the ecosystem reads: `prompt`/`completion` (TRL's prompt-completion
    format) and `messages` (its conversational one) beside tuneshift's `response`; every row holds the same
    keys in the same order, so `datasets` infers one schema."""
    out = {**dict.fromkeys(DATASET_FIELDS), **dict.fromkeys(DATASET_EXTRA), **row}
    out["completion"] = out["response"]
    out["messages"] = [{"role": "user", "content": out["prompt"]}, {"role": "assistant", "content": out["response"]}]
    return out


def run_config(state: Any, config_path: str | Path, out_dir: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """`tuneshift run`: open the run (every check first), execute it, close it; returns the report."""
    job = Run(config_path, out_dir, list(overrides), state).open()
    try:
        return execute(job)
    finally:
        job.close()


def execute(run: Run) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; returns the report."""
    started = time.time()
    run.hook.on_run_start(out_dir=run.dir.path, config=run.provenance(started, "running", {})["config"])
    # until this run ends, the directory holds no finished result: a kill must not leave an old report
    write_json(run.dir.run_json, run.provenance(started, "running", {}))
    run.dir.report.unlink(missing_ok=True)
    try:
        rounds = run_rounds(run)
        sections = {}
        for stage in FINAL_STAGES:
            release_models(run)  # the rounds' or the last stage's: training, evaluation load their own
            sections[stage.report] = timed(run, stage.name, None, lambda: stage.run(run), final_total(run, stage.name))
            if stage.writes_dataset:
                write_outputs(run)
        release_models(run)
        report = {**build_report(run, rounds), **sections}
        write_json(run.dir.report, report)
        write_card(run.dir.adapter, run.teacher, report)  # the adapter's README.md, from the final numbers
        write_json(run.dir.run_json, run.provenance(started, "ok", report["counts"], report["rounds"]))
    except (Exception, KeyboardInterrupt) as exc:  # record the failure, then let the CLI report it
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:
            write_json(run.dir.run_json, run.provenance(started, status, {}))
        except TuneshiftError:  # a full disk fails this write too: report the first failure, not this one
            pass
        run.hook.on_run_end(out_dir=run.dir.path, status=status, error=str(exc) or type(exc).__name__)
        raise
    run.hook.on_run_end(out_dir=run.dir.path, status="ok", error=None)
    return report


def final_total(run: Run, stage: str) -> int | None:
    """What a final stage's bar counts to, where known: the trainer reports epochs."""
    if stage == "train" and run.cfg.target is not None and "trainer" in run.impl:
        epochs = getattr(run.impl["trainer"].options, "epochs", None)
        return epochs if isinstance(epochs, int) else None
    return None


def release_models(run: Run) -> None:
    """Every implementation frees the models it holds, so memory does not grow stage by stage."""
    for impl in run.impl.values():
        impl.release()
    gc.collect()


def timed(run: Run, stage: str, round_: int | None, fn: Callable[[], Any], total: int | None = None) -> Any:
    run.hook.on_stage_start(stage=stage, round=round_, total=total)
    run.current_stage = stage
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    run.record_time(stage if round_ is None else f"round-{round_:03d}/{stage}", seconds)
    counts = dict(Counter(c.fate for c in result)) if isinstance(result, list) else {}
    run.hook.on_stage_end(stage=stage, round=round_, counts=counts, seconds=seconds)
    return result


def run_rounds(run: Run) -> list[dict[str, Any]]:
    """Round 0 scores the seeds; rounds 1..N expand from what was kept, until a stop condition."""
    summaries = []
    for round_ in range(run.cfg.run.rounds + 1):
        stop = stop_reason(run, summaries)
        if stop:
            summaries.append({"round": round_, "stopped": stop})
            break
        run.hook.on_stage_start(stage="round", round=round_, total=None)
        started = time.perf_counter()
        fresh = run_one_round(run, round_)
        coverage = round_coverage(run.candidates, fresh)
        run.candidates.extend(fresh)
        write_outputs(run)
        fates = Counter(c.fate for c in fresh)
        kept_prompts = [c.prompt for c in fresh if c.kept]
        summaries.append({"round": round_, "proposed": len(fresh), **fates, **coverage,
                          "dataset_size": sum(c.kept for c in run.candidates),
                          "diversity": {"distinct_2": distinct_n(kept_prompts, 2),
                                        **run.impl["deduper"].diversity(kept_prompts)}})
        last = summaries[-1]
        run.hook.on_stage_end(stage="round", round=round_, seconds=time.perf_counter() - started,
                              counts={"kept": fates.get("kept", 0), "dataset_size": last["dataset_size"],
                                      "new_entities": coverage["new_entities"], "new_answers": coverage["new_answers"],
                                      **last["diversity"]})
    return summaries


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams over all word n-grams of the texts (1.0: no n-gram repeats)."""
    grams = [tuple(words[i:i + n]) for t in texts for words in [t.casefold().split()]
             for i in range(len(words) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def stop_reason(run: Run, summaries: list[dict[str, Any]]) -> str | None:
    target = run.cfg.run.target_size
    kept = sum(c.kept for c in run.candidates)
    if target is not None and kept >= target:
        return f"target size {target} reached"
    if summaries and summaries[-1]["round"] > 0 and summaries[-1]["proposed"] - summaries[-1].get("duplicate", 0) == 0:
        return "the expander found nothing new"
    if summaries:  # the seeds themselves are always scored
        return budget_spent(run.cfg.run, run.candidates, run.timings) or saturated(summaries, run.cfg.run.patience)
    return None


def why_stopped(run: Run, rounds: list[dict[str, Any]]) -> str:
    """report.json's `stop_reason`: the condition that ended the rounds, or their ceiling."""
    last = rounds[-1] if rounds else {}
    return last.get("stopped") or f"run.rounds = {run.cfg.run.rounds} done"


def run_one_round(run: Run, round_: int) -> list[Candidate]:
    fresh: list[Candidate] | None = None
    for stage in ROUND_STAGES:
        path = run.dir.stage_file(round_, stage.name)
        if path.exists():
            fresh = [Candidate(**row) for row in read_json(path)]
            continue
        total = sum(c.fate == "pending" for c in fresh) if fresh is not None else None
        fresh = timed(run, stage.name, round_, lambda: stage.run(run, round_, fresh), total)
        write_json(path, [asdict(c) for c in fresh])
    return fresh or []


def write_outputs(run: Run) -> None:
    """candidates.jsonl whole, and dataset.jsonl: the kept pairs, then the augmentation's (with their `fact`)."""
    write_jsonl(run.dir.candidates, (asdict(c) for c in run.candidates))
    augmented = (with_chat_columns(row) for row in run.augmented)
    kept = (dataset_row(c, bool(run.augmented)) for c in run.candidates if c.kept)
    write_jsonl(run.dir.dataset, chain(kept, augmented))


def build_report(run: Run, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's sections before the final stages' (they add theirs, in the order of STAGES)."""
    fates = Counter(c.fate for c in run.candidates)
    selector = run.impl["selector"]
    return {
        "dataset_size": fates.get("kept", 0),
        "counts": {"candidates": len(run.candidates), **fates},
        "rounds": rounds,
        "stop_reason": why_stopped(run, rounds),
        "selection": {"selector": selector.name, **selector.options.model_dump(mode="json"), **selector.summary()},
    }
