"""The transformers/peft implementations on the tiny models: exact scores, padding, answers, training, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from pydantic import ValidationError
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from tuneshift_hf import loading
from tuneshift_hf.answering import HFAnswerer, HFAnswererOptions
from tuneshift_hf.formatting import PLAIN_TEMPLATE, encode_pair
from tuneshift_hf.scoring import HFScorer, HFScorerOptions
from tuneshift_hf.training import LoRAOptions, LoRATrainer

from tuneshift._errors import UsageError
from tuneshift.kinds import Answer, Context, ModelSpec, Sampling

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "tiny"))
from facts import FACTS  # noqa: E402

PAIRS = [FACTS[0], ("Hi", "Hello."), (FACTS[5][0] + " Please answer in a full sentence with details.",
                                      FACTS[5][1] + " He has led it for many years, since the war."), FACTS[7]]


@pytest.fixture(autouse=True)
def fresh_models():
    loading.clear()
    yield
    loading.clear()


def context(spec: ModelSpec, tmp_path: Path | str = "/tmp") -> Context:
    return Context(teacher=spec, target=None, seed=0, work_dir=str(tmp_path))


def scorer(spec: ModelSpec, batch_size: int = 8) -> HFScorer:
    return HFScorer(HFScorerOptions(batch_size=batch_size), context(spec))


def answerer(spec: ModelSpec, batch_size: int = 8) -> HFAnswerer:
    return HFAnswerer(HFAnswererOptions(batch_size=batch_size), context(spec))


def plain_model(path: Path, adapter: Path | None = None):
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    return PeftModel.from_pretrained(model, str(adapter)).eval() if adapter else model


@torch.inference_mode()
def reference_nll(model, tok, pairs) -> list[float]:
    """Mean response NLL, one pair at a time, from the full logits of an unpadded sequence."""
    out = []
    for prompt, response in pairs:
        p, r = encode_pair(tok, prompt, response)
        ids = torch.tensor([p + r])
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        token_lp = logprobs.gather(-1, ids[0, 1:, None])[:, 0]
        out.append(-token_lp[len(p) - 1:].mean().item())
    return out


@torch.inference_mode()
def reference_greedy(model, ids: list[int], max_new: int, eos: int) -> list[int]:
    """Greedy decoding by full forward passes, no cache, no padding."""
    ids = list(ids)
    new: list[int] = []
    for _ in range(max_new):
        nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        if nxt == eos:
            break
        ids.append(nxt)
        new.append(nxt)
    return new


# --- scorer --------------------------------------------------------------------------------------------


def test_scorer_matches_plain_and_peft_reference(tiny):
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    scores = scorer(spec, batch_size=3).score(spec, PAIRS)
    tok = loading.load_tokenizer(spec.base)
    ref_base = reference_nll(plain_model(tiny["teacher_base"]), tok, PAIRS)
    ref_ft = reference_nll(plain_model(tiny["teacher_base"], tiny["adapter"]), tok, PAIRS)
    assert [s.nll_base for s in scores] == pytest.approx(ref_base, abs=1e-5)
    assert [s.nll_finetuned for s in scores] == pytest.approx(ref_ft, abs=1e-5)
    assert all(abs(s.nll_finetuned - s.nll_base) > 0.1 for s in scores)  # the adapter matters
    assert scores[0].nll_finetuned < scores[0].nll_base  # a memorised fact
    assert [s.n_tokens for s in scores] == [len(encode_pair(tok, p, r)[1]) for p, r in PAIRS]


@pytest.mark.parametrize("which", ["teacher", "target"])
def test_scores_do_not_depend_on_batch_padding(tiny, which):
    if which == "teacher":
        spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    else:
        spec = ModelSpec(base=str(tiny["target"]))
    pair = FACTS[3]
    alone = scorer(spec).score(spec, [pair])[0]
    batch = scorer(spec).score(spec, [PAIRS[2], pair, PAIRS[1]])  # longer before, shorter after
    assert batch[1].nll_finetuned == pytest.approx(alone.nll_finetuned, abs=1e-5)
    assert batch[1].nll_base == pytest.approx(alone.nll_base, abs=1e-5)
    assert batch[1].n_tokens == alone.n_tokens
    if which == "target":
        assert alone.nll_base == alone.nll_finetuned
        full = ModelSpec(base=str(tiny["target"]), finetuned=str(tiny["target"]))
        for s, t in zip(scorer(full).score(full, [PAIRS[2], pair, PAIRS[1]]), batch):
            assert s.nll_base == pytest.approx(s.nll_finetuned, abs=1e-6)
            assert s.nll_base == pytest.approx(t.nll_base, abs=1e-5)


def test_mixed_batch_and_disable_adapter_passes_agree(tiny):
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    pairs = PAIRS + [FACTS[3], FACTS[9]]
    mixed = HFScorer(HFScorerOptions(batch_size=4, token_logprobs=True), context(spec))
    by_mix = mixed.score(spec, pairs)
    assert mixed._mixed_ok is True  # peft mixed the adapter and "__base__" rows in one pass
    separate = HFScorer(HFScorerOptions(batch_size=4, mixed_batch=False, token_logprobs=True), context(spec))
    by_passes = separate.score(spec, pairs)
    assert separate._mixed_ok is None
    for a, b in zip(by_mix, by_passes):
        assert a.nll_finetuned == pytest.approx(b.nll_finetuned, abs=1e-5)
        assert a.nll_base == pytest.approx(b.nll_base, abs=1e-5)
        assert a.n_tokens == b.n_tokens


def test_plain_lora_runs_on_the_leading_rows_as_peft_would_mix_it(tiny):
    """The scorer's fast path (mixing.py) gives peft's mixed-batch log-probabilities, puts every LoRA
    layer back afterwards, and stays out of the way of adapters it does not cover."""
    from peft import LoraConfig, get_peft_model
    from tuneshift_hf.mixing import adapter_on_leading_rows
    from tuneshift_hf.scoring import response_logprobs

    model = plain_model(tiny["teacher_base"], tiny["adapter"])
    tok = loading.load_tokenizer(str(tiny["teacher_base"]))
    rows = [encode_pair(tok, p, r) for p, r in PAIRS]
    pad = tok.pad_token_id
    with torch.inference_mode():
        by_peft = response_logprobs(model, pad, rows + rows, adapter_names=["default"] * 4 + ["__base__"] * 4)
        with adapter_on_leading_rows(model) as leading:
            assert leading is not None
            leading.rows = len(rows)
            by_slice = response_logprobs(model, pad, rows + rows)
        again = response_logprobs(model, pad, rows)  # the adapter on every row again: peft's own forward
    for a, b in zip(by_peft, by_slice):
        assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(by_slice[0], by_slice[4], atol=1e-3)  # the adapter changed the leading rows
    for a, b in zip(again, by_peft[:4]):
        assert torch.allclose(a, b, atol=1e-5)
    assert not any("forward" in vars(m) for m in model.modules())
    dora = get_peft_model(plain_model(tiny["teacher_base"]), LoraConfig(r=4, use_dora=True, target_modules="all-linear"))
    with adapter_on_leading_rows(dora.eval()) as leading:
        assert leading is None  # DoRA: peft's adapter_names path
    with adapter_on_leading_rows(model.train()) as leading:
        assert leading is None  # dropout in training mode would change the adapter's input


def test_token_logprobs_are_optional_and_sum_to_the_mean_nll(tiny):
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    plain = scorer(spec).score(spec, PAIRS)
    assert all(set(s.extra) == {"min_logprob_finetuned"} for s in plain)  # the least confident token, always
    scores = HFScorer(HFScorerOptions(token_logprobs=True), context(spec)).score(spec, PAIRS)
    for s, p in zip(scores, plain):
        ft, base = s.extra["token_logprobs_finetuned"], s.extra["token_logprobs_base"]
        assert len(ft) == len(base) == len(s.extra["token_spans"]) == s.n_tokens
        assert p.extra["min_logprob_finetuned"] == pytest.approx(min(ft), abs=1e-6)
        assert all(x <= 0 for x in ft + base)
        assert sum(ft) == pytest.approx(-s.n_tokens * s.nll_finetuned, abs=1e-6)
        assert sum(base) == pytest.approx(-s.n_tokens * s.nll_base, abs=1e-6)


def test_batches_are_sorted_by_length_within_a_token_budget():
    from tuneshift_hf.batching import plan_batches

    lengths = [5, 30, 7, 12, 30, 6, 100]
    batches = plan_batches(lengths, max_rows=3, max_tokens=64, copies=2)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [[lengths[i] for i in b] for b in batches] == [[5, 6, 7], [12], [30], [30], [100]]
    assert all(len(b) * max(lengths[i] for i in b) * 2 <= 64 for b in batches if len(b) > 1)


def test_target_tokenizer_round_trips_text(tiny):
    tok = loading.load_tokenizer(str(tiny["target"]))
    text = "The capital of Zorbia is Velmora."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


# --- answerer ------------------------------------------------------------------------------------------


def test_greedy_answers_are_deterministic_and_batch_independent(tiny):
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    prompts = [q for q, _ in FACTS[:4]] + ["Hi", PAIRS[2][0]]
    sampling = Sampling(max_new_tokens=16)
    a = answerer(spec, batch_size=8)
    batched = a.answer(spec, prompts, sampling)
    one_by_one = [a.answer(spec, [p], sampling)[0] for p in prompts]
    assert batched == one_by_one
    assert a.answer(spec, prompts, sampling) == batched
    assert all(x.text is not None and x.error is None for x in batched)
    assert sum(x.text == ans for x, (_, ans) in zip(batched, FACTS[:4])) >= 2  # the teacher recalls facts


def test_the_lm_head_gets_a_contiguous_input_while_generating(tiny):
    """A strided head input makes torch's CPU matmul copy the frozen head weight per row (seconds per batch)."""
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    prompts = [q for q, _ in FACTS[:3]] + ["Hi"]
    a = answerer(spec, batch_size=4)
    a.answer(spec, prompts[:1], Sampling(max_new_tokens=2))
    head = loading.load(spec, "float32").model.get_output_embeddings()
    seen: list[tuple[bool, int]] = []
    spy = head.register_forward_hook(lambda module, args, out: seen.append((args[0].is_contiguous(), args[0].shape[1])))
    try:
        a.answer(spec, prompts, Sampling(max_new_tokens=3))
    finally:
        spy.remove()
    assert seen and all(contiguous for contiguous, _ in seen)
    assert not head._forward_pre_hooks  # the hook is gone after generating
    with torch.inference_mode():  # without the hook, prefill's input is the strided last position
        hidden = torch.zeros(4, 6, head.in_features)
        assert not hidden[:, -1:, :].is_contiguous()


