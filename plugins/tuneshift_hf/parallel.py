"""Data-parallel training under `accelerate launch` (or torchrun): one process per device.

Every process builds the same global batches (same seed, same data) and
trains on its own rows of each, `batch[rank::world]`. The loss is normalised
so that the all-reduced gradient equals the single-process gradient of the
whole batch: the single-process loss is the mean over the batch's response
tokens, sum(nll) / T, so each process backpropagates
world * sum(its nll) / T, T counted over all processes; DDP averages the
gradients over the `world` processes, which gives sum over all rows / T.
(A mean of per-process means would weight a process's tokens by 1 / its own
count and differ whenever shards differ in length.)

In one process nothing here loads accelerate or torch.distributed, and the
loss is the plain token mean, exactly as before.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from tuneshift.api import UsageError, world_size

SUPPORTED = ("MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU", "MULTI_MLU", "MULTI_MUSA", "MULTI_HPU")
"""accelerate distributed types that are plain DDP; FSDP and DeepSpeed shard the weights and the
optimiser state, which the trainer's checkpoints (one file of whole tensors) do not handle."""


class DataParallel:
    """This process's part of a data-parallel training; with one process every method is trivial."""

    def __init__(self) -> None:
        self.accelerator: Any = None
        self.world, self.rank = 1, 0
        if world_size() > 1:
            import torch
            from accelerate import Accelerator

            if not os.environ.get("MASTER_ADDR"):  # WORLD_SIZE left over in a shell, no launcher around
                raise UsageError(f"WORLD_SIZE is {world_size()} but MASTER_ADDR is not set: start several "
                                 "processes with accelerate launch or torchrun, or unset WORLD_SIZE for one")

            # without CUDA accelerate would see no distributed setup; cpu=True gives gloo on CPU
            self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
            kind = self.accelerator.distributed_type.name
            if kind not in SUPPORTED:
                raise UsageError(f"the peft-lora trainer trains data-parallel (DDP) only, not {kind}; "
                                 "use an accelerate config with distributed_type MULTI_GPU")
            self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: Any) -> Any:
        """The module to run forward passes through: DDP around `model` when there are several processes."""
        return model if self.accelerator is None else self.accelerator.prepare_model(model)

    def shard(self, batch: list[int]) -> list[int]:
        """This process's rows of a global batch, strided so that each gets short and long rows."""
        return batch[self.rank::self.world]

    def loss(self, logprobs: list[Any], counted: bool = True, weights: list[Any] | None = None) -> tuple[Any, float]:
        """The loss to backpropagate here, and the whole global batch's mean token NLL (for the log).

        `counted` is False for a stand-in row: a process whose shard is empty (a last batch with fewer
        rows than processes) still runs a pass, scaled by 0, to take part in the gradient all-reduce."""
        import torch

        tokens = torch.cat(logprobs).float()
        if weights is not None:  # per-token weights (a selector's train spans): a weighted token mean
            w = torch.cat(weights).to(tokens)
            tokens = tokens * w
            count = w.sum()
        else:
            count = torch.tensor(float(tokens.numel()))
        if self.accelerator is None:
            loss = -tokens.mean() if weights is None else -tokens.sum() / count.clamp(min=1e-9)
            return loss, loss.item()
        own = torch.zeros(2, dtype=torch.float64, device=tokens.device)
        if counted:
            own[0], own[1] = -tokens.detach().sum(), count.item()
        total = self.accelerator.reduce(own, reduction="sum")
        scale = self.world / max(total[1].item(), 1e-9) if counted else 0.0
        return -tokens.sum() * scale, (total[0] / total[1].clamp(min=1e-9)).item()

    def no_sync(self, wrapped: Any, sync: bool) -> AbstractContextManager[Any]:
        """Skip the gradient all-reduce on micro-batches that accumulate without an optimiser step."""
        return nullcontext() if sync or self.accelerator is None else wrapped.no_sync()

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def end(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
            self.accelerator.end_training()
