"""Which float type the hf implementations compute in: the `precision` option of the answerer, scorer and
trainer.

`auto` is bfloat16 on CUDA and on CPUs with bfloat16 matrix units (avx512_bf16
or AMX: about three times float32's matmul rate), float32 elsewhere. Selection
needs the ranking of perplexity gaps, not float32's last digits; log-softmax,
the loss, the LoRA weights and the optimiser state stay float32 in every
precision. docs/performance.md gives the measured agreement with float32.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tuneshift.api import Options, UsageError

Precision = Literal["auto", "float32", "bfloat16"]


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (avx512_bf16 or AMX); False where unknown."""
    try:
        flags = next((line for line in Path(cpuinfo).read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


PRECISION_ENV = "TUNESHIFT_PRECISION"
"""Set to float32 or bfloat16, it decides what `auto` means on this machine (the tests pin float32, so
their numbers do not depend on the CPU they run on)."""


def resolve_precision(precision: str = "auto") -> str:
    """`auto` made concrete for this machine: "bfloat16" or "float32"."""
    if precision != "auto":
        return precision
    forced = os.environ.get(PRECISION_ENV, "").strip()
    if forced:
        if forced not in ("float32", "bfloat16"):
            raise UsageError(f"${PRECISION_ENV} = {forced!r}: expected float32 or bfloat16")
        return forced
    import torch

    return "bfloat16" if torch.cuda.is_available() or cpu_has_bf16() else "float32"


class PrecisionOptions(Options):
    precision: Precision = Field("auto", description="auto: bfloat16 on CUDA and on CPUs with bfloat16 units, "
                                                     "else float32")

    def resolved(self) -> str:
        return resolve_precision(self.precision)


def identity_with_precision(identity: dict[str, Any], options: PrecisionOptions) -> dict[str, Any]:
    """An implementation's cache identity with the precision it really computes in (auto differs by machine)."""
    return {**identity, "precision": options.resolved()}


@contextmanager
def bfloat16_matmuls(model: Any) -> Iterator[None]:
    """Around a forward pass of a model loaded in bfloat16: LoRA's float32 weights multiply in bfloat16 too
    (autocast), where peft would cast each LoRA input up to float32 and its output back (a tenth of the
    time on CPU). The weights stay float32, so the optimiser still updates float32. Nothing for float32."""
    import torch

    param = next(model.parameters(), None)
    if param is None or param.dtype != torch.bfloat16:
        yield
        return
    with ExitStack() as stack:
        stack.enter_context(torch.autocast(param.device.type, dtype=torch.bfloat16))
        if hasattr(model, "peft_config"):
            from peft.helpers import disable_input_dtype_casting

            stack.enter_context(disable_input_dtype_casting(model))
        yield