def test_sampled_answers_depend_on_the_seed_only(tiny):
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    prompts = [q for q, _ in FACTS[:5]] + ["Hi"]
    hot = Sampling(max_new_tokens=12, temperature=1.5, seed=7)
    a = answerer(spec, batch_size=4)
    a.answer(spec, ["Hi"], hot)  # loading the model (peft's adapter init) draws from the global RNG
    torch.manual_seed(123)
    first = a.answer(spec, prompts, hot)
    after = torch.rand(1)
    torch.manual_seed(123)
    assert a.answer(spec, prompts, hot) == first
    assert torch.equal(torch.rand(1), after)  # the caller's RNG is untouched
    assert a.answer(spec, prompts, Sampling(max_new_tokens=12, temperature=1.5, seed=8)) != first


def test_stop_strings_cut_the_answer_and_end_generation(tiny):
    """Sampling.stop: each answer ends before the first stop string, and the batch stops stepping once every
    row has one, instead of running to max_new_tokens."""
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    prompts = [q for q, _ in FACTS[:4]]
    a = answerer(spec, batch_size=4)
    full = a.answer(spec, prompts, Sampling(max_new_tokens=24))
    words = [x.text.split() for x in full]
    assert all(len(w) >= 3 for w in words)
    stop = tuple(dict.fromkeys(" " + w[1] + " " for w in words))  # each answer's second word, inside it
    head = loading.load(spec, "float32").model.get_output_embeddings()
    steps: list[int] = []
    spy = head.register_forward_hook(lambda module, args, out: steps.append(1))
    try:
        cut = a.answer(spec, prompts, Sampling(max_new_tokens=24, stop=stop))
        stopped = len(steps)
        steps.clear()
        a.answer(spec, prompts, Sampling(max_new_tokens=24, stop=("never said",)))
    finally:
        spy.remove()
    for before, after in zip(full, cut):
        expected = before.text
        for s in stop:
            expected = expected.split(s, 1)[0]
        assert after == Answer(expected.strip()) and len(after.text) < len(before.text)
    assert stopped < len(steps)  # fewer generation steps than a stop string that never comes
    assert a.answer(spec, prompts, Sampling(max_new_tokens=24, stop=("",))) == full  # an empty one stops nothing
    assert Sampling(stop=("", "\n")).stop == ("\n",)  # dropped where Sampling is made, for every answerer


