"""Train the target with TRL's SFTTrainer and a LoRA adapter, on exactly the tokens peft-lora trains on.

Why a second trainer: SFTTrainer brings what the plain loop does not (packing,
gradient checkpointing, experiment trackers through `report_to`, DDP, FSDP and
DeepSpeed through accelerate configs), while its result stays interchangeable
with peft-lora's. The rows are pre-tokenised with tuneshift_hf.shared's
`encode_pair`, so TRL applies no template of its own and evaluation, scoring
and serving see the prompt format the target learnt; they are cut to
`max_length` as peft-lora cuts them; the loss covers response tokens only
(labels -100 on the prompt, and outside a selector's `train_spans`); the
held-out slice is peft-lora's; the adapter folder has the same layout, with
the plain format recorded as a chat template. What differs: the data order
(transformers' sampler; no batch grouping of a fact's phrasings), and
`batch_size` counts the rows of one process.

Checkpoints go under CHECKPOINT_DIR/trl-sft beside a job.json that names the
job (a fingerprint of the options, the target and the pairs): a training
resumes from its last `checkpoint-*` only when job.json names the same job,
and another job's checkpoints are removed first.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tuneshift.api import ModelSpec, RunError, Trainer, UsageError, fingerprint, read_json, write_json

from .options import SftOptions

NOT_IN_JOB = {"report_to", "logging_dir"}
"""Options that change what is logged, not what is trained: a resumed training may change them."""


class TrlSft(Trainer):
    name = "trl-sft"
    description = "TRL SFTTrainer with LoRA, loss on response tokens, the prompt format of peft-lora, resumable"
    Options = SftOptions

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "precision": self.options.resolved()}  # what auto means on this machine

    def check(self) -> None:
        self.options.resolved()  # a bad $TUNESHIFT_PRECISION is refused now
        for name in self.options.report_to:
            modules = (name, "tensorboardX") if name == "tensorboard" else (name,)  # transformers takes either
            if name != "none" and not any(find_spec(m) for m in modules):
                raise UsageError(f"trainer.report_to = {name}: pip install {name}")

    def train(self, model: ModelSpec, pairs: list[dict[str, Any]], out_dir: str, checkpoint_dir: str) -> dict[str, Any]:
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import EarlyStoppingCallback
        from transformers.trainer_callback import PrinterCallback, ProgressCallback
        from trl import SFTTrainer
        from tuneshift_hf.shared import (load_causal_lm, load_tokenizer, plain_chat_template, split_held_out,
                                         uses_chat_template)

        o = self.options
        tok = load_tokenizer(model.base, model.trust_remote_code)
        rows = [labelled_row(tok, pair, o.max_length) for pair in pairs]
        train_rows, held_rows = split_held_out(len(rows), o.held_out, o.seed, [p.get("group") for p in pairs],
                                               o.held_out_by)
        job = fingerprint({k: v for k, v in self.identity().items() if k != "options"},
                          o.model_dump(mode="json", exclude=NOT_IN_JOB), model.base, pairs)
        work = Path(checkpoint_dir) / "trl-sft"
        config = self._config(str(work), bool(held_rows))  # first: it sets up the processes of a launch
        with config.main_process_first(local=False, desc="checkpoints"):  # the others then find the same job
            resumed = last_epoch(job_dir(work, job))
        lora = LoraConfig(r=o.rank, lora_alpha=o.alpha, lora_dropout=o.dropout, target_modules=o.target_modules,
                          bias="none", task_type="CAUSAL_LM")
        steps = StepMetrics(self)
        with quiet_datasets():
            trainer = SFTTrainer(model=load_causal_lm(model.base, model.trust_remote_code, o.precision, model),
                                 args=config, processing_class=tok, peft_config=lora,
                                 train_dataset=Dataset.from_list([rows[j] for j in train_rows]),
                                 eval_dataset=Dataset.from_list([rows[j] for j in held_rows]) if held_rows else None,
                                 callbacks=[steps, *([EarlyStoppingCallback(1)] if held_rows else [])])
        for printer in (PrinterCallback, ProgressCallback):  # tuneshift draws its own progress
            trainer.remove_callback(printer)
        started = time.perf_counter()
        with tensorboard_dir(o.logging_dir):
            trainer.train(resume_from_checkpoint=True if resumed else None)
        if not all(bool(p.isfinite().all()) for p in trainer.model.parameters() if p.requires_grad):
            raise RunError(f"training diverged: an adapter weight is not finite after training "
                           f"(trainer.learning_rate = {o.learning_rate:g}); lower the learning rate")
        if not uses_chat_template(tok):  # record the plain format it learnt, for apply_chat_template & vLLM
            tok.chat_template = plain_chat_template(tok)
        trainer.save_model(out_dir)  # the adapter and tokenizer; every process joins an FSDP or DeepSpeed gather
        if trainer.is_world_process_zero():
            (Path(out_dir) / "training_args.bin").unlink(missing_ok=True)  # pickled arguments: not the adapter's
        trainer.accelerator.wait_for_everyone()
        history = trainer.state.log_history
        held = [round(h["eval_loss"], 6) for h in history if "eval_loss" in h]
        chosen = {"held_out_pairs": len(held_rows), "held_out_loss_per_epoch": held,
                  "best_epoch": held.index(min(held)) + 1 if held else None,
                  "held_out_loss": min(held) if held else None, "epochs_trained": len(held)} if held_rows else {}
        return {"epochs": o.epochs, "resumed_from_epoch": resumed, "loss_per_epoch": epoch_losses(history), **chosen,
                "processes": trainer.accelerator.num_processes,
                "train_seconds": round(time.perf_counter() - started, 3)}

    def _config(self, output_dir: str, evaluate: bool) -> Any:
        """SFTConfig for the options: a checkpoint per epoch, a log line per optimiser step, the precision the
        model was loaded in, and (with a held-out slice) an evaluation per epoch choosing the adapter kept."""
        import dataclasses

        import torch
        from trl import SFTConfig

        o = self.options
        # transformers 5.24 renamed gradient checkpointing; the old name warns where the new one exists
        fields = {f.name for f in dataclasses.fields(SFTConfig)}
        checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
        schedule = "constant_with_warmup" if o.schedule == "constant" and o.warmup_ratio else o.schedule
        return SFTConfig(
            output_dir=output_dir, seed=o.seed, learning_rate=o.learning_rate, num_train_epochs=o.epochs,
            per_device_train_batch_size=o.batch_size, per_device_eval_batch_size=o.batch_size,
            gradient_accumulation_steps=o.grad_accumulation, lr_scheduler_type=schedule, warmup_steps=o.warmup_ratio,
            max_grad_norm=o.max_grad_norm or 0.0,  # 0: no clipping (the norm is still measured and logged)
            max_length=o.max_length, packing=o.packing, **{checkpointing: o.gradient_checkpointing},
            completion_only_loss=True, bf16=o.resolved() == "bfloat16", fp16=False, report_to=o.report_to,
            logging_strategy="steps", logging_steps=1, logging_nan_inf_filter=False,  # a NaN loss ends it
            save_strategy="epoch", save_total_limit=1,
            eval_strategy="epoch" if evaluate else "no", load_best_model_at_end=evaluate,
            metric_for_best_model="eval_loss", greater_is_better=False, ddp_find_unused_parameters=False,
            # without CUDA, use_cpu: several processes of a launch then train data-parallel over gloo
            use_cpu=not torch.cuda.is_available(), dataloader_pin_memory=torch.cuda.is_available(), disable_tqdm=True)


class StepMetrics:
    """Each optimiser step's numbers for the observers' `on_metrics` (loss, the learning rate that step used,
    gradient norm, tokens per second since the last step, the epoch), a progress tick per epoch, and the
    end of a training whose loss is no longer finite. A transformers TrainerCallback by duck typing."""

    def __init__(self, trainer: TrlSft) -> None:
        self._owner, self._tokens, self._since = trainer, 0.0, time.perf_counter()

    def __getattr__(self, event: str) -> Any:  # every other callback event: nothing to do
        if event.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(event)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._tokens, self._since = 0.0, time.perf_counter()  # SFTTrainer counts tokens from 0 in each train()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._owner.context.progress(1)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:  # an evaluation's or the final summary's log
            return
        if not math.isfinite(logs["loss"]):
            raise RunError(f"training diverged: the loss is {logs['loss']} at step {state.global_step} "
                           f"(trainer.learning_rate = {self._owner.options.learning_rate:g}); lower the learning rate")
        now, tokens = time.perf_counter(), float(logs.get("num_tokens", 0.0))
        values = {"loss": float(logs["loss"]), "learning_rate": float(logs.get("learning_rate", 0.0)),
                  "grad_norm": float(logs.get("grad_norm", float("nan"))),
                  "tokens_per_second": (tokens - self._tokens) / max(now - self._since, 1e-9),
                  "epoch": epoch_of(logs.get("epoch", state.epoch or 0.0))}
        self._tokens, self._since = tokens, now
        if state.is_world_process_zero:
            self._owner.context.metrics(state.global_step, {k: v for k, v in values.items() if math.isfinite(v)})


def labelled_row(tok: Any, pair: dict[str, Any], max_length: int) -> dict[str, list[int]]:
    """input_ids and labels of one pair: peft-lora's tokens and cut, the loss on (the train spans of) the response."""
    from tuneshift_hf.shared import encode_pair, span_weights

    p, r = encode_pair(tok, pair["prompt"], pair["response"], add_eos=True)
    if len(p) + len(r) > max_length:  # keep the prompt's end and the response's start
        r = r[: max_length // 2]
        p = p[-(max_length - len(r)):]
    spans = pair.get("train_spans")
    weights = [1.0] * len(r) if spans is None else span_weights(tok, pair["response"], spans, len(r))
    return {"input_ids": p + r, "labels": [-100] * len(p) + [t if w > 0 else -100 for t, w in zip(r, weights)]}


def job_dir(folder: Path, job: str) -> Path:
    """The checkpoint folder of this job: emptied when job.json names another (that training is not resumed)."""
    marker = folder / "job.json"
    if folder.exists() and not (marker.is_file() and (read_json(marker) or {}).get("job") == job):
        shutil.rmtree(folder)
    if not marker.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_json(marker, {"job": job})
    return folder


def last_epoch(folder: Path) -> int:
    """The epoch the newest checkpoint in `folder` ended (0: none to resume)."""
    states = [c / "trainer_state.json" for c in folder.glob("checkpoint-*") if (c / "trainer_state.json").is_file()]
    return max((round(read_json(s).get("epoch") or 0) for s in states), default=0)


def epoch_of(epoch: float) -> int:
    """The 1-based epoch a log line's fractional epoch (1.0 at the end of the first) falls in."""
    return max(1, math.ceil(round(float(epoch), 6)))


def epoch_losses(history: list[dict[str, Any]]) -> list[float]:
    """Mean training loss of each epoch, from the trainer's log history (a resumed one's included)."""
    by_epoch: dict[int, list[float]] = {}
    for entry in history:
        if "loss" in entry and "epoch" in entry:
            by_epoch.setdefault(epoch_of(entry["epoch"]), []).append(entry["loss"])
    return [round(sum(v) / len(v), 6) for _, v in sorted(by_epoch.items())]


@contextmanager
def tensorboard_dir(path: str | None) -> Iterator[None]:
    """transformers' tensorboard callback reads its directory from $TENSORBOARD_LOGGING_DIR: set it while training."""
    before = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if path:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(path).expanduser().resolve())
    try:
        yield
    finally:
        if path and before is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        elif path:
            os.environ["TENSORBOARD_LOGGING_DIR"] = before


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No progress bars from the datasets SFTTrainer maps while preparing the rows."""
    from datasets.utils import logging as ds_logging

    was_on = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            ds_logging.enable_progress_bar()
