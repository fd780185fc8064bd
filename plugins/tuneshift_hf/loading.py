"""Load models and tokenizers from local directories, .gguf files and PEFT adapters.

Loaded models are kept per process, so the answerer and the scorer of one
run share one copy of the teacher's weights.

A .gguf file is converted once into a safetensors directory under
`$TUNESHIFT_CACHE` (default ~/.cache/tuneshift) in `gguf/<key>/`, the key
hashing the file's path, size and mtime: transformers dequantises every GGUF
tensor on each load (seconds to minutes), while the safetensors copy maps in
at disk speed. Every later load, the first one included, reads the cache, so
all loads of one file give bit-identical weights.

Device and precision: CUDA where present, else the CPU with torch's default
thread count (one per physical core; more would oversubscribe). Precision
`auto` is bfloat16 on CUDA and on CPUs with bfloat16 matrix units (avx512_bf16
or AMX, read from /proc/cpuinfo at run time: about 3x float32's matmul rate),
float32 elsewhere; `float32` and `bfloat16` force one. A model is loaded once
per (files, precision).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from tuneshift.api import ModelSpec, UsageError

from .memory import bounded_kernel_cache, returned_to_kernel
from .precision import resolve_precision

hf_logging.disable_progress_bar()  # tuneshift shows its own progress

CACHE_ENV = "TUNESHIFT_CACHE"
SOURCE_FILE = "tuneshift-gguf.json"
"""Written last into a converted GGUF directory: its presence marks the conversion as complete."""

_models: dict[tuple, "Loaded"] = {}
_lock = threading.Lock()
_convert_lock = threading.Lock()


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    has_adapter: bool
    base_model: Any = None  # a second model for a full fine-tune's base

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device_dtype(precision: str = "auto", device: str | None = None, dtype: str | None = None
                      ) -> tuple[str, torch.dtype]:
    """The device (a spec's own, else CUDA where present, else the CPU) and the float type (a spec's own,
    else the implementation's precision)."""
    return (device or ("cuda" if torch.cuda.is_available() else "cpu")), DTYPES[dtype or resolve_precision(precision)]


def check_loading(spec: ModelSpec, role: str | None = None) -> None:
    """A spec's device and quantization can be had on this machine, before any work: one line if not."""
    key = f"config: {role}." if role else "model "
    device = spec.device or ""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"{key}device = {device}: no CUDA GPU here (torch {torch.__version__}); use cpu or auto")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise UsageError(f"{key}device = {device}: there are {torch.cuda.device_count()} CUDA devices")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{key}device = mps: Apple's Metal backend is not available here; use cpu or auto")
    if spec.quantization:
        if not torch.cuda.is_available():
            raise UsageError(f"{key}quantization = {spec.quantization}: bitsandbytes quantisation needs a CUDA GPU; "
                             "none here (leave it unset to load in 16 or 32 bits)")
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise UsageError(f"{key}quantization = {spec.quantization}: bitsandbytes is not installed "
                             "(pip install 'tuneshift[quantization]')")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tuneshift")


def is_gguf(path: str) -> bool:
    """Whether `path` is a file (any suffix) starting with the GGUF magic bytes."""
    p = Path(path)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        return fh.read(4) == b"GGUF"


