"""Train the target with LoRA on (prompt, response) pairs, loss on response tokens only.

A plain loop: shuffled batches, gradient accumulation, a checkpoint after each
epoch (adapter, optimiser, RNG), so an interrupted training resumes where it
stopped. The result is a standard PEFT adapter directory. Options add a
learning-rate warmup and decay (transformers' schedulers), gradient clipping,
and the choice of the epoch by a held-out slice of the pairs themselves (never
private data): training stops when that slice's loss stops falling, and the
adapter of its best epoch is kept. Their defaults leave the plain loop as it was.

Any model `loading` reads works as the target: a directory, or a .gguf file
(through its safetensors cache; e.g. Gemma 3 270M, whose tokenizer has no chat
template, so pairs use the plain template, and whose tied embeddings stay out
of the LoRA targets). On CUDA the base weights are bfloat16 and peft keeps the
LoRA weights in float32 (`autocast_adapter_dtype`), so the optimiser updates
float32 parameters; the loss is computed in float32.

Several processes (`accelerate launch -m tuneshift train RUN_DIR`, torchrun)
train data-parallel (see parallel.py): each takes its rows of every global
batch, gradients are all-reduced, and the result matches one process with the
same batch size and seed (up to float rounding, and LoRA dropout, whose masks
differ). Only the main process writes checkpoints and the adapter; the others
wait at a barrier. A checkpoint holds whole tensors, so a training resumes
with any number of processes.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from tuneshift.api import ModelSpec, RunError, Trainer, fingerprint

from .formatting import encode_pair, plain_chat_template, span_weights, uses_chat_template
from .parallel import DataParallel
from .precision import PrecisionOptions, identity_with_precision
from .scoring import response_logprobs

EAGER_ATTENTION_MAX_TOKENS = 192
"""On CPU, rows up to this long train faster with eager attention than with sdpa's kernels (a short row's
flash-attention backward is a fifth of a step; at 70 tokens eager is 3x faster, at 256 they are even)."""


class LoRAOptions(PrecisionOptions):
    rank: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    learning_rate: float = Field(5e-4, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accumulation: int = Field(1, ge=1)
    max_length: int = Field(256, ge=8)
    seed: int = Field(0, ge=0, lt=2**32, description="epoch k seeds torch with seed * 1000 + k: 32 bits fit")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of the optimiser steps warming the rate up")
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="the rate after the warmup")
    max_grad_norm: float | None = Field(None, gt=0, description="clip the gradient norm to this (none: no clipping)")
    held_out: float = Field(0.0, ge=0, lt=0.5, description="share of the pairs held out to choose the epoch: "
                                                            "stop when their loss stops falling (epochs: the most)")
    held_out_by: Literal["fact", "phrasing"] = Field("fact", description="hold out whole facts (all their "
                                                     "phrasings), or one phrasing of facts trained on otherwise")
    neftune_alpha: float | None = Field(None, gt=0, description="uniform noise on the input embeddings while "
                                                                "training, scaled alpha / sqrt(length x width) "
                                                                "(NEFTune; none: no noise)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: the "
                                                            "same adapter in less memory, 20-40% slower on CPU")

    @field_validator("target_modules")
    @classmethod
    def _no_lm_head(cls, value: list[str] | str) -> list[str] | str:
        names = [value] if isinstance(value, str) else value
        if "lm_head" in names:
            raise ValueError("lm_head must not be a LoRA target (vLLM drops such adapters from logprobs)")
        return value


def grouped_batches(order: list[int], size: int, groups: list[Any], rng: random.Random) -> list[list[int]]:
    """Batches of `size` from rows in `order`, no two of one group (None: a group of its own) in a batch."""
    batches: list[list[int]] = []
    members: list[set[Any]] = []
    first_open = 0
    for j in order:
        g = groups[j] if groups[j] is not None else ("row", j)
        k = next((k for k in range(first_open, len(batches)) if len(batches[k]) < size and g not in members[k]), None)
        if k is None:
            batches.append([])
            members.append(set())
            k = len(batches) - 1
        batches[k].append(j)
        members[k].add(g)
        while first_open < len(batches) and len(batches[first_open]) == size:
            first_open += 1
    rng.shuffle(batches)
    return batches


def split_held_out(n: int, share: float, seed: int, groups: list[Any] | None = None,
                   by: Literal["fact", "phrasing"] = "fact") -> tuple[list[int], list[int]]:
    """Training and held-out indices: a seeded random `share` held out from training to choose the epoch.

    by "fact": a share of the facts (a group, or a row without one), every phrasing of each held out
    together, so none teaches the held-out answer (at least one when there are two or more): the loss
    of answers never trained on. by "phrasing": one phrasing of each of a share of the facts with two
    or more, the rest of them trained on: the loss of a trained fact asked another way, what knowledge
    transfer wants (a fact seen in no phrasing cannot be answered: on the quick demo the loss by "fact"
    rose after the second epoch while the trained facts were still being learnt)."""
    keys = [("row", j) if groups is None or groups[j] is None else groups[j] for j in range(n)]
    rng = random.Random(f"held-out-{seed}")
    if by == "phrasing":
        rows: dict[Any, list[int]] = {}
        for j, key in enumerate(keys):
            rows.setdefault(key, []).append(j)
        several = [key for key, members in rows.items() if len(members) > 1]
        k = min(len(several), max(1, round(len(several) * share))) if share > 0 and several else 0
        held = {rng.choice(rows[key]) for key in rng.sample(several, k)}
        return [j for j in range(n) if j not in held], sorted(held)
    distinct = list(dict.fromkeys(keys))
    k = min(len(distinct) - 1, max(1, round(len(distinct) * share))) if share > 0 and len(distinct) > 1 else 0
    chosen = set(rng.sample(distinct, k)) if k else set()
    return [j for j in range(n) if keys[j] not in chosen], [j for j in range(n) if keys[j] in chosen]


def epoch_batches(encoded: list[tuple[list[int], list[int]]], size: int, seed: int,
                  groups: list[Any] | None = None) -> list[list[int]]:
    """One epoch's batches: shuffled, then sorted by length within pools of 8 batches (little padding),
    the batches themselves in a shuffled order. With `groups` (a fact's phrasings share one), no batch
    holds two rows of one group: each row joins the first open batch without its group."""
    rng = random.Random(seed)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    if groups is not None and any(g is not None for g in groups):
        return grouped_batches(order, size, groups, rng)
    out: list[list[int]] = []
    for start in range(0, len(order), size * 8):
        pool = sorted(order[start:start + size * 8], key=lambda j: len(encoded[j][0]) + len(encoded[j][1]))
        out += [pool[k:k + size] for k in range(0, len(pool), size)]
    rng.shuffle(out)
    return out


def checkpointed(model: Any, name: str) -> None:
    """Gradient checkpointing through transformers: each layer's activations are recomputed in the backward
    pass instead of kept (non-reentrant, which restores the RNG, so dropout draws the same masks and the
    adapter is the same, bitwise on CPU: tests/test_trainer_recipe.py)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise RunError(f"model {name}: transformers has no gradient checkpointing for "
                       f"{type(model).__name__}; set trainer.gradient_checkpointing = false")
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers' name since 5.x
    if enable is not None:
        enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def short_rows_attention(model: Any, encoded: list[tuple[list[int], list[int]]]) -> None:
    """Eager attention for a model on CPU whose rows are all short (the same attention, computed faster
    there); the model is the trainer's own, loaded for this training."""
    longest = max((len(p) + len(r) for p, r in encoded), default=0)
    on_cpu = next(model.parameters()).device.type == "cpu"
    if on_cpu and longest <= EAGER_ATTENTION_MAX_TOKENS and model.config._attn_implementation == "sdpa":
        model.set_attn_implementation("eager")


class LoRATrainer(Trainer):
    name = "peft-lora"
    default = True
    description = "peft LoRA supervised fine-tuning, loss on response tokens, resumable per epoch"
    Options = LoRAOptions

    def identity(self) -> dict[str, Any]:
        identity = identity_with_precision(super().identity(), self.options)
        identity["options"].pop("gradient_checkpointing")  # memory, not the adapter: the same cache entry
        return identity

    def check(self) -> None:
        self.options.resolved()  # a bad $TUNESHIFT_PRECISION is refused now

    def _finite(self, what: str, value: float, where: str) -> None:
        """A loss, gradient or weight that is NaN or inf ends the training (nothing diverged is saved)."""
        if not math.isfinite(value):
            raise RunError(f"training diverged: the {what} is {value} {where} "
                           f"(trainer.learning_rate = {self.options.learning_rate:g}); lower the learning rate")

    def train(self, model: ModelSpec, pairs: list[dict[str, Any]], out_dir: str, checkpoint_dir: str) -> dict[str, Any]:
        import torch
        from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

        from .dropout import use_bits_dropout
        from .loading import load_causal_lm, load_tokenizer
        from .memory import freed_memory_kept

        o = self.options
        parallel = DataParallel()  # first: it picks this process's device before the model loads
        torch.manual_seed(o.seed)
        tok = load_tokenizer(model.base, model.trust_remote_code)
        base = load_causal_lm(model.base, model.trust_remote_code, o.precision, model)  # its dtype, device
        lora = LoraConfig(r=o.rank, lora_alpha=o.alpha, lora_dropout=o.dropout, target_modules=o.target_modules,
                          bias="none", task_type="CAUSAL_LM")
        peft_model = get_peft_model(base, lora, autocast_adapter_dtype=True)  # float32 LoRA on bf16 weights
        use_bits_dropout(peft_model)  # on CPU: the same dropout, a cheaper mask
        if o.gradient_checkpointing:
            checkpointed(base, model.base)
        if o.neftune_alpha:  # transformers' NEFTune hook: noise only while the embedding module is training
            from transformers.integrations.neftune import activate_neftune

            activate_neftune(peft_model, o.neftune_alpha)
        encoded, weights = [], []
        for pair in pairs:
            p, r = encode_pair(tok, pair["prompt"], pair["response"], add_eos=True)
            if len(p) + len(r) > o.max_length:  # keep the prompt's end and the response's start
                r = r[: o.max_length // 2]
                p = p[-(o.max_length - len(r)):]
            encoded.append((p, r))
            spans = pair.get("train_spans")
            weights.append(None if spans is None else span_weights(tok, pair["response"], spans, len(r)))
        short_rows_attention(base, encoded)
        groups = [pair.get("group") for pair in pairs]
        train_rows, held_rows = split_held_out(len(encoded), o.held_out, o.seed, groups, o.held_out_by)
        groups = [groups[j] for j in train_rows]
        held = [encoded[j] for j in held_rows]
        encoded, weights = [encoded[j] for j in train_rows], [weights[j] for j in train_rows]
        weighted = any(w is not None for w in weights)
        weights = [w if w is not None else [1.0] * len(r) for w, (_, r) in zip(weights, encoded)]
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trainable, lr=o.learning_rate)
        scheduler = self._scheduler(optimiser, encoded, groups)
        ckpt = Path(checkpoint_dir) / "checkpoint.pt"
        # the number of epochs is left out: a job trained for fewer epochs resumes into a longer one
        job = fingerprint({k: v for k, v in self.identity().items() if k != "options"},
                          o.model_dump(mode="json", exclude={"epochs", "gradient_checkpointing"}), model.base, pairs)
        first_epoch, losses, held_losses, best = 0, [], [], None
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=True)  # plain tensors and numbers: no pickled code runs
            if state["job"] == job and state["epoch"] < o.epochs:
                set_peft_model_state_dict(peft_model, state["adapter"])
                optimiser.load_state_dict(state["optimiser"])
                if scheduler is not None:
                    scheduler.load_state_dict(state["scheduler"])
                first_epoch, losses = state["epoch"] + 1, state["losses"]
                held_losses, best = state.get("held_losses", []), state.get("best")
                if state.get("stopped"):  # the held-out slice had ended it: nothing more to train
                    first_epoch = o.epochs
        wrapped = parallel.wrap(peft_model)
        started = time.perf_counter()
        tracked = StepMetrics(self.context.metrics, first_epoch, o.grad_accumulation, encoded, o.batch_size, groups)
        with freed_memory_kept() if base.device.type == "cpu" else nullcontext():
            for epoch in range(first_epoch, o.epochs):
                peft_model.train()
                # dropout of epoch k is the same whether resumed or not (and differs between processes)
                torch.manual_seed(o.seed * 1000 + epoch + 1_000_003 * parallel.rank)
                batches = epoch_batches(encoded, o.batch_size, o.seed * 1000 + epoch, groups)
                epoch_loss = 0.0
                for i, batch in enumerate(batches):
                    step = (i + 1) % o.grad_accumulation == 0 or i == len(batches) - 1
                    mine = parallel.shard(batch)
                    rows = [encoded[j] for j in mine or batch[:1]]  # an empty shard still joins the all-reduce
                    with parallel.no_sync(wrapped, sync=step):
                        # the LM head runs on response tokens only: the loss is their mean negative log-likelihood
                        logprobs = response_logprobs(peft_model, tok.pad_token_id, rows, wrapper=wrapped)
                        row_weights = [torch.tensor(weights[j]) for j in mine or batch[:1]] if weighted else None
                        loss, batch_loss = parallel.loss(logprobs, counted=bool(mine), weights=row_weights)
                        self._finite("loss", batch_loss, f"at epoch {epoch + 1}, step {i + 1}")
                        tracked.add(batch_loss, sum(len(p) + len(r) for p, r in rows))
                        (loss / o.grad_accumulation).backward()
                    if step:  # also after the epoch's last, incomplete accumulation
                        norm = torch.nn.utils.clip_grad_norm_(trainable, o.max_grad_norm or float("inf"))  # inf: measures
                        self._finite("gradient norm", norm.item(), f"at epoch {epoch + 1}, step {i + 1}")
                        optimiser.step()
                        optimiser.zero_grad()
                        if parallel.is_main:
                            tracked.report(epoch, optimiser.param_groups[0]["lr"], norm.item())
                        if scheduler is not None:
                            scheduler.step()
                    epoch_loss += batch_loss
                losses.append(epoch_loss / max(len(batches), 1))
                stopped = False
                if held:  # the epoch's held-out loss: keep the best adapter, stop once it no longer falls
                    held_losses.append(held_out_loss(peft_model, tok.pad_token_id, held, o.batch_size))
                    if best is None or held_losses[-1] < best["loss"]:
                        best = {"loss": held_losses[-1], "epoch": epoch,
                                "adapter": {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}}
                    else:
                        stopped = True
                self.context.progress(1)
                if parallel.is_main:
                    ckpt.parent.mkdir(parents=True, exist_ok=True)
                    torch.save({"job": job, "epoch": epoch, "losses": losses, "optimiser": optimiser.state_dict(),
                                "adapter": get_peft_model_state_dict(peft_model), "held_losses": held_losses,
                                "best": best, "stopped": stopped,
                                "scheduler": scheduler.state_dict() if scheduler is not None else None},
                               str(ckpt) + ".tmp")
                    Path(str(ckpt) + ".tmp").replace(ckpt)
                parallel.barrier()
                if stopped:
                    break
        if best is not None and best["epoch"] != len(losses) - 1:
            set_peft_model_state_dict(peft_model, best["adapter"])  # the epoch the held-out slice chose
        if not all(bool(torch.isfinite(p).all()) for p in trainable):
            self._finite("largest adapter weight", float("nan"), "after training")
        if parallel.is_main:
            peft_model.save_pretrained(out_dir)
            if not uses_chat_template(tok):  # record the plain format it learnt, for apply_chat_template & vLLM
                tok.chat_template = plain_chat_template(tok)
            tok.save_pretrained(out_dir)
        parallel.end()
        chosen = {"held_out_pairs": len(held), "held_out_loss_per_epoch": held_losses,
                  "best_epoch": best["epoch"] + 1 if best else None, "epochs_trained": len(losses)} if held else {}
        return {"epochs": o.epochs, "resumed_from_epoch": first_epoch, "loss_per_epoch": losses, **chosen,
                "processes": parallel.world, "train_seconds": round(time.perf_counter() - started, 3)}

    def _scheduler(self, optimiser: Any, encoded: list[tuple[list[int], list[int]]], groups: list[Any]) -> Any:
        """transformers' schedule for the options, or None for a constant rate without warmup (the plain loop)."""
        o = self.options
        if o.schedule == "constant" and not o.warmup_ratio:
            return None
        from transformers import get_scheduler

        batches_per_epoch = len(epoch_batches(encoded, o.batch_size, 0, groups))  # the same count every epoch
        steps = math.ceil(batches_per_epoch / o.grad_accumulation) * o.epochs
        name = "constant_with_warmup" if o.schedule == "constant" else o.schedule
        return get_scheduler(name, optimiser, num_warmup_steps=round(o.warmup_ratio * steps), num_training_steps=steps)


