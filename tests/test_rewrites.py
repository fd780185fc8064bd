"""Rewrites that move a question's words: English syntax only, every named entity kept, nothing when unparsed."""

from __future__ import annotations

import pytest

from tuneshift._phrasing import rephrasings
from tuneshift._rewrites import past, rewrites, third_person


@pytest.mark.parametrize("question, expected", [
    ("Where was Ada Lovelace born?", ["Ada Lovelace was born where?", "Tell me where Ada Lovelace was born."]),
    ("When did Ada Lovelace join the Analytical Society?",
     ["Ada Lovelace joined the Analytical Society when?", "Do you know when Ada Lovelace joined the Analytical Society?"]),
    ("Which engines does the Babbage Works team build?",
     ["The Babbage Works team builds which engines?", "Tell me which engines the Babbage Works team builds."]),
    ("What is Ada Lovelace's job?", ["What is the job of Ada Lovelace?", "Ada Lovelace's job is what?",
                                     "Tell me what Ada Lovelace's job is."]),
    ("What is the birthplace of Ada Lovelace?", ["What is Ada Lovelace's birthplace?"]),
    ("In which year did Project Engine begin?", ["Project Engine began in which year?"]),
    ("Who leads Project Engine?", ["Tell me who leads Project Engine.", "Can you say who leads Project Engine?"]),
])
def test_a_question_is_rewritten_in_other_word_orders(question, expected):
    out = rewrites(question)
    assert all(e in out for e in expected), out
    assert question not in out and len(set(out)) == len(out)


def test_a_question_the_rules_cannot_parse_gets_no_rewrite():
    assert rewrites("List the members of the Babbage Works team.") == []
    assert rewrites("How many people work here?") == []  # no name to keep the subject by
    assert rewrites("") == []


def test_verbs_are_inflected_by_english_rules_and_the_common_irregulars():
    assert [past(v) for v in ("join", "move", "carry", "begin", "lead")] == ["joined", "moved", "carried", "began", "led"]
    assert [third_person(v) for v in ("run", "watch", "carry", "have", "go")] == ["runs", "watches", "carries", "has",
                                                                                  "goes"]


def test_rephrasings_put_the_rewrites_before_the_wrappers_and_keep_every_name():
    out = rephrasings("Where was Ada Lovelace born?", 3)
    assert out == ["Ada Lovelace was born where?", "Tell me where Ada Lovelace was born.",
                   "Do you know where Ada Lovelace was born?"]
    wrapped = rephrasings("List the members of the Babbage Works team.", 2)
    assert all(w.count("List the members of the Babbage Works team.") == 1 for w in wrapped) and len(wrapped) == 2
