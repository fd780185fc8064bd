"""Memory of a CPU process: what glibc keeps of the memory torch frees, and how many compiled kernels oneDNN
keeps. Both decide the resident size of a long training on 2 cores (docs/performance.md); Linux with glibc
only, elsewhere nothing happens."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def returned_to_kernel() -> None:
    """Hand the heap's free pages back to the kernel. Converting a GGUF dequantizes every tensor in float32
    and frees them; glibc would keep most of that (0.7 of 1.25 GB for Gemma 3 270M), for a model loaded once,
    in every later step of the process. Linux with glibc only; elsewhere nothing."""
    trim = _glibc("malloc_trim")
    if trim is not None:
        gc.collect()
        trim(0)


@contextmanager
def freed_memory_kept() -> Iterator[None]:
    """While training on CPU, let glibc keep the memory torch frees. glibc hands every freed block over its
    mmap threshold back to the kernel, and most of a step's tensors are such blocks, so every step paid
    page faults on fresh zeroed pages: a third of a training step on 2 cores was the kernel's. Inside, the
    threshold is at its 32 MiB maximum and nothing is trimmed (the same blocks are reused step after step,
    so peak RSS does not grow); after, what is free beyond 64 MiB goes back to the kernel, and the
    thresholds stay where glibc's own dynamic ones settle once large blocks are freed (32 MiB, trim at
    twice that; setting them once ends glibc's adjusting). Linux with glibc only; elsewhere nothing."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        yield
        return
    m_trim_threshold, m_mmap_threshold, largest = -1, -3, 32 << 20
    mallopt(m_mmap_threshold, largest)
    mallopt(m_trim_threshold, 1 << 30)
    try:
        yield
    finally:
        mallopt(m_trim_threshold, 2 * largest)
        _glibc("malloc_trim")(2 * largest)


def _glibc(name: str) -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc
        return None


KERNEL_CACHE = 64
"""How many compiled CPU kernels oneDNN keeps (its default: 1024). It compiles one for every matrix shape it
meets and keeps it; a training's batches differ in width and in how many response tokens the head runs on, so
nearly every step brings new shapes, and with freed memory kept (freed_memory_kept) the process only grows.
The demo teacher's training (SmolLM2, 8 epochs, one thread) peaked at 5.5 GB resident with the default, at
4.2 GB with 64, the same adapter; 32 thrashed a gradient-checkpointed Gemma 3 training (a step's forward,
recomputed forward and backward shapes together: +34 % time), 64 costs it 5 % (docs/performance.md,
"Compiled kernels kept")."""


def bounded_kernel_cache() -> None:
    """Cap oneDNN's kernel cache at KERNEL_CACHE unless the user set ONEDNN_PRIMITIVE_CACHE_CAPACITY. oneDNN
    reads the variable when it compiles its first kernel, so this runs before a model does anything."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(KERNEL_CACHE))