class StepMetrics:
    """Each optimiser step's numbers for the observers' `on_metrics`: the mean loss of its batches, the
    learning rate it used, the gradient norm, tokens per second since the last step, the epoch."""

    def __init__(self, report: Any, first_epoch: int, accumulation: int, encoded: list, batch_size: int,
                 groups: list[Any]) -> None:
        per_epoch = math.ceil(len(epoch_batches(encoded, batch_size, 0, groups)) / accumulation)
        self._report, self.step = report, first_epoch * per_epoch  # a resumed training goes on counting
        self._losses: list[float] = []
        self._tokens, self._since = 0, time.perf_counter()

    def add(self, loss: float, tokens: int) -> None:
        self._losses.append(loss)
        self._tokens += tokens

    def report(self, epoch: int, learning_rate: float, grad_norm: float) -> None:
        now = time.perf_counter()
        self.step += 1
        self._report(self.step, {"loss": sum(self._losses) / max(len(self._losses), 1), "learning_rate": learning_rate,
                                 "grad_norm": grad_norm, "tokens_per_second": self._tokens / max(now - self._since, 1e-9),
                                 "epoch": epoch + 1})
        self._losses, self._tokens, self._since = [], 0, now


def held_out_loss(model: Any, pad_id: int, rows: list[tuple[list[int], list[int]]], batch_size: int) -> float:
    """Mean NLL per response token of the held-out rows, dropout off (the model goes back to training after)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            tokens = torch.cat(response_logprobs(model, pad_id, rows[start:start + batch_size])).float()
            total, count = total - tokens.sum().item(), count + tokens.numel()
    model.train()
    return round(total / max(count, 1), 6)