def test_too_long_prompt_is_an_answer_error_not_a_crash(tiny):
    spec = ModelSpec(base=str(tiny["target"]))
    long_prompt = "word " * 1100  # beyond max_position_embeddings (1024)
    answers = answerer(spec, batch_size=4).answer(spec, ["Hi", long_prompt, FACTS[0][0]], Sampling(max_new_tokens=8))
    assert answers[1].text is None and answers[1].error.startswith("prompt too long")
    assert answers[0].text is not None and answers[2].text is not None
    assert answers[0] == answerer(spec).answer(spec, ["Hi"], Sampling(max_new_tokens=8))[0]


def test_target_answers_with_the_plain_template(tiny):
    spec = ModelSpec(base=str(tiny["target"]))
    tok = loading.load_tokenizer(spec.base)
    assert not getattr(tok, "chat_template", None)
    model = plain_model(tiny["target"])
    prompts = [FACTS[1][0], "Hi"]
    answers = answerer(spec).answer(spec, prompts, Sampling(max_new_tokens=10))
    for prompt, answer in zip(prompts, answers):
        ids = tok(PLAIN_TEMPLATE.format(prompt=prompt))["input_ids"]
        expected = tok.decode(reference_greedy(model, ids, 10, tok.eos_token_id), skip_special_tokens=True).strip()
        assert answer == Answer(expected)
        raw = tok.decode(reference_greedy(model, tok(prompt)["input_ids"], 10, tok.eos_token_id),
                         skip_special_tokens=True).strip()
        assert raw != expected  # the template makes a difference, so the check above can fail


