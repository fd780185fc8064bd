"""Stage 1: propose the round's prompts (the seeds in round 0, the expander's afterwards)."""

from __future__ import annotations

from tuneshift._stages.base import RunState
from tuneshift.kinds import Candidate, ExpansionState, Proposal


def run(run: RunState, round_: int, _: list[Candidate] | None) -> list[Candidate]:
    if round_ == 0:
        proposals = [Proposal(prompt=s, origin="seed") for s in run.seeds]
    else:
        state = ExpansionState(round=round_, seeds=run.seeds, candidates=list(run.candidates))
        proposals = run.impl["expander"].propose(state, run.cfg.run.per_round)
        proposals = [p for p in proposals if p.prompt and p.prompt.strip()][: run.cfg.run.per_round]
    start = len(run.candidates)
    return [
        Candidate(id=start + i, round=round_, prompt=p.prompt.strip(), origin=p.origin,
                  parent=p.parent, operator=p.operator, extra=dict(p.extra))
        for i, p in enumerate(proposals)
    ]
