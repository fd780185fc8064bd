"""Load models and tokenizers from local directories, .gguf files and PEFT adapters.

Loaded models are kept per process, so the answerer and the scorer of one
run share one copy of the teacher's weights.
"""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from tuneshift.errors import UsageError
from tuneshift.kinds import ModelSpec

hf_logging.disable_progress_bar()  # tuneshift shows its own progress

_models: dict[tuple, "Loaded"] = {}
_lock = threading.Lock()


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    has_adapter: bool
    base_model: Any = None  # a second model for a full fine-tune's base

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def pick_device_dtype() -> tuple[str, torch.dtype]:
    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def _from_pretrained(cls: Any, path: str, trust_remote_code: bool, **kwargs: Any) -> Any:
    """cls.from_pretrained for a directory (safetensors only) or a .gguf file."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"model {path}: no such file or directory")
    if trust_remote_code:
        warnings.warn(f"model {path}: trust_remote_code is on: its repository code will run", stacklevel=2)
    if p.suffix == ".gguf":
        with p.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise UsageError(f"model {path}: not a GGUF file (bad magic bytes)")
        return cls.from_pretrained(str(p.parent), gguf_file=p.name, trust_remote_code=trust_remote_code, **kwargs)
    return cls.from_pretrained(str(p), trust_remote_code=trust_remote_code, **kwargs)


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

    cls = PreTrainedTokenizerFast if _declares_generic_tokenizer(path) else AutoTokenizer
    tok = _from_pretrained(cls, path, trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoModelForCausalLM

    device, dtype = pick_device_dtype()
    kwargs = {} if path.endswith(".gguf") else {"use_safetensors": True}
    model = _from_pretrained(AutoModelForCausalLM, path, trust_remote_code, dtype=dtype, **kwargs)
    return model.to(device).eval()


def check_adapter(adapter: str, base: str) -> None:
    config_file = Path(adapter) / "adapter_config.json"
    if not config_file.is_file():
        raise UsageError(f"adapter {adapter}: no adapter_config.json (not a PEFT adapter directory)")
    config = json.loads(config_file.read_text())
    if config.get("bias", "none") != "none":
        raise UsageError(f"adapter {adapter}: bias={config['bias']!r} makes the base score inexact; "
                         "tuneshift needs LoRA adapters with bias='none'")


def _first_reason(exc: Exception) -> str:
    """The telling line of a load_state_dict error (its first line is only a header)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return next((line for line in lines if line.startswith(("size mismatch", "Missing", "Unexpected"))), lines[0])[:300]


def load(spec: ModelSpec) -> Loaded:
    """The model and tokenizer of `spec`, loaded once per process."""
    key = (spec.base, spec.adapter, spec.finetuned)
    with _lock:
        if key in _models:
            return _models[key]
        trc = spec.trust_remote_code
        if spec.finetuned:
            loaded = Loaded(load_causal_lm(spec.finetuned, trc), load_tokenizer(spec.finetuned, trc), False,
                            base_model=None)
        else:
            if spec.adapter:
                check_adapter(spec.adapter, spec.base)
            model = load_causal_lm(spec.base, trc)
            tokenizer = load_tokenizer(spec.base, trc)
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


def base_of(spec: ModelSpec) -> Loaded:
    """The base model to score against: the same weights with the adapter off, or a second model."""
    if spec.finetuned:
        return load(ModelSpec(base=spec.base, trust_remote_code=spec.trust_remote_code))
    return load(spec)


def forget(spec: ModelSpec) -> None:
    """Drop `spec`'s loaded model from the per-process cache."""
    with _lock:
        _models.pop((spec.base, spec.adapter, spec.finetuned), None)


def clear() -> None:
    """Drop every loaded model from the per-process cache."""
    with _lock:
        _models.clear()
