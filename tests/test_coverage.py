"""Crawling to saturation: what each round adds (new entities, new answers), and the stop conditions
(run.patience, the budgets) that make run.rounds a ceiling."""

from __future__ import annotations

import json
from types import SimpleNamespace

from conftest import TINY, run_cli, tiny_overrides

from tuneshift._coverage import budget_spent, round_coverage, saturated, teacher_calls
from tuneshift.kinds import Candidate


def cand(i, prompt, response, fate="kept"):
    return Candidate(id=i, round=1, prompt=prompt, origin="x", response=response, fate=fate)


def test_a_round_counts_only_what_no_earlier_kept_pair_named():
    before = [cand(0, "Who leads Project Merlin?", "Ada Quill leads Project Merlin."),
              cand(1, "Where is Velmora?", "In Zorbia.", fate="below_threshold")]  # not kept: not known
    fresh = [cand(2, "Who founded Project Merlin?", "ada quill founded it!"),     # same entities, new answer
             cand(3, "Where is Velmora?", "Velmora lies in Zorbia."),              # Velmora, Zorbia: new
             cand(4, "Who leads Project Merlin?", "Ada Quill leads Project Merlin."),  # an answer known
             cand(5, "Who is Bo Tran?", "Nobody knows.", fate="duplicate")]
    cov = round_coverage(before, fresh)
    assert cov == {"new_entities": 2, "new_answers": 2, "kept_answers": 3}
    assert round_coverage(before + fresh, []) == {"new_entities": 0, "new_answers": 0, "kept_answers": 3}
    assert teacher_calls(before + fresh) == 5


def test_patience_counts_expansion_rounds_in_a_row():
    quiet = {"new_entities": 0, "new_answers": 0}
    rounds = [{"round": 0, "new_entities": 0, "new_answers": 0}, {"round": 1, "new_entities": 3, "new_answers": 1},
              {"round": 2, **quiet}]
    assert saturated(rounds, None) is None and saturated(rounds, 2) is None  # round 0 (the seeds) never counts
    assert saturated(rounds, 1).startswith("saturated: no new entity or answer in 1 round")
    assert saturated(rounds + [{"round": 3, **quiet}], 2).endswith("in 2 rounds (run.patience)")
    assert saturated(rounds + [{"round": 3, "new_entities": 0, "new_answers": 1}], 1) is None


def test_budgets_name_what_was_spent():
    cfg = SimpleNamespace(max_candidates=None, max_teacher_calls=None, max_seconds=None)
    cands = [cand(i, f"q{i}", "a", fate="duplicate" if i % 2 else "kept") for i in range(6)]
    assert budget_spent(cfg, cands, {}) is None
    assert budget_spent(SimpleNamespace(**{**vars(cfg), "max_teacher_calls": 3}), cands, {}) == \
        "run.max_teacher_calls = 3 reached"
    assert budget_spent(SimpleNamespace(**{**vars(cfg), "max_candidates": 6}), cands, {}) == \
        "run.max_candidates = 6 reached"
    timings = {"round-000/answer": 4.0, "round-001/score": 7.5, "train": 100.0}  # training is not crawling
    assert budget_spent(SimpleNamespace(**{**vars(cfg), "max_seconds": 10}), cands, timings) == \
        "run.max_seconds = 10 spent (12 s of rounds)"


def test_a_budget_ends_the_rounds_and_the_report_says_why(tiny, tmp_path):
    out = tmp_path / "run"
    seeds = len([line for line in tiny["seeds"].read_text().splitlines() if line.strip()])
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 6, "run.max_candidates": seeds + 1,
                                              "target.train": False, "verify.enabled": False}))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["stop_reason"] == f"run.max_candidates = {seeds + 1} reached"
    rounds = report["rounds"]
    assert rounds[-1]["stopped"] == report["stop_reason"] and len(rounds) <= 3  # seeds, one expansion, the stop
    assert all({"new_entities", "new_answers", "kept_answers"} <= set(r) for r in rounds if "stopped" not in r)
    assert "new_entities" in result.stderr  # the progress output shows them
