"""The peft-lora trainer's recipe options: warmup and decay, gradient clipping, and the epoch chosen by a
held-out slice of the pairs. Their defaults are the plain loop (the suite's byte-identical runs hold it)."""

from __future__ import annotations

import math

import pytest
import torch

from tuneshift.api import Context, ModelSpec
from tuneshift_hf.training import LoRATrainer, held_out_loss, split_held_out

FACTS = [(f"What is the code of locker {n}?", f"The code of locker {n} is {n * 37 % 1000:03d}.") for n in range(12)]


def trainer(tmp_path, **options):
    target = ModelSpec(base="unused")
    return LoRATrainer(LoRATrainer.Options(rank=2, alpha=4, batch_size=4, dropout=0.0, **options),
                       Context(teacher=target, target=target, seed=0, work_dir=str(tmp_path)))


def pairs():
    return [{"prompt": p, "response": r, "weight": 1.0} for p, r in FACTS]


def test_the_held_out_split_is_seeded_disjoint_and_never_empty():
    train, held = split_held_out(12, 0.25, seed=3)
    assert len(held) == 3 and sorted(train + held) == list(range(12)) and not set(train) & set(held)
    assert split_held_out(12, 0.25, seed=3) == (train, held) and split_held_out(12, 0.25, seed=4) != (train, held)
    assert split_held_out(12, 0.0, seed=3) == (list(range(12)), [])
    assert split_held_out(2, 0.01, seed=0)[1] != [] and split_held_out(1, 0.4, seed=0) == ([0], [])


def test_warmup_then_cosine_decay_through_transformers(tmp_path):
    import torch

    t = trainer(tmp_path, learning_rate=1e-3, warmup_ratio=0.25, schedule="cosine", epochs=2, grad_accumulation=1)
    rows = [([1, 2], [3])] * 16  # 4 batches of 4 an epoch
    assert trainer(tmp_path)._scheduler(None, rows, [None] * 16) is None  # the defaults: no scheduler at all
    param = torch.nn.Parameter(torch.zeros(1))
    optimiser = torch.optim.AdamW([param], lr=1e-3)
    scheduler = t._scheduler(optimiser, rows, [None] * 16)  # 4 batches an epoch, 2 epochs: 8 steps, 2 of warmup
    rates = []
    for _ in range(8):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    assert rates[0] == 0 and rates[1] == pytest.approx(5e-4) and rates[2] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates[2:], rates[3:])) and rates[-1] < 1e-4


def test_the_held_out_slice_chooses_the_epoch_and_its_adapter_is_kept(tiny, tmp_path):
    """A rate that overfits twelve facts: the held-out loss turns, training stops there, and the adapter
    written is the best epoch's (its held-out loss is the lowest recorded); a rerun trains nothing."""
    from tuneshift_hf.formatting import encode_pair
    from tuneshift_hf.loading import load

    target = ModelSpec(base=str(tiny["target"]))
    t = trainer(tmp_path, learning_rate=3e-2, epochs=8, held_out=0.25)
    metrics = t.train(target, pairs(), str(tmp_path / "adapter"), str(tmp_path / "ckpt"))
    held = metrics["held_out_loss_per_epoch"]
    assert metrics["held_out_pairs"] == 3 and len(held) == metrics["epochs_trained"] == len(metrics["loss_per_epoch"])
    assert metrics["best_epoch"] == held.index(min(held)) + 1
    if metrics["epochs_trained"] < 8:  # stopped: the last epoch did not improve on the best
        assert held[-1] >= min(held[:-1])
    loaded = load(ModelSpec(base=str(tiny["target"]), adapter=str(tmp_path / "adapter")), "float32")
    _, rows = split_held_out(len(FACTS), 0.25, 0)
    encoded = [encode_pair(loaded.tokenizer, *FACTS[j], add_eos=True) for j in rows]
    assert held_out_loss(loaded.model, loaded.tokenizer.pad_token_id, encoded, 4) == pytest.approx(min(held), abs=1e-4)
    again = t.train(target, pairs(), str(tmp_path / "adapter2"), str(tmp_path / "ckpt"))  # resumes: all done
    assert again["best_epoch"] == metrics["best_epoch"] and again["held_out_loss_per_epoch"] == held


def test_gradient_clipping_bounds_each_update(tiny, tmp_path):
    """Clipped to 1e-12, the gradients fall below AdamW's epsilon, so the adapter barely moves (Adam would
    undo any milder clipping's scale): proof that the norm reaching the optimiser is the clipped one."""
    from safetensors.torch import load_file

    target = ModelSpec(base=str(tiny["target"]))
    norms = {}
    for name, clip in (("free", None), ("clipped", 1e-12)):
        out = tmp_path / name
        trainer(tmp_path, learning_rate=1e-2, epochs=1, max_grad_norm=clip).train(target, pairs(), str(out),
                                                                                str(tmp_path / f"ckpt-{name}"))
        weights = load_file(str(out / "adapter_model.safetensors"))
        norms[name] = math.sqrt(sum(float((w.float() ** 2).sum()) for k, w in weights.items() if "lora_B" in k))
    assert norms["clipped"] < 1e-3 * norms["free"]


