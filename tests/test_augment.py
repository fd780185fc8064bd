"""Knowledge augmentation: kept facts asked again in other phrasings, consistent answers trained on, one fact's
phrasings never in one batch."""

from __future__ import annotations

import json

from conftest import TINY, run_cli, tiny_overrides

from tuneshift._stages.augment import rephrase
from tuneshift._text import normalise
from tuneshift_hf.training import epoch_batches, split_held_out


def test_rule_rephrasings_keep_every_name_and_never_repeat_the_question():
    question = "Who leads Project Merlin at Halvorsen Institute?"
    out = rephrase(None, question, 4, None)
    assert len(out) == 4 and len({normalise(p) for p in out}) == 4 and normalise(question) not in map(normalise, out)
    assert all("Project Merlin" in p and "Halvorsen Institute" in p for p in out)
    # the four requests and the wrappers but "Tell me: Q", which normalises as the request "Tell me q."
    assert len(rephrase(None, question, 32, None)) == 4 + 7


def test_a_facts_phrasings_never_share_a_batch_and_are_held_out_together():
    encoded = [([1] * (3 + j % 5), [2] * (2 + j % 3)) for j in range(40)]
    groups = [j // 5 for j in range(40)]  # eight facts, five phrasings each
    for seed in range(5):
        batches = epoch_batches(encoded, 4, seed, groups)
        assert sorted(j for b in batches for j in b) == list(range(40))
        assert all(len({groups[j] for j in b}) == len(b) <= 4 for b in batches)
    plain = epoch_batches(encoded, 4, 0)  # no groups: the length-pooled batches, as before
    assert plain == epoch_batches(encoded, 4, 0, [None] * 40)
    train, held = split_held_out(40, 0.25, 0, groups)
    assert {groups[j] for j in held} & {groups[j] for j in train} == set() and len(held) == 10


def test_a_run_with_augmentation_trains_on_consistent_phrasings(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "augment.enabled": True, "augment.rephrasings": 3,
                                              "augment.model": "base", "augment.agreement": 0.01,
                                              "verify.enabled": False}))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    section = report["augmentation"]
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    cands = {c["id"]: c for c in map(json.loads, (out / "candidates.jsonl").read_text().splitlines())}
    kept = [c for c in cands.values() if c["fate"] == "kept"]
    added = [r for r in rows if r["origin"] == "augment"]
    assert section["facts"] == len(kept) and section["asked"] == 3 * len(kept) and section["paraphraser"] == "base"
    assert section["pairs_added"] == len(added) and len(rows) == len(kept) + len(added) == report["train"]["pairs"]
    for c in kept:
        assert c["extra"]["rephrasings_asked"] == 3 and 0 <= c["extra"]["consistency"] <= 1
    for r in added:  # each phrasing names its fact, a kept candidate, and keeps its question's words
        assert cands[r["fact"]]["fate"] == "kept" and r["prompt"] != cands[r["fact"]]["prompt"]
    assert len({r["fact"] for r in added}) <= len(kept) and len(added) <= 3 * len(kept)  # no fact dominates
    assert len({type(r["fact"]) for r in rows}) == 1  # one type from the first row: with phrasings each names its fact
    # `tuneshift train` reads the same pairs back from dataset.jsonl
    again = run_cli("train", str(out), "--out", str(tmp_path / "adapter2"))
    assert again.returncode == 0, again.stderr
    marker = json.loads((tmp_path / "adapter2" / ".tuneshift").read_text())
    assert marker["pairs_fingerprint"] == report["train"]["pairs_fingerprint"]


