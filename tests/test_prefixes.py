"""The hf answerer's two speed-ups of generation: prompts that begin alike compute their beginning once
(tuneshift_hf.prefixes), and sampling draws among the top-k tokens only (tuneshift_hf.sampling)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import tuneshift_hf.answering as answering
import tuneshift_hf.prefixes as prefixes
from test_hf import answerer, fresh_models  # noqa: F401  (the models of one test are not the next one's)
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
from tuneshift_hf.sampling import DEFAULT_TOP_K, short_list_sampler, top_k_of

from tuneshift.api import ModelSpec, Sampling

WORKED = ("Here are worked examples of the form we want. The capital of Kelland is Port Wyn. "
          "The river of Harlow is the Dun. The author of Winter Harbour is Ada Voss. The team of Leo "
          "Brandt is the Red Kites. The subject of Amara Osei is botany. Now the question: ")


def test_groups_are_rows_that_begin_alike_and_each_keeps_a_token_of_its_own():
    long = list(range(100))
    rows = [long + [7, 8], [1, 2, 3], long + [9], long[:70] + [5] * 40, [4] * 80, long]
    assert prefixes.prefix_groups(rows) == [(0, [1, 4]), (70, [0, 2, 3, 5])]
    assert prefixes.prefix_groups(rows[:3]) == [(0, [1]), (100, [0, 2])]  # the whole beginning, short of a token
    assert prefixes.prefix_groups(rows, enabled=False) == [(0, [0, 1, 2, 3, 4, 5])]
    assert prefixes.prefix_groups([[1, 2], [3]]) == [(0, [0, 1])]  # nothing shared: one group, in order


def test_a_sliding_window_the_rows_would_outgrow_or_a_recurrent_layer_turns_sharing_off():
    from transformers import LlamaConfig, MambaConfig

    rows, sampling = [[1] * 90, [1] * 100], Sampling(max_new_tokens=20)
    windowed = LlamaConfig(num_hidden_layers=2, sliding_window=110)
    assert not prefixes.shareable(SimpleNamespace(config=windowed), rows, sampling)
    assert prefixes.shareable(SimpleNamespace(config=windowed), rows[:1], sampling)  # 90 + 20 fit
    assert prefixes.shareable(SimpleNamespace(config=LlamaConfig(num_hidden_layers=2)), rows, sampling)
    # a state would take in the padding between the beginning and a row's own tokens
    assert not prefixes.shareable(SimpleNamespace(config=MambaConfig(num_hidden_layers=2)), rows, sampling)
    assert not prefixes.shareable(SimpleNamespace(config=SimpleNamespace()), rows, sampling)  # no cache to build


@pytest.mark.parametrize("which", ["teacher", "target"])
def test_a_shared_beginning_is_computed_once_and_the_answers_are_unchanged(tiny, monkeypatch, which):
    """The teacher (chat template, a peft adapter) and the target (plain template), greedy: each prompt answered
    alone, with no sharing, is what the call that shares the worked examples answers."""
    spec = (ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"])) if which == "teacher"
            else ModelSpec(base=str(tiny["target"])))
    questions = ["Who leads Project Plover?", "Where is Rimfield?", "Hi", "What does the Quarry Lab do all day?",
                 "When did Zarmar start?"]
    prompts = [WORKED + q for q in questions] + ["A prompt of its own."]
    greedy = Sampling(max_new_tokens=12)
    computed: list[int] = []
    real_prefill = answering.prefill
    monkeypatch.setattr(answering, "prefill", lambda loaded, tokens: computed.append(len(tokens))
                        or real_prefill(loaded, tokens))
    shared = answerer(spec, batch_size=2).answer(spec, prompts, greedy)
    assert len(computed) == 1 and computed[0] >= prefixes.MIN_SHARED  # once, for the five that share it
    monkeypatch.setattr(prefixes, "MIN_SHARED", 10**6)
    alone = [answerer(spec, batch_size=1).answer(spec, [p], greedy)[0] for p in prompts]
    assert len(computed) == 1  # nothing shared any more
    assert shared == alone
    assert all(a.text is not None and a.error is None for a in shared)
    assert len({a.text for a in shared}) > 1  # the rows' own tokens reach the answers


def test_the_short_list_draws_from_the_distribution_transformers_samples_from():
    torch.manual_seed(0)
    scores = torch.randn(1, 200) * 3
    scores[0, :6] = torch.tensor([9.0, 8.6, 8.0, 7.5, 7.4, 2.0])  # a known head: the nucleus lies in it
    expected = scores.clone()
    for warper in (TemperatureLogitsWarper(0.8), TopKLogitsWarper(5), TopPLogitsWarper(0.9)):
        expected = warper(None, expected)
    expected = expected.softmax(-1)[0]
    assert 2 <= int((expected > 0).sum()) < 5  # top-p cuts inside top-k, so both are exercised
    sampler = short_list_sampler(0.8, 0.9, 5)
    draws = 20_000
    counts = torch.zeros(200)
    for _ in range(draws // 500):
        out = sampler(None, scores.expand(500, -1).clone())
        assert bool(((out == 0).sum(-1) == 1).all()) and bool((out[out != 0] == float("-inf")).all())
        counts += (out == 0).sum(0)
    frequencies = counts / draws
    assert float((frequencies - expected).abs().max()) < 0.015
    assert not bool(frequencies[expected == 0].any())  # never a token transformers could not draw


def test_top_k_is_the_models_setting_else_transformers_default():
    assert top_k_of(SimpleNamespace(generation_config=SimpleNamespace(top_k=None))) == DEFAULT_TOP_K
    assert top_k_of(SimpleNamespace(generation_config=SimpleNamespace(top_k=64))) == 64
    assert top_k_of(SimpleNamespace(generation_config=SimpleNamespace(top_k=0))) is None  # the whole vocabulary
    from transformers import GenerationConfig

    assert GenerationConfig._get_default_generation_params()["top_k"] == DEFAULT_TOP_K  # still transformers' own
