"""Cheap checks of model files before a run starts: file headers only, no weights loaded.

A bad model (a pickle-only checkpoint, an adapter trained on another base) is
found here, before the run directory is touched, instead of minutes later when
the model loads. Checks that cannot decide say nothing: loading stays the judge.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from tuneshift.api import ModelSpec, UsageError

from .loading import _check_path, check_loading, is_gguf

TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")
"""Any one of them: the directory has a tokenizer of some kind (loading it decides whether it is whole)."""
ROLE_KEYS = {"teacher": ("teacher.base", "teacher.finetuned", "teacher.adapter"), "target": ("target.model", None, None)}
"""The config keys of a spec's base, finetuned and adapter, named in the messages about them."""


def where(path: str, key: str | None, noun: str = "model") -> str:
    """How a message names a model: by its config key when known."""
    return f"config: {key} = {path}" if key else f"{noun} {path}"


def check_model_dir(path: str, key: str | None = None) -> None:
    """A model directory holds a config.json that is a JSON object, safetensors weights (pickled ones,
    .bin or .pt, are never loaded) and a tokenizer."""
    p = Path(path)
    if not p.is_dir():
        return
    read_json_object(p / "config.json", where(path, key), "not a transformers model directory; give a model "
                     "directory or a .gguf file")
    if not any(p.glob("*.safetensors")):
        pickled = sorted(f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        found = f" (found {', '.join(pickled[:3])})" if pickled else ""
        raise UsageError(f"{where(path, key)}: no .safetensors weights{found}; tuneshift loads safetensors only, "
                         "convert the checkpoint first")
    if not any((p / name).is_file() for name in TOKENIZER_FILES) and not any(p.glob("*.tiktoken")):
        raise UsageError(f"{where(path, key)}: no tokenizer (no tokenizer.json, tokenizer_config.json or "
                         "vocabulary file); save the model's tokenizer into the directory")


def read_json_object(file: Path, who: str, missing: str) -> dict:
    """A model's JSON file (config.json, adapter_config.json) as a dict, or a UsageError naming it."""
    if not file.is_file():
        raise UsageError(f"{who}: no {file.name} ({missing})")
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{who}: {file.name} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None
    except (UnicodeDecodeError, RecursionError):
        raise UsageError(f"{who}: {file.name} is not valid JSON (not UTF-8 text, or nested too deeply)") from None
    except OSError as exc:
        raise UsageError(f"{who}: cannot read {file.name} ({exc.strerror or exc})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{who}: {file.name} is not a JSON object (it holds a {type(value).__name__})")
    return value


def _shapes(files: list[Path]) -> dict[str, list[int]]:
    """Tensor name -> shape, read from the safetensors headers only."""
    from safetensors import SafetensorError, safe_open

    out: dict[str, list[int]] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                out.update({k: list(fh.get_slice(k).get_shape()) for k in fh.keys()})  # noqa: SIM118
        except (SafetensorError, OSError) as exc:  # a damaged or truncated header
            raise UsageError(f"model file {f}: not a readable safetensors file ({str(exc)[:200]})") from None
    return out


def check_adapter_fits(adapter: str, base: str) -> None:
    """Each LoRA pair's shapes must match the base weight it adapts (either orientation: Conv1D)."""
    weights = Path(adapter) / "adapter_model.safetensors"
    if not weights.is_file():
        raise UsageError(f"adapter {adapter}: no adapter_model.safetensors; tuneshift loads safetensors only")
    if not Path(base).is_dir() or _quantized(base):  # a .gguf or packed base: shapes show only once loaded
        return
    lora = _shapes([weights])
    base_shapes = _shapes(sorted(Path(base).glob("*.safetensors")))
    for key, a_shape in lora.items():
        if not key.endswith(".lora_A.weight") or len(a_shape) != 2:
            continue
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        b_shape = lora.get(key.replace(".lora_A.", ".lora_B."))
        target = base_shapes.get(f"{module}.weight")
        if b_shape is None or target is None or len(target) != 2:
            continue  # a layout this check does not know: the load decides
        wanted = [b_shape[0], a_shape[1]]  # (out, in)
        if target not in (wanted, wanted[::-1]):
            raise UsageError(f"adapter {adapter}: does not fit base {base} ({module}: the adapter expects "
                             f"{wanted[0]}x{wanted[1]}, the base has {target[0]}x{target[1]}); "
                             "was it trained on another base model?")


def _quantized(model_dir: str) -> bool:
    try:
        return "quantization_config" in json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def has_chat_template(path: str) -> bool | None:
    """Whether a model directory's tokenizer has a chat template (None: cannot tell without loading)."""
    p = Path(path)
    if not p.is_dir():
        return None
    if any((p / name).is_file() for name in TEMPLATE_FILES):
        return True
    try:
        return bool(json.loads((p / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return None


def check_spec(spec: ModelSpec, warn_no_template: bool = False, role: str | None = None) -> None:
    """Every file of `spec` exists and has the right format; an adapter fits its base. `role` ("teacher",
    "target") names the config keys in the messages."""
    base_key, finetuned_key, adapter_key = ROLE_KEYS.get(role or "", (None, None, None))
    for path, key in ((spec.base, base_key), (spec.finetuned, finetuned_key)):
        if path:
            _check_path(path)
            if not is_gguf(path):  # a .gguf holds its own config and tokenizer
                check_model_dir(path, key)
    if spec.adapter:
        from .loading import check_adapter

        check_adapter(spec.adapter, spec.base, adapter_key)
        check_adapter_fits(spec.adapter, spec.base)
    check_loading(spec, role)
    tokenizer_of = spec.finetuned or spec.base
    if warn_no_template and has_chat_template(tokenizer_of) is False:
        warnings.warn(f"model {tokenizer_of}: its tokenizer has no chat template; prompts use the plain "
                      "'Question: ... Answer:' format", stacklevel=2)