def _check_path(path: str) -> None:
    """UsageError for a missing path, a junk .gguf, or a file that is no model at all."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"model {path}: no such file or directory")
    if p.is_file() and not is_gguf(path):
        if p.suffix == ".gguf":
            raise UsageError(f"model {path}: not a GGUF file (bad magic bytes)")
        raise UsageError(f"model {path}: a file that is not a GGUF model (give a model directory or a .gguf file)")


def gguf_cache_dir(path: str) -> Path:
    """Where the safetensors conversion of the GGUF file `path` lives: keyed by its path, size and mtime."""
    p = Path(path).resolve()
    st = p.stat()
    key = hashlib.sha256(json.dumps([str(p), st.st_size, st.st_mtime_ns]).encode()).hexdigest()[:16]
    return cache_root() / "gguf" / key


def drop_quantizer_marker(model: Any) -> None:
    """Make a dequantised GGUF model serialisable: save_pretrained refuses while `model.hf_quantizer` is set.

    The legacy GGUF loader (llama, gemma3, ...) dequantises every tensor into plain nn.Linear weights but
    keeps the quantizer; transformers' own `remove_quantization_config` drops it with
    `config.quantization_config` and `is_quantized`. Packed (still quantised) weights are refused.
    """
    packed = [n for n, p in model.named_parameters() if not p.is_floating_point()]
    if packed:
        raise UsageError(f"GGUF model kept quantised weights ({packed[0]}, ...); tuneshift needs dense weights")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)


@contextmanager
def gguf_read_once() -> Iterator[None]:
    """transformers parses a GGUF file's metadata anew for its config, its weights and its tokenizer: 11 s
    each for Gemma 3's 262k-token vocabulary on 2 cores. Within a conversion one parsed reader per file
    serves all three (a reader is only read from)."""
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple, Any] = {}

    def reader(path: Any, *args: Any, **kwargs: Any) -> Any:
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def converted_gguf(path: str, trust_remote_code: bool = False) -> Path:
    """The safetensors directory converted from the GGUF file `path`, converting it on the first call.

    Written into a temporary directory beside the target and renamed into place, so a crashed or
    concurrent conversion never leaves a half-written cache behind.
    """
    _check_path(path)
    target = gguf_cache_dir(path)
    if (target / SOURCE_FILE).is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path).resolve()
    with _convert_lock, gguf_read_once():
        if (target / SOURCE_FILE).is_file():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        except OSError as exc:
            raise UsageError(f"model {path}: cannot write the GGUF conversion cache under {target.parent} "
                             f"({exc.strerror}); set ${CACHE_ENV} to a writable directory") from None
        try:
            try:
                model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32,
                                                             trust_remote_code=trust_remote_code)
            except (ValueError, KeyError) as exc:  # an architecture or tensor type transformers cannot read
                raise UsageError(f"model {path}: transformers cannot load this GGUF ({_first_reason(exc)})") from None
            drop_quantizer_marker(model)
            model.save_pretrained(str(tmp))
            del model
            gc.collect()
            tokenizer = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name,
                                                      trust_remote_code=trust_remote_code)
            tokenizer.save_pretrained(str(tmp))
            st = p.stat()
            (tmp / SOURCE_FILE).write_text(json.dumps({"source": str(p), "size": st.st_size,
                                                       "mtime_ns": st.st_mtime_ns}, indent=1) + "\n")
            try:
                tmp.rename(target)
            except OSError:  # another process finished first, or an incomplete leftover is in the way
                if not (target / SOURCE_FILE).is_file():
                    shutil.rmtree(target, ignore_errors=True)
                    tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            returned_to_kernel()
    return target


def _from_pretrained(cls: Any, path: str, trust_remote_code: bool, **kwargs: Any) -> Any:
    """cls.from_pretrained for a directory (safetensors only) or a .gguf file (through its cached conversion)."""
    _check_path(path)
    if trust_remote_code:
        warnings.warn(f"model {path}: trust_remote_code is on: its repository code will run", stacklevel=2)
    if Path(path).is_file():
        path = str(converted_gguf(path, trust_remote_code))
    return cls.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)


def _declares_generic_tokenizer(path: str) -> bool:
    """Whether `path` holds a tokenizer.json saved as a generic fast tokenizer (no model-specific class)."""
    config = Path(path) / "tokenizer_config.json"
    if not (Path(path) / "tokenizer.json").is_file() or not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("tokenizer_class") == "TokenizersBackend"
    except (OSError, ValueError, AttributeError):
        return False


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model. A generic tokenizer.json is loaded as written: AutoTokenizer would
    swap in the model type's class for some types (qwen2, phi3, ...) and rebuild a different tokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if is_gguf(path):
        path = str(converted_gguf(path, trust_remote_code))
    cls = PreTrainedTokenizerFast if _declares_generic_tokenizer(path) else AutoTokenizer
    tok = _from_pretrained(cls, path, trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str, trust_remote_code: bool = False, precision: str = "auto",
                   spec: ModelSpec | None = None) -> Any:
    """A causal LM in eval mode, loaded as `spec`'s loading controls say (dtype, device, device_map,
    quantization), else on the default device in `precision`."""
    from transformers import AutoModelForCausalLM

    bounded_kernel_cache()
    device, dtype = pick_device_dtype(precision, spec and spec.device, spec and spec.dtype)
    kwargs: dict[str, Any] = {}
    if spec is not None and spec.quantization:
        from transformers import BitsAndBytesConfig

        compute = dtype if dtype != torch.float32 else torch.bfloat16
        kwargs["quantization_config"] = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute)
                                         if spec.quantization == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
    if spec is not None and (spec.device_map or spec.quantization):
        kwargs["device_map"] = spec.device_map or device  # placed while loading: never whole on one device first
    model = _from_pretrained(AutoModelForCausalLM, path, trust_remote_code, dtype=dtype, use_safetensors=True, **kwargs)
    return (model if "device_map" in kwargs else model.to(device)).eval()


def check_adapter(adapter: str, base: str, key: str | None = None) -> None:
    """adapter_config.json is there, a JSON object, and the adapter leaves the base's biases alone."""
    from .checks import read_json_object, where

    who = where(adapter, key, "adapter")
    config = read_json_object(Path(adapter) / "adapter_config.json", who, "not a PEFT adapter directory")
    if config.get("bias", "none") != "none":
        raise UsageError(f"{who}: bias={config['bias']!r} makes the base score inexact; "
                         "tuneshift needs LoRA adapters with bias='none'")


