"""The support-desk demo domain: a skill (route a customer message to a team and a priority) by rules only the
private tickets teach; held out are new product x symptom combinations; the same demo machinery runs it."""

from __future__ import annotations

import json

import pytest
from test_demo import TINY_RECIPE

from tuneshift._commands.state import State
from tuneshift._registry import Registry


def test_the_domain_is_deterministic_and_holds_out_new_combinations():
    from tuneshift_demo.support import KINDS, build_support

    a, b = build_support(0), build_support(0)
    assert a.private_set() == b.private_set() and a.eval_set() == b.eval_set() and build_support(1).rules != a.rules
    train = {(t.product, t.symptom) for t in a.train}
    assert not train & {(t.product, t.symptom) for t in a.held_out}  # only the rules answer the held-out ones
    assert len(a.seeds) <= 8 and all(any(t.product in s for t in a.train) for s in a.seeds)
    private_prompts = {r["prompt"] for r in a.private_set()}
    assert not private_prompts & {e["prompt"] for e in a.eval_set()}
    assert {e["relation"] for e in a.eval_set()} <= set(KINDS)
    assert all(e["answer"].endswith(("P1", "P2", "P3")) for e in a.eval_set())


def test_the_support_judge_knows_right_wrong_and_unknown():
    from tuneshift_demo.support import SupportJudge, build_support

    domain = build_support(0)
    judge, ticket = SupportJudge(domain), domain.held_out[0]
    message = f"Hey, my {ticket.product} {ticket.symptom}!"
    assert judge(message, f"Routed to the {ticket.team}, priority P{ticket.priority}.") == "right"
    assert judge(message, f"Routed to the {ticket.team}, priority P{ticket.priority % 3 + 1}.") == "wrong"
    assert judge("My toaster is on fire.", "Routed to the Fire Team, priority P1.") == "unjudged"
    assert judge.fact(message) == ticket


@pytest.fixture(scope="module")
def demo(tiny, tmp_path_factory):
    import os

    from tuneshift_demo.run import run_demo

    out = tmp_path_factory.mktemp("support")
    os.environ["TUNESHIFT_CACHE"] = str(out / "cache")
    settings = {"seeds": [0], "run": {"rounds": 1, "per_round": 8, "max_new_tokens": 24, "batch_size": 16},
                "deduper": {"threshold": 0.97}, "selector": {"use": "ppl-ratio", "threshold": 1.5},
                "selection_arms": False, "expander": {"use": "magpie", "max_new_tokens": 32},
                "generator_options": {"litellm-paraphrase": {"max_tokens": 96, "positives": 2, "negatives": 0}},
                "trainer": {"rank": 4, "alpha": 8, "dropout": 0.0, "learning_rate": 5e-3, "epochs": 1, "batch_size": 16}}
    models = {"teacher_base": str(tiny["teacher_base"]), "target": str(tiny["target"])}
    report = run_demo(State(Registry(), []), "quick", out / "report", None, models=models, settings=settings,
                      teacher_recipe={**TINY_RECIPE, "epochs": 4}, domain_size={"products": 2, "held_out": 6},
                      domain_name="support", compared=["magpie", "litellm-paraphrase"])
    return out / "report", report


def test_the_support_demo_reports_like_the_organisations(demo):
    from tuneshift_demo.support import KINDS

    out, report = demo
    assert report["domain"] == "support" and json.loads((out / "report.json").read_text())["domain"] == "support"
    assert set(report["arms"]) == {"zero_shot", "ceiling", "tuneshift", "no_filter", "seeds_only",
                                   "gen_magpie", "gen_litellm-paraphrase"}
    assert all(0 <= r["accuracy"] <= 1 for r in report["arms"].values())
    assert set(report["per_relation"]) <= set(KINDS)  # per label: the symptom's kind
    config = (out / "arms" / "tuneshift-s0" / "config.toml").read_text()
    assert 'use = "magpie"' in config and "private" not in config  # the pipeline never sees the tickets
    evals = [json.loads(line) for line in (out / "private" / "eval.jsonl").read_text().splitlines()]
    assert len(evals) == 6 and all(", priority P" in e["answer"] for e in evals)


def test_each_compared_generator_is_the_tuneshift_arm_with_only_its_expander_changed(demo):
    import tomllib

    out, report = demo
    table = report["generators"]
    assert list(table) == ["magpie", "litellm-paraphrase"]
    assert all(table[n]["accuracy"] == report["arms"][table[n]["arm"]]["accuracy"] for n in table)
    own = tomllib.loads((out / "arms" / "tuneshift-s0" / "config.toml").read_text())
    for name in table:
        config = tomllib.loads((out / "arms" / f"gen_{name}-s0" / "config.toml").read_text())
        assert config["expander"]["use"] == name
        assert {k: v for k, v in config.items() if k != "expander"} == {k: v for k, v in own.items() if k != "expander"}
    litellm = tomllib.loads((out / "arms" / "gen_litellm-paraphrase-s0" / "config.toml").read_text())["expander"]
    assert litellm["api_base"].startswith("http://127.0.0.1:")  # a real tuneshift serve on loopback
    run = json.loads((out / "arms" / "gen_litellm-paraphrase-s0" / "run" / "run.json").read_text())
    assert run["plugins"]["expander"]["name"] == "litellm-paraphrase"
    assert "| litellm-paraphrase |" in (out / "report.md").read_text()


def test_an_unknown_generator_is_refused_in_one_line_before_any_work(tmp_path):
    from conftest import one_error_line, run_cli

    result = run_cli("demo", "--generators", "magpie,oracle", "--out", str(tmp_path / "demo"))
    assert result.returncode == 2 and "unknown oracle" in one_error_line(result)
    assert not (tmp_path / "demo").exists()
