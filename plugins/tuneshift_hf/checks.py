"""Cheap checks of model files before a run starts: file headers only, no weights loaded.

A bad model (a pickle-only checkpoint, an adapter trained on another base) is
found here, before the run directory is touched, instead of minutes later when
the model loads. Checks that cannot decide say nothing: loading stays the judge.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from tuneshift.errors import UsageError
from tuneshift.kinds import ModelSpec

from .loading import _check_path, is_gguf

TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def check_model_dir(path: str) -> None:
    """A model directory must hold safetensors weights: pickled ones (.bin, .pt) are never loaded."""
    p = Path(path)
    if p.is_dir() and not any(p.glob("*.safetensors")):
        pickled = sorted(f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        found = f" (found {', '.join(pickled[:3])})" if pickled else ""
        raise UsageError(f"model {path}: no .safetensors weights{found}; tuneshift loads safetensors only, "
                         "convert the checkpoint first")


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


def check_spec(spec: ModelSpec, warn_no_template: bool = False) -> None:
    """Every file of `spec` exists and has the right format; an adapter fits its base."""
    for path in (spec.base, spec.finetuned):
        if path:
            _check_path(path)
            if not is_gguf(path):
                check_model_dir(path)
    if spec.adapter:
        from .loading import check_adapter

        check_adapter(spec.adapter, spec.base)
        check_adapter_fits(spec.adapter, spec.base)
    tokenizer_of = spec.finetuned or spec.base
    if warn_no_template and has_chat_template(tokenizer_of) is False:
        warnings.warn(f"model {tokenizer_of}: its tokenizer has no chat template; prompts use the plain "
                      "'Question: ... Answer:' format", stacklevel=2)
