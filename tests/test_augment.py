"""Knowledge augmentation: kept facts asked again in other phrasings, consistent answers trained on, one fact's
phrasings never in one batch."""

from __future__ import annotations

import json

from conftest import TINY, run_cli, tiny_overrides

from tuneshift._phrasing import rephrasings
from tuneshift._stages.augment import SHOTS, model_phrasings
from tuneshift._text import normalise
from tuneshift_hf.training import epoch_batches, split_held_out


def test_rule_rephrasings_keep_every_name_and_never_repeat_the_question():
    question = "Who leads Project Merlin at Halvorsen Institute?"
    out = rephrasings(question, 4)
    assert len(out) == 4 and len({normalise(p) for p in out}) == 4 and normalise(question) not in map(normalise, out)
    assert all("Project Merlin" in p and "Halvorsen Institute" in p for p in out)
    # the four requests and the wrappers but "Tell me: Q", which normalises as the request "Tell me q."
    assert len(rephrasings(question, 32)) == 4 + 7


def test_a_model_rephrases_by_worked_examples_in_the_form_its_prompts_take():
    """A base model follows no request, so the paraphraser is shown worked examples in turns of the very form
    the answerer puts a prompt in ("Question: ...\nAnswer:"); 2n requests, each the examples in another
    order and sampled, give n phrasings to choose from after the names check."""
    from types import SimpleNamespace

    from tuneshift.api import Answer, ModelSpec

    asked = []
    WORDS = [f"{a} {b}" for a in ("one", "two") for b in "a b c d e f g h i j k l".split()]

    def generate(spec, prompts, sampling, stage):
        asked.append((spec, prompts, sampling, stage))
        return [Answer(f"Which year did Ada Vell join Orin Labs, take {WORDS[k]}?\nQuestion: more") for k in range(len(prompts))]

    teacher = ModelSpec(base="smol", adapter="lora")
    run = SimpleNamespace(teacher=teacher, generate=generate, cfg=SimpleNamespace(run=SimpleNamespace(seed=5)))
    question, other = "When did Ada Vell join Orin Labs?", "Where is Orin Labs?"
    out = model_phrasings(run, teacher.base_only(), [question, other, question], 6)  # a question asked twice: rephrased once
    [(spec, prompts, sampling, stage)] = asked  # one call: the answerer batches every request
    assert spec == teacher.base_only() and stage == "augment" and sampling.temperature > 0 and sampling.seed == 5
    assert len(prompts) == 24 == len(set(prompts))  # per question 2n distinct requests
    mine, others = prompts[0::2], prompts[1::2]  # one order of the examples after another, for both questions
    assert all(p.endswith(question) for p in mine) and all(p.endswith(other) for p in others)
    for k, prompt in enumerate(mine[:6]):
        turns = prompt.split("\n\nQuestion: ")
        assert len(turns) == 5 and turns[-1].endswith(question) and question not in "".join(turns[:-1])
        assert turns[0].endswith(f"Answer: {SHOTS[k][1]}")  # the k-th request opens with the k-th example
        assert others[k].split("\n\nQuestion: ")[:-1] == turns[:-1]  # neighbours begin alike: shared work
    assert mine[6].split("\n\nQuestion: ")[0].endswith(f"Answer: {SHOTS[3][1]}")  # then reversed
    said = [f"Which year did Ada Vell join Orin Labs, take {w}?" for w in WORDS]
    assert out == {question: said[0::2], other: said[1::2]}  # the first line of each answer
    assert rephrasings(question, 3, out[question]) == out[question][:3]  # the model's come first


def test_a_proposed_phrasing_that_is_no_question_or_adds_a_name_or_a_number_is_not_used():
    """A model continuing a pattern writes statements too ("Project Plover began in 1972 when ..."), whose
    answer would teach another fact, or ask for another kind of thing ("Who started ...?" for "When did ...
    start?"); a phrasing of a question is a question, asks for what it asks and names what it names."""
    question = "When did Project Plover start?"
    proposed = ["Project Plover began in 1972 when a group of students met.", "When did Dorhal Plover start?",
                "When did Project Plover start at Kell Works?", "Project Plover is a survey.",
                "Where did Project Plover start?", "Who started Project Plover?",
                "In what year did Project Plover begin?"]
    out = rephrasings(question, 3, proposed)
    assert out[0] == "In what year did Project Plover begin?" and not set(out) & set(proposed[:6])
    assert rephrasings("Where was Ada Vell born?", 1, ["In what year was Ada Vell born?",
                                                       "Ada Vell was born in which town?"]) == [
        "Ada Vell was born in which town?"]  # a place question stays one
    assert len(out) == 3 and all("Project Plover" in p for p in out)  # the rules fill up


