"""Generators that need no seed to imitate: `magpie` (the teacher writes user turns from its chat template) and
the agent's model-driven `ask` operator; each on the tiny models and against `tuneshift serve` over loopback."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import TINY, one_error_line, run_cli, tiny_overrides
from serving import serving
from test_vllm import env_of, site  # noqa: F401  (the pip-installed tuneshift-vllm)
from tuneshift_agentic.agent import Agentic
from tuneshift_generate.magpie import VERBATIM, Magpie, template_of

from tuneshift.kinds import Answer, Candidate, Context, ExpansionState, ModelSpec


def kept(prompt: str, response: str, i: int) -> Candidate:
    return Candidate(id=i, round=0, prompt=prompt, origin="seed", response=response, fate="kept", score=1.0 - i / 10)


KEPT = [kept("Who leads Orion?", "Mara Quell leads Orion.", 0), kept("Where is Vela based?", "Vela is in Tarn.", 1)]


def recording_context(tiny, replies: str) -> tuple[Context, list]:
    calls: list = []

    def generate(model, prompts, sampling):
        calls.append((model, list(prompts), sampling))
        return [Answer(replies) for _ in prompts]

    teacher = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    return Context(teacher=teacher, target=None, seed=0, work_dir=".", generate=generate), calls


def candidates(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]


def test_magpie_renders_the_teachers_own_template_up_to_the_user_turn(tiny):
    render, end = template_of(ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"])))
    assert render([]) == "<|user|>" and end == "\n"  # the tiny template: <|role|>content\n per turn
    assert render(KEPT[:1]) == "<|user|>Who leads Orion?\n<|assistant|>Mara Quell leads Orion.\n<|user|>"


def test_magpie_sends_distinct_verbatim_prefixes_and_keeps_the_user_turn_only(tiny):
    context, calls = recording_context(tiny, "is the capital of Zorbia?\n<|assistant|>It is Velmora.")
    magpie = Magpie(Magpie.Options(primed=1, openers=["", "What"]), context)
    proposals = magpie.propose(ExpansionState(round=1, seeds=["Who leads Orion?"], candidates=KEPT), 4)
    [(model, prompts, sampling)] = calls
    assert model.chat_template == VERBATIM and model.adapter == str(tiny["adapter"])  # the teacher, asked as is
    assert len(set(prompts)) == len(prompts) == 4 and all(p.startswith("<|user|>") for p in prompts)
    assert all(p.endswith(("<|user|>", "<|user|>What")) for p in prompts) and sampling.temperature == 1.0
    assert {p.prompt for p in proposals} == {"is the capital of Zorbia?", "What is the capital of Zorbia?"}
    assert {p.operator for p in proposals} == {"magpie"} and {p.parent for p in proposals} <= {c.prompt for c in KEPT}


def test_magpie_also_opens_user_turns_the_way_the_seeds_begin(tiny):
    context, calls = recording_context(tiny, "my router is off.\n<|assistant|>Routed.")
    seeds = ["Hi, my Vorn Router will not turn on.", "Problem report: the Kell Camera is cracked.", "Hi, my Kell Camera hums."]
    Magpie(Magpie.Options(primed=0, openers=["", "What"], seed_openers=True), context).propose(
        ExpansionState(round=1, seeds=seeds, candidates=[]), 4)
    [(_, prompts, _)] = calls
    assert [p.removeprefix("<|user|>") for p in prompts] == ["", "Hi, my", "What", "Problem report:"]


def test_a_run_with_magpie_on_the_tiny_models(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_cli("--plugin", "magpie", "run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "target.train": False}))
    assert result.returncode == 0, result.stderr[-2000:]
    assert Counter(r["operator"] for r in candidates(out) if r["origin"] == "magpie")["magpie"] >= 4


def test_magpie_without_a_chat_template_says_what_to_use_instead(tiny, tmp_path):
    line = one_error_line(run_cli("--plugin", "magpie", "run", str(TINY / "config.toml"), "--out", str(tmp_path / "o"),
                                  *tiny_overrides(tiny, **{"expander.model": str(tiny["target"])})), alone=False)
    assert "has no chat template" in line and "self-generate or agentic" in line


def test_the_ask_operator_shows_kept_pairs_and_proposes_what_the_model_writes(tiny):
    context, calls = recording_context(tiny, '["Who founded Orion?", "When did Vela move to Tarn?"]')
    agent = Agentic(Agentic.Options(model="base", operators=["ask"], ask_shown=2, ask_per_request=2), context)
    proposals = agent.propose(ExpansionState(round=1, seeds=["Who leads Orion?"], candidates=KEPT), 2)
    [(model, [request], _)] = calls
    assert model == context.teacher.base_only()
    assert "Q: Who leads Orion?\nA: Mara Quell leads Orion." in request and "Q: Where is Vela based?" in request
    assert [(p.prompt, p.operator) for p in proposals] == [("Who founded Orion?", "ask"),
                                                          ("When did Vela move to Tarn?", "ask")]


def test_ask_needs_a_model_and_the_rule_based_agent_needs_none(tiny, tmp_path):
    line = one_error_line(run_cli("--plugin", "agentic", "run", str(TINY / "config.toml"), "--out", str(tmp_path / "o"),
                                  *tiny_overrides(tiny, **{"expander.operators": ["ask"]})), alone=False)
    assert "operator ask needs a model" in line
    assert "ask" not in Agentic.Options().chosen() and "ask" in Agentic.Options(model="base").chosen()


def test_a_run_where_ask_competes_in_the_agents_bandit(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_cli("--plugin", "agentic", "run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 2, "target.train": False, "expander.model": "base",
                                              "expander.ask_max_new_tokens": 48}))
    assert result.returncode == 0, result.stderr[-2000:]
    operators = Counter(r["operator"] for r in candidates(out) if r["origin"] == "agentic")
    assert operators["ask"] > 0 and len(operators) > 1  # beside the rule-based ones


@pytest.fixture(scope="module")
def server(tiny):
    with serving("--model", str(tiny["teacher_base"]), "--name", "base", "--adapter", f"ft={tiny['adapter']}") as s:
        yield s


def served(server) -> int:
    return httpx.get(f"{server['url']}/health").json()["requests"]


def test_ask_through_litellm_against_tuneshift_serve(server, tiny, tmp_path):
    before, out = served(server), tmp_path / "run"
    result = run_cli("--plugin", "agentic", "run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "target.train": False, "expander.model": "openai/ft",
                                              "expander.api_base": f"{server['url']}/v1", "expander.operators": ["ask"],
                                              "expander.ask_max_new_tokens": 48}), env={"OPENAI_API_KEY": "unused"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert served(server) > before  # the operator's requests reached the server
    assert any(r["operator"] == "ask" for r in candidates(out))


def test_magpie_through_vllm_answerer_against_tuneshift_serve(server, site, tiny, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.syspath_prepend(site["PYTHONPATH"])
    from tuneshift_vllm.answerer import VLLMAnswerer

    context, _ = recording_context(tiny, "")
    answerer = VLLMAnswerer(VLLMAnswerer.Options(), context)  # served by files, whatever the prompt format
    assert answerer.served_name(Magpie(Magpie.Options(), context)._model().__class__(
        **{**context.teacher.__dict__, "chat_template": VERBATIM})) == "ft"
    before, out = served(server), tmp_path / "run"
    result = run_cli("--plugin", "vllm-answerer", "--plugin", "magpie", "run", str(TINY / "config.toml"),
                     "--out", str(out), *tiny_overrides(tiny, **{"run.rounds": 1, "target.train": False,
                                                                 "verify.enabled": False}),
                     "--set", f'answerer.urls=["{server["url"]}/v1"]', env=env_of(site))
    assert result.returncode == 0, result.stderr[-2000:]
    assert served(server) > before and any(r["origin"] == "magpie" for r in candidates(out))