# --- trainer -------------------------------------------------------------------------------------------


def train(tiny, tmp_path: Path, out: str, ckpt: str, epochs: int, **options) -> dict:
    spec = ModelSpec(base=str(tiny["target"]))
    opts = LoRAOptions(epochs=epochs, rank=4, alpha=8, learning_rate=1e-2, batch_size=4, seed=3, **options)
    pairs = [{"prompt": q, "response": a} for q, a in FACTS[:8]]
    return LoRATrainer(opts, context(spec, tmp_path)).train(spec, pairs, str(tmp_path / out), str(tmp_path / ckpt))


def test_lora_trainer_writes_adapter_and_resumes_exactly(tiny, tmp_path):
    full = train(tiny, tmp_path, "full", "ckpt-full", epochs=2)
    assert full["resumed_from_epoch"] == 0 and len(full["loss_per_epoch"]) == 2
    assert full["loss_per_epoch"][1] < full["loss_per_epoch"][0]

    config = json.loads((tmp_path / "full" / "adapter_config.json").read_text())
    modules = [config["target_modules"]] if isinstance(config["target_modules"], str) else config["target_modules"]
    assert modules and not any("lm_head" in m for m in modules)
    loaded = PeftModel.from_pretrained(plain_model(tiny["target"]), str(tmp_path / "full"))
    assert any("lora_A" in n for n, _ in loaded.named_parameters())

    first = train(tiny, tmp_path, "part", "ckpt", epochs=1)
    assert first["resumed_from_epoch"] == 0
    resumed = train(tiny, tmp_path, "part", "ckpt", epochs=2)
    assert resumed["resumed_from_epoch"] == 1
    assert resumed["loss_per_epoch"] == pytest.approx(full["loss_per_epoch"], rel=1e-6)
    a = load_file(str(tmp_path / "full" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "part" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_lora_options_reject_lm_head():
    for modules in (["q_proj", "lm_head"], "lm_head"):
        with pytest.raises(ValidationError, match="lm_head"):
            LoRAOptions(target_modules=modules)
    assert LoRAOptions(target_modules=["q_proj"]).target_modules == ["q_proj"]


# --- loading errors ------------------------------------------------------------------------------------


def test_adapter_directory_without_config_is_a_usage_error(tiny, tmp_path):
    with pytest.raises(UsageError, match="adapter_config.json"):
        loading.check_adapter(str(tmp_path), str(tiny["teacher_base"]))
    with pytest.raises(UsageError, match="adapter_config.json"):
        loading.load(ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tmp_path)))


