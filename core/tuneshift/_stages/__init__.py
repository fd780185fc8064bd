"""The method's stages, in the order it runs them: one module each, one line each in `STAGES`.

Per-round stages (expand, dedup, answer, score, select) take and return the
round's fresh candidates, and each one's output is checkpointed per round;
final stages (train, evaluate, verify) run once after the rounds and give
report.json a section. A stage gets its implementations through the `Run`
and never imports a model library. A new stage is a module and a line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tuneshift._stages import answer, augment, dedup, evaluate, expand, score, select, train, verify


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[..., Any]
    """Per round: run(run, round, fresh) -> fresh; final: run(run) -> its report section (or None)."""
    per_round: bool
    report: str | None = None
    """The final stage's key in report.json."""
    free: tuple[tuple[str, str | None], ...] = ()
    """Config keys (section, key; key None: the whole section) that only this stage reads, after the
    training: a resumed run may change them without invalidating the work done."""
    writes_dataset: bool = False
    """The stage adds training pairs (or marks candidates): dataset.jsonl and candidates.jsonl are rewritten."""


STAGES: tuple[Stage, ...] = (
    Stage("expand", expand.run, per_round=True),
    Stage("dedup", dedup.run, per_round=True),
    Stage("answer", answer.run, per_round=True),
    Stage("score", score.run, per_round=True),
    Stage("select", select.run, per_round=True),
    Stage("augment", augment.run, per_round=False, report="augmentation", writes_dataset=True),
    Stage("train", train.run, per_round=False, report="train"),
    Stage("evaluate", evaluate.run, per_round=False, report="eval", free=(("eval", "path"),)),
    Stage("verify", verify.run, per_round=False, report="verification", free=(("verify", None),)),
)

ROUND_STAGES = tuple(s for s in STAGES if s.per_round)
FINAL_STAGES = tuple(s for s in STAGES if not s.per_round)
