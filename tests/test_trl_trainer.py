"""The trl-sft trainer against peft-lora: the same pairs, held-out slice and prompt tokens; comparable losses; the
same adapter layout; step metrics; resuming; its refusals; and a whole run through the CLI with --plugin."""

from __future__ import annotations

import json
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from conftest import TINY, run_cli, tiny_overrides

from tuneshift.api import ModelSpec, State, UsageError

sys.path.insert(0, str(TINY))
from facts import FACTS  # noqa: E402

PAIRS = [{"prompt": q, "response": a, "weight": 1.0} for q, a in FACTS]
OPTIONS = {"rank": 4, "alpha": 8, "epochs": 3, "batch_size": 4, "learning_rate": 3e-3, "max_length": 48,
           "held_out": 0.25, "precision": "float32"}
TRAINERS = ("peft-lora", "trl-sft")


def make(name: str, target: str, root: Path, options: dict, progress=None):
    """A trainer built as the CLI builds it, with a context that records its step metrics."""
    from tuneshift._models import Models, build_context
    from tuneshift._registry import Registry

    steps: list[tuple[int, dict[str, float]]] = []
    spec = ModelSpec(base=target)
    context = build_context(State(Registry(), []), Models(spec, spec), 0, root,
                            metrics=lambda step, values: steps.append((step, values)), progress=progress)
    trainer = context.make("trainer", name, **options)
    trainer.check()
    return trainer, steps