def test_short_rows_train_with_eager_attention_on_cpu(tiny):
    """sdpa's CPU kernels are slow for short rows; eager computes the same attention there."""
    from transformers import AutoModelForCausalLM

    from tuneshift_hf.training import EAGER_ATTENTION_MAX_TOKENS, short_rows_attention

    long_model = AutoModelForCausalLM.from_pretrained(str(tiny["target"]), attn_implementation="sdpa")
    short_rows_attention(long_model, [([1] * EAGER_ATTENTION_MAX_TOKENS, [2])])
    assert long_model.config._attn_implementation == "sdpa"
    model = AutoModelForCausalLM.from_pretrained(str(tiny["target"]), attn_implementation="sdpa")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    before = model(input_ids=ids).logits
    short_rows_attention(model, [([1] * 10, [2] * 5)])
    assert model.config._attn_implementation == "eager"
    assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-5)


def test_neftune_noise_is_seeded_and_changes_what_is_learnt(tiny, tmp_path):
    """NEFTune's embedding noise: the same seed gives the same adapter, and it is not the noiseless one."""
    from safetensors.torch import load_file

    target = ModelSpec(base=str(tiny["target"]))
    adapters = {}
    for name, alpha in (("noisy", 5.0), ("noisy-again", 5.0), ("plain", None)):
        out = tmp_path / name
        trainer(tmp_path, learning_rate=1e-2, epochs=1, neftune_alpha=alpha).train(target, pairs(), str(out),
                                                                                  str(tmp_path / f"ckpt-{name}"))
        adapters[name] = load_file(str(out / "adapter_model.safetensors"))
    assert all(torch.equal(adapters["noisy"][k], adapters["noisy-again"][k]) for k in adapters["noisy"])
    assert any(not torch.equal(adapters["noisy"][k], adapters["plain"][k]) for k in adapters["noisy"])


def test_gradient_checkpointing_trains_the_same_adapter_and_shares_its_cache_key(tiny, tmp_path, monkeypatch):
    """Recomputed activations (less memory): the same adapter, bitwise, LoRA dropout included, and the same
    identity, so a run's cache and a checkpoint's job do not depend on it."""
    import transformers.modeling_utils
    from safetensors.torch import load_file

    recomputed_layers = []
    original = transformers.modeling_utils.checkpoint

    def counted(*args, **kwargs):
        recomputed_layers.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counted)  # what the layers are wrapped in
    target = ModelSpec(base=str(tiny["target"]))
    adapters, identities, calls = {}, [], []
    for checkpointing in (False, True):
        t = LoRATrainer(LoRATrainer.Options(rank=2, alpha=4, batch_size=4, dropout=0.2, learning_rate=1e-2,
                                            epochs=2, gradient_checkpointing=checkpointing),
                        Context(teacher=target, target=target, seed=0, work_dir=str(tmp_path)))
        out = tmp_path / f"checkpointing-{checkpointing}"
        t.train(target, pairs(), str(out), str(tmp_path / f"ckpt-{checkpointing}"))
        adapters[checkpointing] = load_file(str(out / "adapter_model.safetensors"))
        identities.append(t.identity())
        calls.append(len(recomputed_layers))
    assert calls[0] == 0 and calls[1] > 0  # checkpointing really ran, and only when asked
    plain, recomputed = adapters[False], adapters[True]
    assert plain.keys() == recomputed.keys() and all(torch.equal(plain[k], recomputed[k]) for k in plain)
    assert identities[0] == identities[1]
    untrained = LoRATrainer(LoRATrainer.Options(rank=2), Context(teacher=target, target=target, seed=0,
                                                                  work_dir=str(tmp_path)))
    assert untrained.identity() != identities[0]  # other options still count


def test_held_out_by_phrasing_holds_out_one_phrasing_of_a_fact_the_rest_trains_on(tiny, tmp_path):
    """Two phrasings of each of twelve facts: by fact a quarter of the facts go, both phrasings (6 rows);
    by phrasing one phrasing of a quarter of them (3 rows), whose other phrasing is trained on."""
    grouped = [{"prompt": q, "response": a, "group": j} for j, (p, a) in enumerate(FACTS)
               for q in (p, p.replace("What is", "Tell me"))]
    target = ModelSpec(base=str(tiny["target"]))
    held = {}
    for by in ("fact", "phrasing"):
        metrics = trainer(tmp_path, epochs=1, held_out=0.25, held_out_by=by).train(
            target, grouped, str(tmp_path / f"adapter-{by}"), str(tmp_path / f"ckpt-{by}"))
        held[by] = metrics["held_out_pairs"]
    assert held == {"fact": 6, "phrasing": 3}
    train, rows = split_held_out(len(grouped), 0.25, 0, [p["group"] for p in grouped], by="phrasing")
    assert {grouped[j]["group"] for j in rows} <= {grouped[j]["group"] for j in train}
