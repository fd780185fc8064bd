"""Tests of the example plugin that need no model: run them with `pytest` after `pip install -e .`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tuneshift.api import Candidate, Context, ExpansionState, ModelSpec
from tuneshift.api import Score, Scorer  # [kind: scorer]
from tuneshift_example.expander import ExampleExpander  # [kind: expander]
from tuneshift_example.scorer import ExampleScorer  # [kind: scorer]

SEEDS = ["What is the capital of Zorbia?", "Who founded Quillton?"]


def context(tmp_path: Path, make: object = None) -> Context:
    return Context(teacher=ModelSpec(base="unused", adapter="unused"), target=None, seed=0, work_dir=str(tmp_path),
                   make=make)


# [kind: expander]
def state(kept: list[str], round_: int = 1) -> ExpansionState:
    cands = [Candidate(id=i, round=0, prompt=p, origin="seed", fate="dropped") for i, p in enumerate(SEEDS)]
    cands += [Candidate(id=len(cands) + i, round=0, prompt=p, origin="seed", fate="kept", score=float(i))
              for i, p in enumerate(kept)]
    return ExpansionState(round=round_, seeds=SEEDS, candidates=cands)


def expander(tmp_path: Path, **options: object) -> ExampleExpander:
    return ExampleExpander(ExampleExpander.Options.model_validate(options), context(tmp_path))


def test_proposals_are_new_deterministic_and_explained(tmp_path: Path) -> None:
    kept = ["Where is Lake Ombra?", "When did the Velt bridge open?"]
    st = state(kept)
    first = expander(tmp_path).propose(st, 5)
    assert first == expander(tmp_path).propose(st, 5)
    assert len(first) == 5
    prompts = [p.prompt for p in first]
    assert len(set(prompts)) == len(prompts)
    assert not set(prompts) & {c.prompt for c in st.candidates}
    for p in first:
        assert p.origin == "example-expander" and p.operator == "template"
        assert p.parent in kept and p.parent in p.prompt
    assert first[0].parent == kept[1]  # the best-scored kept prompt is rephrased first


def test_falls_back_to_seeds_and_never_repeats(tmp_path: Path) -> None:
    st = state([])
    st.candidates.append(Candidate(id=9, round=1, prompt=f"In other words, {SEEDS[0]}", origin="example-expander"))
    proposals = expander(tmp_path).propose(st, 100)
    assert {p.parent for p in proposals} == set(SEEDS)
    assert f"In other words, {SEEDS[0]}" not in [p.prompt for p in proposals]
    assert len(proposals) == 3 * len(SEEDS) - 1  # every template x seed, less the one already proposed


def test_options_validation(tmp_path: Path) -> None:
    assert expander(tmp_path, templates=["Q: {prompt}"]).propose(state([]), 1)[0].prompt == f"Q: {SEEDS[0]}"
    for bad in (["no placeholder"], [], ["{prompt} {other}"]):
        with pytest.raises(ValidationError):
            ExampleExpander.Options.model_validate({"templates": bad})
    with pytest.raises(ValidationError):
        ExampleExpander.Options.model_validate({"unknown": 1})


# [end kind]


# [kind: scorer]
class _FixedScorer(Scorer):
    name = "fixed"

    def score(self, model: ModelSpec, pairs: list[tuple[str, str]]) -> list[Score]:
        return [Score(nll_finetuned=1.0, nll_base=2.5, n_tokens=4) for _ in pairs]


def test_scorer_adds_gap_per_token(tmp_path: Path) -> None:
    asked = []

    def make(kind: str, name: str, **options: object) -> Scorer:  # what the core's Context.make does, modelless
        asked.append((kind, name, options))
        return _FixedScorer(Scorer.Options(), context(tmp_path))

    scorer = ExampleScorer(ExampleScorer.Options(batch_size=4), context(tmp_path, make))
    [score] = scorer.score(ModelSpec(base="unused"), [("q", "a")])
    assert asked == [("scorer", "hf-scorer", {"batch_size": 4})]
    assert (score.nll_finetuned, score.nll_base, score.n_tokens) == (1.0, 2.5, 4)
    assert score.extra == {"gap_per_token": 1.5}
    with pytest.raises(ValidationError):
        ExampleScorer.Options(batch_size=0)


# [end kind]


def test_registered_when_installed() -> None:
    """Passes once the distribution is installed (`pip install -e .`): tuneshift finds it by entry point."""
    import json
    import subprocess
    import sys

    listing = subprocess.run([sys.executable, "-m", "tuneshift", "plugins", "--json"], capture_output=True, text=True,
                             check=True).stdout
    entries = {e["name"]: e for e in json.loads(listing)}
    expected = [
        ("example-expander", "expander"),  # [kind: expander]
        ("example-scorer", "scorer"),  # [kind: scorer]
    ]
    for name, kind in expected:
        assert name in entries, f"{name} not registered; is tuneshift-example installed?"
        entry = entries[name]
        assert (entry["kind"], entry["status"], entry["distribution"], entry["builtin"]) == (
            kind, "ok", "tuneshift-example", False)