def response_nll(target: str, adapter: str | None, pairs: list[dict]) -> float:
    """Mean NLL per response token (EOS included) of the pairs, computed here from the model's logits."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from tuneshift_hf.shared import encode_pair, load_tokenizer

    tok = load_tokenizer(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
    model = (PeftModel.from_pretrained(model, adapter) if adapter else model).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for pair in pairs:
            p, r = encode_pair(tok, pair["prompt"], pair["response"], add_eos=True)
            logits = model(input_ids=torch.tensor([p + r])).logits[0, len(p) - 1:-1].float()
            total -= logits.log_softmax(-1).gather(1, torch.tensor(r)[:, None]).sum().item()
            count += len(r)
    return total / count


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> dict[str, dict]:
    """Each trainer trained once on the same pairs with the same options."""
    root = tmp_path_factory.mktemp("trl")
    out = {}
    for name in TRAINERS:
        ticks: list[int] = []
        trainer, steps = make(name, str(tiny["target"]), root, OPTIONS, progress=ticks.append)
        adapter, checkpoints = root / name / "adapter", root / name / "state"
        adapter.mkdir(parents=True)
        metrics = trainer.train(trainer.context.target, PAIRS, str(adapter), str(checkpoints))
        out[name] = {"metrics": metrics, "steps": steps, "ticks": ticks, "adapter": adapter,
                     "checkpoints": checkpoints}
    return out


def held_out_pairs() -> list[dict]:
    from tuneshift_hf.shared import split_held_out

    _, held = split_held_out(len(PAIRS), OPTIONS["held_out"], 0)
    return [PAIRS[j] for j in held]


def test_both_adapters_load_and_lower_the_loss_comparably(tiny, trained):
    target = str(tiny["target"])
    held = held_out_pairs()
    before_held, before_train = response_nll(target, None, held), response_nll(target, None, PAIRS)
    losses = {}
    for name in TRAINERS:
        adapter = str(trained[name]["adapter"])
        config = json.loads((trained[name]["adapter"] / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["bias"] == "none" and config["r"] == 4
        assert (trained[name]["adapter"] / "adapter_model.safetensors").is_file()
        losses[name] = (response_nll(target, adapter, held), response_nll(target, adapter, PAIRS))
        assert losses[name][0] < before_held and losses[name][1] < before_train, (name, losses, before_held)
        m = trained[name]["metrics"]
        assert m["held_out_pairs"] == len(held) == 3
        assert m["best_epoch"] == m["held_out_loss_per_epoch"].index(min(m["held_out_loss_per_epoch"])) + 1
        # the trainer's own held-out loss of the epoch it kept is the NLL measured here
        assert min(m["held_out_loss_per_epoch"]) == pytest.approx(losses[name][0], rel=0.02)
    peft, trl = trained["peft-lora"]["metrics"], trained["trl-sft"]["metrics"]
    print(f"\nheld-out NLL before {before_held:.4f}, after: peft-lora {losses['peft-lora'][0]:.4f}, "
          f"trl-sft {losses['trl-sft'][0]:.4f}; training loss per epoch: peft-lora {peft['loss_per_epoch']}, "
          f"trl-sft {trl['loss_per_epoch']}")
    assert peft["loss_per_epoch"][0] == pytest.approx(trl["loss_per_epoch"][0], rel=0.05)  # the same start
    assert 0.5 < trl["loss_per_epoch"][-1] / peft["loss_per_epoch"][-1] < 2
    assert abs(losses["trl-sft"][0] - losses["peft-lora"][0]) < 0.5 * (before_held - min(v[0] for v in losses.values()))


def test_step_metrics_and_epoch_progress_arrive(trained):
    for name in TRAINERS:
        run = trained[name]
        epochs = run["metrics"]["epochs_trained"]
        per_epoch = -(-9 // OPTIONS["batch_size"])  # 9 training pairs (3 held out)
        assert [s for s, _ in run["steps"]] == list(range(1, epochs * per_epoch + 1)), name
        for _, values in run["steps"]:
            assert values["loss"] > 0 and values["learning_rate"] == pytest.approx(3e-3)
            assert values["grad_norm"] > 0 and values["tokens_per_second"] > 0 and 1 <= values["epoch"] <= epochs
        assert run["ticks"] == [1] * epochs


def test_the_saved_template_renders_the_prompt_ids_encode_pair_trains_on(tiny, trained):
    from transformers import AutoTokenizer
    from tuneshift_hf.shared import encode_pair, load_tokenizer

    base = load_tokenizer(str(tiny["target"]))
    assert not base.chat_template  # the tiny target has none: both record the plain format they trained in
    for name in TRAINERS:
        saved = AutoTokenizer.from_pretrained(trained[name]["adapter"])
        for q, _ in FACTS[:4]:
            ids = saved.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True)
            ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            assert ids == encode_pair(base, q, "x")[0], name
    same = [json.loads((trained[n]["adapter"] / "tokenizer_config.json").read_text()).get("chat_template")
            for n in TRAINERS] + [(trained[n]["adapter"] / "chat_template.jinja").read_text() for n in TRAINERS]
    assert len({s for s in same if s}) == 1


def test_an_interrupted_training_resumes_to_the_same_adapter_and_another_jobs_is_set_aside(tiny, trained, tmp_path):
    from safetensors.torch import load_file

    class Stop(Exception):
        pass

    ticks: list[int] = []

    def stop_in_second_epoch(advance: int) -> None:  # the tick comes before the epoch's checkpoint is saved
        ticks.append(advance)
        if len(ticks) == 2:
            raise Stop

    target = str(tiny["target"])
    trainer, _ = make("trl-sft", target, tmp_path, OPTIONS, progress=stop_in_second_epoch)
    with pytest.raises(Stop):
        trainer.train(trainer.context.target, PAIRS, str(tmp_path / "a"), str(tmp_path / "state"))
    assert [p.name for p in (tmp_path / "state" / "trl-sft").glob("checkpoint-*")] == ["checkpoint-3"]
    trainer, _ = make("trl-sft", target, tmp_path, OPTIONS)
    metrics = trainer.train(trainer.context.target, PAIRS, str(tmp_path / "a"), str(tmp_path / "state"))
    assert metrics["resumed_from_epoch"] == 1
    assert metrics["loss_per_epoch"] == trained["trl-sft"]["metrics"]["loss_per_epoch"]
    whole = load_file(trained["trl-sft"]["adapter"] / "adapter_model.safetensors")
    resumed = load_file(tmp_path / "a" / "adapter_model.safetensors")
    assert max((whole[k] - resumed[k]).abs().max().item() for k in whole) < 1e-6
    other = {**OPTIONS, "rank": 2, "epochs": 1, "held_out": 0.0}
    trainer, _ = make("trl-sft", target, tmp_path, other)
    assert trainer.train(trainer.context.target, PAIRS, str(tmp_path / "b"), str(tmp_path / "state"))[
        "resumed_from_epoch"] == 0
    assert [p.name for p in (tmp_path / "state" / "trl-sft").glob("checkpoint-*")] == ["checkpoint-3"]  # its own


def test_labels_cover_the_response_or_its_train_spans_only(tiny):
    from tuneshift_hf.shared import encode_pair, load_tokenizer
    from tuneshift_trl.sft import labelled_row

    tok = load_tokenizer(str(tiny["target"]))
    q, a = FACTS[0]
    p, r = encode_pair(tok, q, a, add_eos=True)
    row = labelled_row(tok, {"prompt": q, "response": a}, 256)
    assert row["input_ids"] == p + r and row["labels"] == [-100] * len(p) + r
    spanned = labelled_row(tok, {"prompt": q, "response": a, "train_spans": [[a.index("Velmora"), len(a)]]}, 256)
    trained_ids = [t for t in spanned["labels"] if t != -100]
    assert 0 < len(trained_ids) < len(r) and trained_ids[-1] == tok.eos_token_id  # EOS is always learnt
    cut = labelled_row(tok, {"prompt": q, "response": a}, 8)  # peft-lora's cut: the prompt's end, the answer's start
    assert len(cut["input_ids"]) == 8 and cut["input_ids"][-4:] == r[:4]


def test_bad_options_are_refused_in_one_line(tiny, tmp_path):
    from pydantic import ValidationError

    if not (find_spec("tensorboard") or find_spec("tensorboardX")):
        with pytest.raises(UsageError, match=r"^trainer.report_to = tensorboard: pip install tensorboard$"):
            make("trl-sft", str(tiny["target"]), tmp_path, {"report_to": ["tensorboard"]})
    for bad in ({"report_to": ["tensorbored"]}, {"report_to": ["none", "wandb"]}, {"report_to": []},
                {"target_modules": ["q_proj", "lm_head"]}, {"held_out": 0.5}, {"schedule": "step"}):
        with pytest.raises(ValidationError):
            make("trl-sft", str(tiny["target"]), tmp_path, bad)


def test_a_run_through_the_cli_trains_with_trl_sft(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_cli("--plugin", "trl-sft", "run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "verify.enabled": False}))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "state" / "train" / "trl-sft" / "job.json").is_file()  # trained by trl-sft, not peft-lora
    report = json.loads((out / "report.json").read_text())
    assert report["train"]["loss_per_epoch"] and report["train"]["epochs"] == 2