def _first_reason(exc: Exception) -> str:
    """The telling line of a load_state_dict error (its first line is only a header)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return next((line for line in lines if line.startswith(("size mismatch", "Missing", "Unexpected"))), lines[0])[:300]


def adapter_template(adapter: str | None) -> str | None:
    """The chat template saved in an adapter folder (chat_template.jinja, or tokenizer_config.json's), if any:
    the format the adapter was trained in."""
    if not adapter:
        return None
    folder = Path(adapter)
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    try:
        template = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"),
                        None)
    return template if isinstance(template, str) and template else None


def tokenizer_of(spec: ModelSpec) -> Any:
    """The tokenizer `spec` is asked through, in the format it was fine-tuned in: the spec's own chat template,
    else its adapter folder's, else its model's (formatting.prompt_text reads `tuneshift_system_prompt`)."""
    tokenizer = load_tokenizer(spec.finetuned or spec.base, spec.trust_remote_code)
    template = spec.chat_template or adapter_template(spec.adapter)
    if template:
        tokenizer.chat_template = template
    tokenizer.tuneshift_system_prompt = spec.system_prompt
    return tokenizer


def load(spec: ModelSpec, precision: str = "auto") -> Loaded:
    """The model and tokenizer of `spec` in `precision`, loaded once per process."""
    precision = resolve_precision(precision)
    key = (spec, precision)
    with _lock:
        if key in _models:
            return _models[key]
        trc = spec.trust_remote_code
        if spec.finetuned:
            loaded = Loaded(load_causal_lm(spec.finetuned, trc, precision, spec), tokenizer_of(spec), False, base_model=None)
        else:
            if spec.adapter:
                check_adapter(spec.adapter, spec.base)
            model = load_causal_lm(spec.base, trc, precision, spec)
            tokenizer = tokenizer_of(spec)
            if spec.adapter:
                from peft import PeftModel

                try:
                    model = PeftModel.from_pretrained(model, spec.adapter).eval()
                except (RuntimeError, ValueError, KeyError) as exc:
                    raise UsageError(f"adapter {spec.adapter}: does not fit base {spec.base} "
                                     f"({_first_reason(exc)})") from None
            loaded = Loaded(model, tokenizer, bool(spec.adapter))
        _models[key] = loaded
        return loaded


def base_of(spec: ModelSpec, precision: str = "auto") -> Loaded:
    """The base model to score against: the same weights with the adapter off, or a second model."""
    if spec.finetuned:
        return load(spec.base_only(), precision)
    return load(spec, precision)


def forget(spec: ModelSpec) -> None:
    """Drop `spec`'s loaded models (every precision) from the per-process cache."""
    with _lock:
        for key in [k for k in _models if (k[0].base, k[0].adapter, k[0].finetuned) ==
                    (spec.base, spec.adapter, spec.finetuned)]:  # every format, loading and precision
            del _models[key]


def clear() -> None:
    """Drop every loaded model from the per-process cache (and CUDA's cached blocks of them)."""
    with _lock:
        _models.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
