"""vllm-scorer and vllm-answerer against `tuneshift serve` on loopback, checked against the in-process built-ins."""

from __future__ import annotations

import pytest
from conftest import served_requests
from tuneshift_vllm.answerer import VLLMAnswerer
from tuneshift_vllm.scorer import VLLMScorer

from tuneshift.api import Context, ModelSpec, RunError, Sampling

PAIRS = [("What is the capital of Zorbia?", "The capital of Zorbia is Velmora."),
         ("Who wrote the Book of Sand?", "Nobody knows."),
         ("Hello", "Hello! How can I help you today? Rivers flow to the sea.")]


def context(teacher: dict[str, str], work_dir: str) -> Context:
    spec = ModelSpec(base=teacher["base"], adapter=teacher["adapter"])
    return Context(teacher=spec, target=None, seed=0, work_dir=work_dir)


def in_process(teacher, work_dir):
    from tuneshift_hf.shared import HFScorer

    ctx = context(teacher, work_dir)
    return HFScorer(HFScorer.Options(token_logprobs=True), ctx).score(ctx.teacher, PAIRS)


@pytest.mark.parametrize("mode", ["prompt_logprobs", "echo"])
def test_scores_agree_with_the_in_process_scorer(teacher, server, work_dir, mode):
    ctx = context(teacher, work_dir)
    scorer = VLLMScorer(VLLMScorer.Options(urls=[server], mode=mode, pairs_per_request=2, token_logprobs=True), ctx)
    remote = scorer.score(ctx.teacher, PAIRS)
    for got, ref in zip(remote, in_process(teacher, work_dir)):
        assert got.n_tokens == ref.n_tokens
        assert abs(got.nll_finetuned - ref.nll_finetuned) < 1e-4 and abs(got.nll_base - ref.nll_base) < 1e-4
        worst = max(abs(a - b) for a, b in zip(got.extra["token_logprobs_finetuned"],
                                               ref.extra["token_logprobs_finetuned"]))
        assert worst < 1e-4
    assert any(abs(s.nll_finetuned - s.nll_base) > 1e-3 for s in remote)  # the adapter was applied


def test_several_servers_share_the_work(teacher, server, second_server, work_dir):
    ctx = context(teacher, work_dir)
    before = [served_requests(server), served_requests(second_server)]
    scorer = VLLMScorer(VLLMScorer.Options(urls=[server, second_server], pairs_per_request=1), ctx)
    both = scorer.score(ctx.teacher, PAIRS)
    after = [served_requests(server), served_requests(second_server)]
    assert all(a > b for a, b in zip(after, before))  # 6 requests spread over two servers
    single = VLLMScorer(VLLMScorer.Options(urls=[server]), ctx).score(ctx.teacher, PAIRS)
    assert [round(s.nll_finetuned, 5) for s in both] == [round(s.nll_finetuned, 5) for s in single]


def test_answers_match_the_in_process_answerer(teacher, server, work_dir):
    from tuneshift_hf.shared import HFAnswerer

    ctx = context(teacher, work_dir)
    prompts = [p for p, _ in PAIRS]
    sampling = Sampling(max_new_tokens=8)
    remote = VLLMAnswerer(VLLMAnswerer.Options(urls=[server]), ctx).answer(ctx.teacher, prompts, sampling)
    local = HFAnswerer(HFAnswerer.Options(batch_size=1), ctx).answer(ctx.teacher, prompts, sampling)
    assert [a.text for a in remote] == [a.text for a in local]
    assert all(a.text for a in remote)


def test_stop_strings_cut_remote_answers_as_in_process(teacher, server, work_dir):
    from tuneshift_hf.shared import HFAnswerer

    ctx = context(teacher, work_dir)
    prompts = [p for p, _ in PAIRS]
    full = HFAnswerer(HFAnswerer.Options(batch_size=1), ctx).answer(ctx.teacher, prompts, Sampling(max_new_tokens=8))
    longest = max((a.text for a in full), key=len)
    assert len(longest) >= 4
    stop = (longest[len(longest) // 2:len(longest) // 2 + 2],)  # met inside the longest answer at least
    sampling = Sampling(max_new_tokens=8, stop=stop)
    remote = VLLMAnswerer(VLLMAnswerer.Options(urls=[server]), ctx).answer(ctx.teacher, prompts, sampling)
    local = HFAnswerer(HFAnswerer.Options(batch_size=1), ctx).answer(ctx.teacher, prompts, sampling)
    assert [a.text for a in remote] == [a.text for a in local]
    assert [len(a.text) for a in local] != [len(a.text) for a in full]  # a stop string was met


def test_an_unserved_model_name_fails_with_the_servers_message(teacher, server, work_dir):
    ctx = context(teacher, work_dir)
    scorer = VLLMScorer(VLLMScorer.Options(urls=[server], finetuned_model="nope"), ctx)
    with pytest.raises(RunError, match=r"refused the request: HTTP 404 model 'nope' is not served here"):
        scorer.score(ctx.teacher, PAIRS)


def test_a_dead_server_fails_after_its_retries(teacher, work_dir):
    ctx = context(teacher, work_dir)
    scorer = VLLMScorer(VLLMScorer.Options(urls=["http://127.0.0.1:9/v1"], retries=1, timeout=5), ctx)
    with pytest.raises(RunError, match=r"failed after 2 tries"):
        scorer.score(ctx.teacher, PAIRS)


def test_transport_options_stay_out_of_the_cache_key(teacher, work_dir):
    ctx = context(teacher, work_dir)
    a = VLLMScorer(VLLMScorer.Options(urls=["http://a/v1"], concurrency=1), ctx).identity()
    b = VLLMScorer(VLLMScorer.Options(urls=["http://b/v1", "http://c/v1"], concurrency=8), ctx).identity()
    assert a == b
    assert a != VLLMScorer(VLLMScorer.Options(finetuned_model="other"), ctx).identity()