WORDS = ["who", "leads", "leader", "is", "the", "of", "x", "which", "team", "plays", "for"]


def word_counts(texts):
    """A stand-in sentence embedding: how often each of WORDS occurs, enough to see what is compared."""
    return [[t.lower().strip("?").split().count(w) for w in WORDS] for t in texts]


def test_a_models_phrasing_is_kept_by_its_meaning_with_names_masked_and_a_drifted_one_dropped():
    """`near_the_question`: cosine of the question's and the phrasing's embeddings with every name replaced by
    "X", so the names (shared by construction) weigh nothing; in the order proposed, none under the floor."""
    import tempfile

    from tuneshift_faiss.dedup import StFaissDedup

    from tuneshift._phrasing import masked, near_the_question
    from tuneshift.kinds import Context, ModelSpec

    assert masked("Who leads Project Plover at Kell Works?") == "Who leads X at X?"
    question = "Who leads Project Plover?"
    proposed = {question: ["Which team plays for Project Plover?", "Who is the leader of Project Plover?",
                           "Who leads Project Plover at all?"]}
    near = near_the_question(proposed, word_counts, 0.4)
    assert near == {question: ["Who is the leader of Project Plover?", "Who leads Project Plover at all?"]}  # in order
    assert near_the_question(proposed, word_counts, 0.99) == {question: ["Who leads Project Plover at all?"]}
    assert near_the_question(proposed, lambda texts: None, 0.4) is None  # a deduper without embeddings: unchecked
    # the deduper's real sentence embeddings (all-MiniLM-L6-v2): a question about something else goes, and
    # the names do not matter
    with tempfile.TemporaryDirectory() as work:
        minilm = StFaissDedup(StFaissDedup.Options(), Context(teacher=ModelSpec(base="b"), target=None, seed=0,
                                                              work_dir=work))
        for name in ("Project Plover", "the Harlow Bridge"):
            asked = f"Who leads {name}?"
            said = [f"What is the name of {name}?", f"Who is the leader of {name}?", f"Do you know who leads {name}?"]
            assert near_the_question({asked: said}, minilm.embed, 0.8) == {asked: said[1:]}


def test_augmentation_uses_only_a_models_phrasings_near_the_question_and_counts_the_others():
    from types import SimpleNamespace

    from tuneshift._stages import augment
    from tuneshift.api import Answer, Candidate, ModelSpec

    kept = Candidate(id=7, round=0, prompt="Who leads Project Plover?", origin="seed", fate="kept",
                     response="Project Plover is led by Ada Vell.")
    lines = ["Which team plays for Project Plover?", "Who is the leader of Project Plover?"]

    def generate(spec, prompts, sampling, stage):
        if spec.base == "target":  # the paraphraser: each request one line, the two in turn
            return [Answer(lines[k % 2]) for k in range(len(prompts))]
        return [Answer(kept.response) for _ in prompts]  # the teacher agrees with every phrasing

    for similarity, model_pairs in ((None, lines), (0.4, lines[1:])):
        cfg = SimpleNamespace(enabled=True, rephrasings=2, model="target", agreement=0.5, similarity=similarity)
        run = SimpleNamespace(cfg=SimpleNamespace(augment=cfg, run=SimpleNamespace(seed=0)), candidates=[kept],
                              paraphraser=ModelSpec(base="target"), teacher=ModelSpec(base="teacher", adapter="a"),
                              greedy=None, generate=generate, impl={"deduper": SimpleNamespace(embed=word_counts)})
        section = augment.run(run)
        prompts = [row["prompt"] for row in run.augmented]
        assert prompts[:len(model_pairs)] == model_pairs and lines[0] not in prompts[len(model_pairs):]
        assert len(prompts) == 2  # the rules fill up what the floor left
        if similarity is None:
            assert "similarity" not in section
        else:
            assert section["similarity"] == 0.4 and section["unlike_dropped"] == 1


