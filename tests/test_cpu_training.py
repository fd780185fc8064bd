"""What the hf trainer does differently on CPU: BitsDropout (drops at the asked rate, keeps the mean, is off
in eval mode, replaces exactly peft's LoRA dropout modules) and glibc keeping freed memory while it trains."""

from __future__ import annotations

import sys

import pytest
import torch

from tuneshift_hf.dropout import BitsDropout, use_bits_dropout
from tuneshift_hf.memory import freed_memory_kept


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_drops_each_element_at_the_rate_and_keeps_the_mean(p):
    torch.manual_seed(0)
    drop = BitsDropout(p).train()
    x = torch.ones(64, 4099)  # not a multiple of four: the last int64 is only partly used
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.02  # inverted dropout: survivors scaled by 1 / (1 - p)
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - drop.threshold / 2**15)))
    # each column and row is dropped alike: no 16-bit lane of the int64 is biased
    lanes = (y == 0).float().view(-1)[: 64 * 4096].view(-1, 4).mean(0)
    assert (lanes - p).abs().max().item() < 0.01


def test_is_the_identity_in_eval_mode_and_for_p_zero():
    x = torch.randn(8, 16)
    assert BitsDropout(0.3).eval()(x) is x
    assert BitsDropout(0.0).train()(x) is x


def test_draws_differ_and_follow_the_seed():
    drop = BitsDropout(0.2).train()
    x = torch.ones(1000)
    torch.manual_seed(1)
    a = drop(x)
    b = drop(x)
    torch.manual_seed(1)
    assert not torch.equal(a, b) and torch.equal(drop(x), a)


def test_swaps_only_peft_lora_dropout_on_cpu(tiny):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny["target"]))
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, lora_dropout=0.05, task_type="CAUSAL_LM"))
    before = sum(isinstance(m, torch.nn.Dropout) for m in peft_model.modules())
    swapped = use_bits_dropout(peft_model)
    assert swapped > 0
    assert sum(isinstance(m, BitsDropout) for m in peft_model.modules()) == swapped
    assert sum(isinstance(m, torch.nn.Dropout) for m in peft_model.modules()) == before - swapped
    assert use_bits_dropout(peft_model) == 0  # already swapped
    ids = torch.tensor([[1, 2, 3, 4]])
    peft_model.train()
    peft_model(input_ids=ids).logits.sum().backward()  # gradients flow through the swapped modules
    assert any(p.grad is not None for n, p in peft_model.named_parameters() if "lora_" in n)


MALLOC_PROBE = """
import ctypes
from tuneshift_hf.memory import freed_memory_kept

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def mapped_while_holding(size):
    baseline = libc.mallinfo2().hblks
    block = libc.malloc(size)
    mapped = libc.mallinfo2().hblks - baseline  # blocks glibc took from mmap, not from its heap
    libc.free(block)
    return mapped

with freed_memory_kept():
    mapped = mapped_while_holding(16 << 20)
    blocks = [libc.malloc(16 << 20) for _ in range(12)]  # 192 MiB
    for block in blocks:
        libc.free(block)
    kept = libc.mallinfo2().fordblks >> 20
print(mapped, kept, libc.mallinfo2().fordblks >> 20)
"""


def has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")  # glibc >= 2.33
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not has_mallinfo2(), reason="glibc's malloc")
def test_freed_memory_is_kept_while_training_and_given_back_after():
    """Inside, 16 MiB blocks come from glibc's heap and stay there when freed; after, all but 64 MiB of the
    free memory goes back. In a fresh process: one whose heap cannot grow (the test suite's, after many
    models) maps every large block whatever the thresholds."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", MALLOC_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    mapped, kept, after = map(int, out.stdout.split())
    assert mapped == 0 and kept >= 192 and after <= 64


TRIM_PROBE = """
import ctypes
from tuneshift_hf.memory import returned_to_kernel

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 >> 20

blocks = [libc.malloc(64 << 10) for _ in range(4096)]  # 256 MiB of heap blocks, every page touched
for block in blocks:
    libc.memset(block, 1, 64 << 10)
for i, block in enumerate(blocks):
    if i % 8:  # every eighth stays: the heap's top cannot shrink, only its free middle can go back
        libc.free(block)
before = resident_mb()
returned_to_kernel()
print(before, resident_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not has_mallinfo2(), reason="glibc's malloc")
def test_freed_heap_pages_go_back_to_the_kernel_after_a_conversion():
    """What a GGUF conversion frees stays resident in glibc's heap until returned_to_kernel hands it back:
    224 of the 256 MiB here, though the blocks still held pin the heap's top."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split())
    assert before - after >= 180, (before, after)


KERNEL_PROBE = """
import sys
import torch
from tuneshift_hf.loading import load_causal_lm
from tuneshift_hf.memory import KERNEL_CACHE

load_causal_lm(sys.argv[1], precision="bfloat16")  # before any kernel: oneDNN reads its cap at the first
x = torch.ones(8, 64, dtype=torch.bfloat16)
for n in range(16, 16 + KERNEL_CACHE + 8):  # more new shapes than the cap holds, each its own kernel
    x @ torch.ones(64, n, dtype=torch.bfloat16)
x @ torch.ones(64, 16, dtype=torch.bfloat16)  # the first shape again
"""


def kernel_probe(target, **env):
    """oneDNN's verbose line for the probe's last matmul (cache_hit / cache_miss: oneDNN's own stdout buffer
    does not interleave with Python's, so it is the last `create` line), or None where bfloat16 matmuls do
    not go through oneDNN on this CPU."""
    import os
    import subprocess

    environ = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", KERNEL_PROBE, str(target)], capture_output=True, text=True,
                         timeout=120, env={**environ, "ONEDNN_VERBOSE": "2", **env})
    assert out.returncode == 0, out.stderr[-2000:]
    created = [line for line in out.stdout.splitlines() if ",primitive,create:" in line]
    return created[-1] if created else None


def test_load_caps_the_kernel_cache_unless_the_user_set_it(tiny):
    """load_causal_lm caps oneDNN's kernel cache at KERNEL_CACHE: a shape met KERNEL_CACHE + 8 shapes ago
    is compiled again; with the user's own ONEDNN_PRIMITIVE_CACHE_CAPACITY (oneDNN's default 1024) it is
    still there."""
    capped = kernel_probe(tiny["target"])
    if capped is None:
        pytest.skip("bfloat16 matmuls do not go through oneDNN on this CPU")
    assert "cache_miss" in capped and "64x16" in capped, capped
    assert "cache_hit" in kernel_probe(tiny["target"], ONEDNN_PRIMITIVE_CACHE_CAPACITY="1024")