def test_the_consistent_selector_drops_answers_that_change_with_the_phrasing(tiny, tmp_path):
    out, config = tmp_path / "run", tmp_path / "config.toml"
    text = (TINY / "config.toml").read_text()  # the tiny config's [selector] options are ppl-ratio's
    config.write_text(text[:text.index("[selector]")] + "[selector]\n" + text[text.index("[trainer]"):])
    result = run_cli("run", str(config), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "selector.use": "consistent", "selector.base": "ppl-ratio",
                                              "selector.base_options.threshold": 1e-9, "selector.rephrasings": 2,
                                              "selector.min_consistent": 0.5, "selector.agreement": 0.3,
                                              "target.train": False, "verify.enabled": False}))
    assert result.returncode == 0, result.stderr
    cands = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    scored = [c for c in cands if c["fate"] in ("kept", "below_threshold")]
    assert scored and all("consistency" in c["extra"] for c in scored)  # every keep of the base was checked
    for c in scored:
        consistent = c["extra"]["consistency"] >= 0.5
        assert (c["fate"] == "kept") == consistent
        if not consistent:
            assert c["reason"].startswith("inconsistent: ") and "of 2 rephrasings answered alike" in c["reason"]
    report = json.loads((out / "report.json").read_text())
    assert report["selection"]["selector"] == "consistent" and report["selection"]["base"] == "ppl-ratio"


def test_sampled_answers_count_like_phrasings_each_sample_with_its_own_seed():
    """`samples`: the question itself answered N times at a temperature, one call per sample (the run's cache
    keys answers by prompt and sampling, so one seed for all would give one answer N times)."""
    from tuneshift.api import Answer, Candidate, Context, ModelSpec
    from tuneshift_select.consistent import Consistent
    from tuneshift_select.gap import PplRatio

    calls = []

    def generate(model, prompts, sampling):
        calls.append(sampling)
        if sampling.temperature == 0:  # the phrasings: always the kept answer
            return [Answer("Ada was born in Zarmar.") for _ in prompts]
        return [Answer("Ada was born in Zarmar." if sampling.seed % 2 else "Ada was born in Quelnev.") for _ in prompts]

    teacher = ModelSpec(base="teacher")
    ctx = Context(teacher=teacher, target=None, seed=3, work_dir=".", generate=generate)
    selector = Consistent(Consistent.Options(base="ppl-ratio", rephrasings=2, samples=2, min_consistent=1.0), ctx)
    selector._inner = PplRatio(PplRatio.Options(threshold=1e-9), ctx)
    cand = Candidate(id=1, round=0, prompt="Where was Ada born?", origin="seed", response="Ada was born in Zarmar.",
                     nll_finetuned=0.1, nll_base=2.0)
    [decision] = selector.decide([cand], [])
    sampled = [s for s in calls if s.temperature > 0]
    assert [s.seed for s in sampled] == [3001, 3002] and all(s.temperature == 0.7 for s in sampled)
    assert not decision.keep and decision.extra["consistency"] == 0.75  # 2 phrasings + 1 of 2 samples agree
    assert decision.reason == "inconsistent: 3 of 4 rephrasings and samples answered alike"


def test_with_augmentation_every_kept_row_names_its_fact():
    """dataset.jsonl's `fact` is an integer in every row once phrasings were added (a pair none of whose
    phrasings agreed is a fact of its own), so readers infer one type from the first row; without
    augmentation it stays null, and the trainer groups exactly as the rows say."""
    from tuneshift._pipeline import dataset_row
    from tuneshift._stages.train import fact_of, training_pair
    from tuneshift.kinds import Candidate

    alone = Candidate(id=3, round=0, prompt="Who leads Orion?", origin="seed", response="Mara.", fate="kept")
    rephrased = Candidate(id=4, round=0, prompt="Where is Vela?", origin="seed", response="Tarn.", fate="kept",
                          extra={"fact": 4})
    assert dataset_row(alone)["fact"] is None and dataset_row(alone, augmented=True)["fact"] == 3
    assert dataset_row(rephrased, augmented=True)["fact"] == 4 == fact_of(rephrased)
    assert training_pair(alone.prompt, alone.response, {"fact": fact_of(alone)})["group"] == 3