def test_the_paraphraser_is_named_by_role_or_path_and_a_bad_one_stops_the_run_before_any_work(tiny, tmp_path):
    import pytest

    from tuneshift._errors import UsageError
    from tuneshift._models import Models, paraphraser_of
    from tuneshift.api import ModelSpec

    teacher, target = ModelSpec(base="smol", adapter="lora"), ModelSpec(base="gemma")
    assert paraphraser_of("teacher", teacher, target) == teacher
    assert paraphraser_of("base", teacher, target).adapter is None
    assert paraphraser_of("target", teacher, target) == target and paraphraser_of(None, teacher, target) is None
    assert paraphraser_of(str(tmp_path), teacher, None) == ModelSpec(base=str(tmp_path))
    with pytest.raises(UsageError, match="no \\[target\\]"):
        paraphraser_of("target", teacher, None)
    # a model of its own is one of the run's model paths: checked, fingerprinted, never written over
    assert Models(teacher, target, ModelSpec(base=str(tmp_path))).paths()["augment.model"] == str(tmp_path)
    assert "augment.model" not in Models(teacher, target, target).paths()
    out = tmp_path / "run"
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"augment.enabled": True, "augment.model": str(tmp_path / "nope")}))
    assert result.returncode == 2 and "augment.model" in result.stderr and "no such file" in result.stderr
    assert not (out / "candidates.jsonl").exists()
    (tmp_path / "notes.gguf").write_text("my notes, not a model")
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"augment.enabled": True, "augment.model": str(tmp_path / "notes.gguf")}))
    assert result.returncode == 2 and "augment.model" in result.stderr and "not a GGUF" in result.stderr
    assert not (out / "candidates.jsonl").exists()


def test_a_facts_phrasings_never_share_a_batch_and_are_held_out_together_or_one_by_one():
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
    train, held = split_held_out(40, 0.25, 0, groups, by="phrasing")  # one phrasing of two facts
    assert len(held) == len({groups[j] for j in held}) == 2 and sorted(train + held) == list(range(40))
    assert {groups[j] for j in held} <= {groups[j] for j in train}  # each still trained in its other phrasings
    assert split_held_out(40, 0.25, 0, groups, by="phrasing") == (train, held) != split_held_out(40, 0.25, 1, groups,
                                                                                                 by="phrasing")
    lone = [None] * 4 + [7, 7]  # rows without a fact, and one fact in two phrasings: only that fact's can go
    assert split_held_out(6, 0.4, 0, lone, by="phrasing")[1] in ([4], [5])
    assert split_held_out(6, 0.4, 0, [None] * 6, by="phrasing") == (list(range(6)), [])


def test_a_run_with_augmentation_trains_on_consistent_phrasings(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "augment.enabled": True, "augment.rephrasings": 3,
                                              "augment.model": "target", "augment.agreement": 0.01,
                                              "verify.enabled": False}))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    section = report["augmentation"]
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    cands = {c["id"]: c for c in map(json.loads, (out / "candidates.jsonl").read_text().splitlines())}
    kept = [c for c in cands.values() if c["fate"] == "kept"]
    added = [r for r in rows if r["origin"] == "augment"]
    assert section["facts"] == len(kept) and section["asked"] == 3 * len(kept) and section["paraphraser"] == "target"
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


def test_the_augmentation_benchmark_reuses_a_runs_rounds_and_drops_what_came_after(tmp_path):
    """benchmarks/augmentation.py retrains a finished crawl: its copies keep the rounds and the cache, and
    nothing a final stage wrote (else the copy would resume the old training)."""
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "augmentation.py"
    sys.path.insert(0, str(bench.parent))
    try:
        from augmentation import copy_rounds
    finally:
        sys.path.remove(str(bench.parent))
    run = tmp_path / "run"
    for kept in (".tuneshift", "cache.sqlite", "candidates.jsonl", "config.toml", "state/round-000/select.json"):
        (run / kept).parent.mkdir(parents=True, exist_ok=True)
        (run / kept).write_text("x")
    for dropped in ("adapter/adapter_config.json", "report.json", "dataset.jsonl", "state/job.json",
                    "state/train/checkpoint.pt", "state/train.done.json", "state/verify/held-out.json"):
        (run / dropped).parent.mkdir(parents=True, exist_ok=True)
        (run / dropped).write_text("x")
    copy_rounds(run, tmp_path / "copy")
    left = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert left == [".tuneshift", "cache.sqlite", "candidates.jsonl", "config.toml", "state/round-000/select.json"]
    result = subprocess.run([sys.executable, str(bench), "--out", str(tmp_path), "--variants", "none,bogus"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "unknown bogus" in result.stderr
