"""The agentic expander: it crawls entities out of the teacher's answers, which self-generation does not."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import TINY, run_cli, tiny_overrides
from tuneshift_agentic.agent import Agentic
from tuneshift_agentic.entities import find_entities, frames_of

from tuneshift.kinds import Candidate, Context, ExpansionState, ModelSpec

sys.path.insert(0, str(TINY))
from facts import FACTS, SEEDS  # noqa: E402

SEED_ENTITIES = {e for s in SEEDS for e in find_entities(s)}
DOMAIN_ENTITIES = {e for _, a in FACTS for e in find_entities(a)} - SEED_ENTITIES


def reached(out) -> set[str]:
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    return {e for r in rows for e in DOMAIN_ENTITIES if e in r["prompt"]}


def test_agentic_reaches_entities_that_self_generate_does_not(tiny, tmp_path):
    found = {}
    for expander in ("agentic", "self-generate"):
        out = tmp_path / expander
        result = run_cli("--plugin", expander, "run", str(TINY / "config.toml"), "--out", str(out),
                         *tiny_overrides(tiny, **{"run.rounds": 2}), "--set", "target.train=false")
        assert result.returncode == 0, result.stderr[-2000:]
        found[expander] = reached(out)
    assert len(found["agentic"]) >= 2, found
    assert len(found["agentic"]) > len(found["self-generate"]), found
    assert {"Queen Astrel Vonn", "Ossa"} & found["agentic"]  # named only in the teacher's answers to seeds


def test_entities_and_frames():
    text = "Zorbia was founded by Queen Astrel Vonn. The Tower of Reeds is old."
    assert find_entities(text) == ["Queen Astrel Vonn", "Tower of Reeds"]  # a lone first word may be any word
    assert find_entities(text, known={"Zorbia"}) == ["Zorbia", "Queen Astrel Vonn", "Tower of Reeds"]
    assert find_entities("Alice Brown and Bob Chen work there.") == ["Alice Brown", "Bob Chen"]
    assert frames_of("What is the capital of Zorbia?", set()) == [("What is the capital of {X}?", "Zorbia")]
    assert frames_of("What is Quelfel Eshba's job?", set()) == [("What is {X}'s job?", "Quelfel Eshba")]


def kept(i, prompt, response, score=5.0, **kw):
    return Candidate(id=i, round=0, prompt=prompt, origin=kw.pop("origin", "seed"), response=response,
                     score=score, fate="kept", **kw)


def agent(**options):
    ctx = Context(teacher=ModelSpec(base="b", adapter="a"), target=None, seed=0, work_dir=".")
    return Agentic(Agentic.Options(**options), ctx)


def test_follow_fills_seed_frames_with_entities_from_answers():
    state = ExpansionState(round=1, seeds=["Who leads Finance?"],
                           candidates=[kept(0, "Who leads Finance?", "Finance is led by Mara Quell.")])
    proposals = agent(operators=["follow"]).propose(state, 3)
    assert proposals[0].prompt == "Who leads Mara Quell?" or "Mara Quell" in proposals[0].prompt
    assert all(p.operator == "follow" and p.parent == "Who leads Finance?" for p in proposals)
    assert all(p.extra["entity"] == "Mara Quell" and "{X}" in p.extra["frame"] for p in proposals)


def test_answers_to_one_frame_written_differently_are_not_one_kind():
    from tuneshift_agentic.operators import Knowledge

    seeds = ["Where does Mara Quell work?", "Who heads the Finance department?"]
    cands = [kept(0, "Where does Mara Quell work?", "Mara Quell works in the Finance department."),
             kept(1, "Where does Oren Vale work?", "Oren Vale works in the Audit department.", origin="agentic"),
             kept(2, "Where does Ida Brook work?", "Ida Brook works in Tromsor.", origin="agentic"),
             kept(3, "Who heads the Finance department?", "The Finance department is headed by Mara Quell.")]
    k = Knowledge.from_candidates(seeds, cands)
    assert k.kinds.same("Finance", "Audit")  # the same wording around the name: one kind
    assert not k.kinds.same("Finance", "Tromsor")  # a town answering the same question is another kind
    frame = "Who heads the {X} department?"
    assert k.fits(frame, "Audit") and not k.fits(frame, "Tromsor")


def test_bandit_moves_budget_to_the_operator_that_keeps():
    cands = [kept(0, "Who leads Finance?", "Finance is led by Mara Quell. She works with Oren Vale, Ida Brook and "
                                           "Tam Rowe.")]
    for i in range(1, 21):  # past rounds: 'format' proposals were all dropped, 'follow' ones all kept (new answers)
        op = "format" if i % 2 else "follow"
        cands.append(Candidate(id=i, round=1, prompt=f"p{i}", origin="agentic", operator=op,
                               fate="below_threshold" if op == "format" else "kept", response=f"x{i}", score=1.0))
    state = ExpansionState(round=2, seeds=["Who leads Finance?"], candidates=cands)
    ops = [p.operator for p in agent(operators=["follow", "format"]).propose(state, 8)]
    assert ops.count("follow") > ops.count("format")


def test_rewording_a_kept_question_is_not_a_success():
    from tuneshift_agentic.operators import novel_answers

    cands = [kept(0, "Who leads Finance?", "Mara Quell leads it."), kept(1, "Please answer: Who leads Finance?",
                                                                        "Mara  quell leads it."),
             kept(2, "Who leads Sales?", "Oren Vale leads it."),
             Candidate(id=3, round=1, prompt="q", origin="agentic", fate="below_threshold", response="New.")]
    assert novel_answers(cands) == [True, False, True, False]


def test_stops_when_nothing_is_new():
    state = ExpansionState(round=1, seeds=["hello there"], candidates=[])
    assert agent().propose(state, 5) == []  # nothing kept, no entities: nothing to do


def test_unknown_operator_is_rejected():
    with pytest.raises(ValueError):
        Agentic.Options(operators=["teleport"])


def test_probe_asks_the_generic_question_that_worked_for_the_entity_kind():
    """'Where does X work?' gave a new answer for one person: the other people of that list get it first."""
    cands = [kept(0, "Who works in Finance?", "Finance has Mara Quell, Oren Vale and Ida Brook."),
             Candidate(id=1, round=1, prompt="Where does Mara Quell work?", origin="agentic", operator="probe",
                       fate="kept", response="Mara Quell works in Finance.", score=2.0,
                       extra={"frame": "Where does {X} work?", "entity": "Mara Quell"}),
             Candidate(id=2, round=1, prompt="Who leads Mara Quell?", origin="agentic", operator="probe",
                       fate="below_threshold", response="Nobody.", score=0.1,
                       extra={"frame": "Who leads {X}?", "entity": "Mara Quell"})]
    state = ExpansionState(round=2, seeds=["Who works in Finance?"], candidates=cands)
    firsts = [p.prompt for p in agent(operators=["probe"]).propose(state, 100)]
    for person in ("Oren Vale", "Ida Brook"):  # what worked for the kind, then the untried, then what failed
        assert firsts.index(f"Where does {person} work?") < firsts.index(f"Who is {person}?")
        assert firsts.index(f"Who is {person}?") < firsts.index(f"Who leads {person}?")
    assert "Where does Mara Quell work?" not in firsts  # never asked twice


def test_max_per_answer_caps_pairs_with_one_answer():
    from tuneshift._stages.select import cap_repeats

    before = [kept(0, "Who is Mara?", "Mara is a botanist."), kept(1, "What is Mara?", "Mara is a botanist")]
    fresh = [kept(2 + i, f"q{i}", "MARA is a botanist!", score=float(i)) for i in range(3)]
    fresh.append(kept(9, "Where was Mara born?", "Mara was born in Ossa."))
    cap_repeats(before, fresh, 3)
    assert [c.fate for c in fresh] == ["repeated_answer", "repeated_answer", "kept", "kept"]  # best score wins
    assert fresh[0].reason == "answer already kept 3 times"


def test_swap_recombines_the_subjects_of_seeds_written_alike():
    from tuneshift_agentic.operators import OPERATORS, Knowledge

    seeds = ["Hi, my Vorn Router will not turn on. Who can help?", "Hi, my Kell Camera makes a buzzing noise. Who can help?",
             "Problem report: the Kell Camera lost its settings.", "Problem report: the Ostra Doorbell is cracked."]
    cands = [kept(i, s, "Routed to the Halz Team, priority P2.") for i, s in enumerate(seeds)]
    k = Knowledge.from_candidates(seeds, cands)
    assert set(k.subjects) == {"Vorn Router", "Kell Camera", "Ostra Doorbell"}  # joined through the Kell seeds
    ideas = {p for p, _, _ in OPERATORS["swap"](k, __import__("random").Random(0))}
    assert "Hi, my Ostra Doorbell will not turn on. Who can help?" in ideas  # an input no seed wrote
    assert "Problem report: the Vorn Router lost its settings." in ideas
    assert not any("Halz Team" in p for p in ideas)  # the answer's team is not a product
    questions = ["Where was Gordre Korgor born?", "When did Zarwyn Ostbakor join Rosdremar Dynamics?",
                 "Who leads Project Kestrel?", "What is Quelfel Eshba's job?"]
    assert Knowledge.from_candidates(questions, []).subjects == {}  # questions about different things stay apart
