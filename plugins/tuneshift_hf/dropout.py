"""LoRA dropout whose mask is cheaper to draw on CPU.

torch's CPU dropout draws one Bernoulli sample per element, and peft applies
it to the whole input of every LoRA module: a fifth of a training step on 2
cores (630 draws of about 7 ms in one epoch of the training benchmark). This
one fills int64s with random bits and reads them as 16-bit numbers, four per
draw (measured: forward and backward 2-2.6x faster than torch's; still 13 % of
a bfloat16 step, mostly the compare and fill): the same inverted dropout, each element dropped independently with
probability round(p * 2^15) / 2^15 (0.05 becomes 0.049988). CUDA's fused
dropout is fast, so it is only swapped in on CPU.
"""

from __future__ import annotations

from typing import Any

import torch

LEVELS = 1 << 15
FIFTEEN_BITS = 0x7FFF_7FFF_7FFF_7FFF
"""Each 16-bit part of an int64 keeps 15 random bits (random_ leaves the int64's top bit 0)."""


class BitsDropout(torch.nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.threshold = round(p * LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_().bitwise_and_(FIFTEEN_BITS)
        dropped = bits.view(torch.int16)[:n] < self.threshold
        return x.masked_fill(dropped.view(x.shape), 0) * (1.0 / (1.0 - self.threshold / LEVELS))

    def extra_repr(self) -> str:
        return f"p={self.threshold / LEVELS:g}"


def use_bits_dropout(model: Any) -> int:
    """Swap peft's LoRA dropout modules of a model on CPU for BitsDropout; how many were swapped."""
    if next(model.parameters()).device.type != "cpu":
        return 0
    swapped = 0
    for module in model.modules():
        table = getattr(module, "lora_dropout", None)
        if not isinstance(table, torch.nn.ModuleDict):
            continue
        for name, dropout in table.items():
            if type(dropout) is torch.nn.Dropout and dropout.p > 0:
                table[name] = BitsDropout(dropout.p)
                swapped += 1
    return swapped