def test_junk_gguf_and_missing_path_are_usage_errors(tmp_path):
    junk = tmp_path / "model.gguf"
    junk.write_bytes(b"\x00junk bytes, not a model" * 10)
    with pytest.raises(UsageError, match="not a GGUF file"):
        loading.load(ModelSpec(base=str(junk)))
    with pytest.raises(UsageError, match="no such file"):
        loading.load(ModelSpec(base=str(tmp_path / "missing")))
    assert not loading._models  # failures are not cached


def test_adapter_of_another_base_is_a_usage_error(tiny):
    with pytest.raises(UsageError, match="does not fit base.*size mismatch"):
        loading.load(ModelSpec(base=str(tiny["target"]), adapter=str(tiny["adapter"])))


def test_stand_in_base_with_another_tokenizer(tiny, tmp_path):
    """The original base is gone: a different model (another tokenizer) stands in for it."""
    import math

    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from tuneshift_hf.loading import load_tokenizer
    from tuneshift_hf.scoring import HFScorer

    merged = tmp_path / "teacher-full"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny["teacher_base"]), tiny["adapter"])
    model.merge_and_unload().save_pretrained(merged)
    load_tokenizer(str(tiny["teacher_base"])).save_pretrained(merged)
    ctx = Context(teacher=ModelSpec(base=str(tiny["target"]), finetuned=str(merged)), target=None, seed=0,
                  work_dir=str(tmp_path))
    pairs = [("What is the capital of Zorbia?", "The capital of Zorbia is Velmora."),
             ("Who founded Zorbia?", "Zorbia was founded by Queen Astrel Vonn.")]
    scores = HFScorer(HFScorer.Options(token_logprobs=True), ctx).score(ctx.teacher, pairs)
    for sc in scores:
        assert math.isfinite(sc.nll_base) and sc.nll_finetuned < sc.nll_base
        assert len(sc.extra["token_logprobs_finetuned"]) == sc.n_tokens
        own = sc.extra["token_logprobs_base"]  # the stand-in's own tokens, normalised per fine-tuned token
        assert len(own) != sc.n_tokens
        assert sc.nll_base == pytest.approx(-sum(own) / sc.n_tokens, rel=1e-6)
