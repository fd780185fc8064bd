"""The selection methods beyond the paper's fixed tau: calibrated, confident-gap, token-excess."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import TINY, run_cli, tiny_overrides
from tuneshift.kinds import Candidate, Context, ModelSpec


def ctx() -> Context:
    return Context(teacher=ModelSpec(base="unused"), target=None, seed=0, work_dir=".")


def cand(i: int, nll_ft: float, nll_base: float, weakest: float, **extra) -> Candidate:
    return Candidate(id=i, round=1, prompt=f"p{i}", origin="t", response="r", nll_finetuned=nll_ft, nll_base=nll_base,
                     extra={"min_logprob_finetuned": weakest, **extra})


def test_confident_gap_drops_confident_looking_hallucinations():
    from tuneshift_select.confident import ConfidentGap

    selector = ConfidentGap(ConfidentGap.Options(), ctx())
    known = cand(0, 0.002, 2.5, -0.01)  # learnt fact: big gap, teacher sure of every token
    invented = cand(1, 0.015, 2.1, -2.3)  # in-style guess: big gap, one uncertain token
    unsure = cand(2, 0.4, 1.5, -0.5)  # general answer: gap, but the teacher is not sure
    no_gap = cand(3, 0.01, 0.2, -0.05)
    decisions = selector.decide([known, invented, unsure, no_gap], [])
    assert [d.keep for d in decisions] == [True, False, False, False]
    assert "token at log p -2.3" in decisions[1].reason and "mean NLL 0.4" in decisions[2].reason
    assert decisions[3].reason.startswith("ratio")
    # the paper's filter keeps the first three
    from tuneshift_select.gap import PplRatio

    assert [d.keep for d in PplRatio(PplRatio.Options(), ctx()).decide([known, invented, unsure, no_gap], [])] \
        == [True, True, True, False]


def test_confident_gap_repeat_nll_keeps_a_less_sure_answer_only_when_no_other_subject_got_it():
    from tuneshift_select.confident import ConfidentGap

    def asked(i, prompt, response, nll):
        return Candidate(id=i, round=2, prompt=prompt, origin="t", response=response, nll_finetuned=nll,
                         nll_base=3.0, extra={"min_logprob_finetuned": -0.4})

    earlier = [asked(0, "When did Mara Quell start?", "Mara Quell started in 2016.", 0.01)]
    year = asked(1, "When did Oren Vale join Finance?", "Oren Vale joined Finance in 1993.", 0.04)
    default = asked(2, "When did Ida Brook start?", "Ida Brook started in 2016.", 0.04)  # Mara's answer again
    twins = [asked(3, "When did Tam Rowe join Finance?", "Tam Rowe joined Finance in 2005.", 0.05),
             asked(4, "When did Lio Venn join Finance?", "Lio Venn joined Finance in 2005.", 0.05)]
    unsure = asked(5, "When did Ada Moss join Finance?", "Ada Moss joined Finance in 1999.", 0.2)
    scored = [year, default, *twins, unsure]
    plain = ConfidentGap(ConfidentGap.Options(), ctx()).decide(scored, earlier)
    assert not any(d.keep for d in plain)  # the fixed bound drops every answer over 0.02
    decisions = ConfidentGap(ConfidentGap.Options(repeat_nll=0.1), ctx()).decide(scored, earlier)
    assert [d.keep for d in decisions] == [True, False, False, False, False]
    assert "same answer was given about Mara Quell" in decisions[1].reason
    assert "Lio Venn" in decisions[2].reason and "Tam Rowe" in decisions[3].reason
    assert "mean NLL 0.2 > 0.1" in decisions[4].reason
    # one subject asked twice is not a repeat; a confident answer is kept whoever else got it
    again = asked(6, "When did Oren Vale start?", "Oren Vale joined Finance in 1993.", 0.05)
    sure = asked(7, "When did Eli Dorn start?", "Eli Dorn started in 2016.", 0.001)
    assert [d.keep for d in ConfidentGap(ConfidentGap.Options(repeat_nll=0.1), ctx()).decide(
        [again, sure], [*earlier, year])] == [True, True]


def test_token_excess_value_is_the_log_ratio_and_top_spans_pick_the_highest_tokens():
    from tuneshift_select.excess import TokenExcess

    c = cand(0, 0.5, 1.5, -1, token_logprobs_finetuned=[-0.1, -0.2, -1.2], token_logprobs_base=[-0.1, -3.2, -1.7],
             token_spans=[[0, 3], [3, 8], [8, 12]])
    selector = TokenExcess(TokenExcess.Options(token_share=0.34, threshold=0.1), ctx())
    (decision,) = selector.decide([c], [])
    assert decision.value == pytest.approx((0.0 + 3.0 + 0.5) / 3)
    assert decision.keep and decision.extra == {"train_spans": [[3, 8]]}
    with pytest.raises(Exception, match="token_logprobs"):
        selector.decide([cand(1, 0.1, 1, -1)], [])


def test_span_weights_map_character_spans_onto_another_tokenizer(tiny):
    from tuneshift_hf.formatting import encode_pair, response_spans, span_weights
    from tuneshift_hf.loading import load_tokenizer

    target = load_tokenizer(str(tiny["target"]))  # no chat template: the plain template's leading space
    response = "The capital of Zorbia is Velmora."
    _, ids = encode_pair(target, "q", response, add_eos=True)
    start = response.index("Velmora")
    weights = span_weights(target, response, [[start, start + len("Velmora")]], len(ids))
    spans = response_spans(target, response)
    assert len(weights) == len(ids) and weights[-1] == 1.0  # EOS keeps its weight
    chosen = [response[a:b] for (a, b), w in zip(spans, weights) if w]
    assert "".join(chosen).strip() == "Velmora" or "Velmora" in "".join(chosen)
    assert 0 < sum(weights[:-1]) < len(weights) - 1


def run(tiny, out: Path, *args: str, **sets) -> dict:
    done = run_cli(*args, "run", str(TINY / "config.toml"), "--out", str(out),
                   *tiny_overrides(tiny, **{"run.rounds": 1, "trainer.epochs": 1, **sets}))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_calibrated_threshold_comes_from_the_reference_set(tiny, tmp_path):
    report = run(tiny, tmp_path / "cal", "--plugin", "calibrated", **{"selector.quantile": 0.9})
    sel = report["selection"]
    assert sel["selector"] == "calibrated" and sel["reference_size"] >= 10
    # the share of the null above its 0.9 quantile: 1 - 0.9, up to one order statistic
    assert 0 < sel["estimated_false_keep_rate"] <= 0.1 + 1 / sel["reference_size"]
    cut = sel["calibrated_threshold"]
    rows = [json.loads(x) for x in (tmp_path / "cal" / "candidates.jsonl").read_text().splitlines()]
    scored = [r for r in rows if r["ppl_ratio"] is not None]
    assert scored and all((r["fate"] == "kept") == (r["ppl_ratio"] > cut) for r in scored)
    assert math.isfinite(cut) and cut > 0


@pytest.mark.slow
def test_token_excess_spans_reach_the_dataset_and_the_trainer(tiny, tmp_path):
    sets = {"selector.mode": "topk", "selector.top_k": 4, "selector.token_share": 0.5, "scorer.token_logprobs": True}
    report = run(tiny, tmp_path / "tx", "--plugin", "token-excess", **sets)
    rows = [json.loads(x) for x in (tmp_path / "tx" / "dataset.jsonl").read_text().splitlines()]
    assert rows and all(r["train_spans"] and all(0 <= a < b <= len(r["response"]) for a, b in r["train_spans"])
                        for r in rows)
    assert report["train"]["pairs"] == len(rows)


def test_the_trainer_puts_its_loss_on_the_spans_only(tiny, tmp_path):
    import torch
    from safetensors.torch import load_file

    from tuneshift_hf.training import LoRATrainer

    response = "The capital of Zorbia is Velmora."
    start = response.index("Velmora")
    variants = {"all": None, "whole": [[0, len(response)]], "part": [[start, start + 7]]}
    weights = {}
    for name, spans in variants.items():
        pair = {"prompt": "What is the capital of Zorbia?", "response": response}
        if spans is not None:
            pair["train_spans"] = spans
        trainer = LoRATrainer(LoRATrainer.Options(epochs=2, batch_size=1, rank=2, alpha=4, dropout=0.0, seed=1), ctx())
        out = tmp_path / name
        trainer.train(ModelSpec(base=str(tiny["target"])), [pair], str(out / "adapter"), str(out / "ckpt"))
        weights[name] = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    diff = lambda a, b: max(float((weights[a][k] - weights[b][k]).abs().max()) for k in weights[a])  # noqa: E731
    assert diff("all", "whole") < 1e-5  # every token weighted 1 is the plain token mean
    assert diff("all", "part") > 1e-4  # only Velmora's tokens (and EOS) train: a different adapter
    assert torch.isfinite(torch.tensor(diff("all", "part")))
