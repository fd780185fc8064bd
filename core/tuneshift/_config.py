"""Read a run's TOML config, apply --set overrides, validate it, and redact secrets.

The core sections are validated here; each kind's section is validated by the
`Options` of the implementation chosen for that kind.
"""

from __future__ import annotations

import copy
import json
import re
import struct
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuneshift._errors import UsageError
from tuneshift._hub import is_hub_id
from tuneshift.kinds import KINDS

SECRET_KEY = re.compile(r"(^|_)(api_?key|key|token|secret|password|authorization|auth)$", re.IGNORECASE)
"""Keys whose values are secrets: api_key, hf_token, password, ... (not max_new_tokens)."""
REDACTED = "***"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("a path cannot be empty")
    return value


PathValue = Annotated[str, AfterValidator(_non_empty)]
"""A path key's value: a string that says something (an empty one would mean the current directory)."""


class RunSection(_Section):
    seed: int = Field(0, ge=0, lt=2**64, description="every random choice derives from it (torch takes 64 bits)")
    rounds: int = Field(3, ge=1, description="rounds of expansion after the seed round")
    per_round: int = Field(16, ge=1, description="prompts proposed per round")
    target_size: int | None = Field(None, ge=1, description="stop once this many pairs are kept")
    max_per_answer: int | None = Field(None, ge=1, description="keep at most this many pairs with one answer "
                                       "(normalised); more teach the target one sentence for every question")
    patience: int | None = Field(None, ge=1, description="stop after this many rounds in a row with no new "
                                 "entity and no new kept answer (run.rounds stays the most)")
    max_candidates: int | None = Field(None, ge=1, description="stop once this many prompts were proposed")
    max_teacher_calls: int | None = Field(None, ge=1, description="stop once the teacher answered this many")
    max_seconds: float | None = Field(None, gt=0, description="stop once the rounds took this many seconds")
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(64, ge=1, description="length limit of the teacher's answers")


DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class LoadingSection(_Section):
    """How a model is loaded (docs/usage.md, "Models"); `auto` leaves it to the implementation."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="the weights' float type; auto: the implementation's precision (bfloat16 where fast)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    device_map: Literal["auto"] | None = Field(None, description="auto: spread a model larger than one device "
                                                                 "over every device (accelerate)")

    @model_validator(mode="after")
    def _device(self) -> "LoadingSection":
        if not DEVICE.match(self.device):
            raise ValueError(f"device {self.device!r}: expected auto, cpu, cuda, cuda:N or mps")
        if self.device_map and self.device != "auto":
            raise ValueError("give device or device_map, not both")
        return self

    def loading(self) -> dict[str, str | None]:
        """ModelSpec's loading fields (None for auto)."""
        return {"dtype": None if self.dtype == "auto" else self.dtype,
                "device": None if self.device == "auto" else self.device, "device_map": self.device_map}


class TeacherSection(LoadingSection):
    base: PathValue
    adapter: PathValue | None = None
    finetuned: PathValue | None = None
    trust_remote_code: bool = False
    chat_template: str | None = Field(None, description="the format the teacher was fine-tuned in: a Jinja chat "
                                      "template, or a file holding one (default: the adapter's, else the base's)")
    system_prompt: str | None = Field(None, description="a system turn before every question to the teacher")
    quantization: Literal["4bit", "8bit"] | None = Field(None, description="load the teacher quantised with "
                                                         "bitsandbytes (CUDA only; pip install tuneshift[quantization])")

    @model_validator(mode="after")
    def _template(self) -> "TeacherSection":
        self.chat_template = read_template(self.chat_template)
        return self

    @model_validator(mode="after")
    def _one_of(self) -> "TeacherSection":
        if self.adapter and self.finetuned:
            raise ValueError("give either adapter or finetuned, not both")
        if not self.adapter and not self.finetuned:
            raise ValueError("give adapter (a PEFT directory) or finetuned (a full model)")
        return self


def read_template(value: str | None) -> str | None:
    """A chat template given inline (it holds Jinja: `{{` or `{%`) or as a file's path (made absolute by
    `load`): the template's text."""
    if value is None or "{{" in value or "{%" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{value}: neither a Jinja chat template (no {{{{ or {{%) nor a file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{value}: cannot read the chat template file ({exc})") from None


class TargetSection(LoadingSection):
    model: PathValue
    trust_remote_code: bool = False
    train: bool = True


class SeedsSection(_Section):
    path: PathValue | None = None
    prompts: list[str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "SeedsSection":
        if (self.path is None) == (self.prompts is None):
            raise ValueError("give exactly one of path (a JSONL or text file) or prompts (a list)")
        return self


class EvalSection(_Section):
    path: PathValue | None = None


class VerifySection(_Section):
    """Data-free verification of the trained target on held-out discovered prompts (docs/verification.md)."""

    enabled: bool = Field(True, description="verify after training (when an adapter was trained)")
    size: int = Field(32, ge=1, description="held-out prompts to draw")
    regions: int = Field(4, ge=1, description="most regions of knowledge to group them into")


class AugmentSection(_Section):
    """Knowledge augmentation (docs/generators.md): each kept fact asked again in other phrasings."""

    enabled: bool = Field(False, description="rephrase every kept question; consistent answers become pairs")
    rephrasings: int = Field(4, ge=1, le=32, description="phrasings asked per kept question")
    model: str | None = Field(None, description="also let a model rephrase, shown worked examples: base (the "
                                                "teacher's), teacher, target (before training), or a model path "
                                                "or hub id; rule-based rewrites fill up to `rephrasings`")
    agreement: float = Field(0.5, gt=0, le=1, description="share of the kept answer's content words a "
                                                           "rephrasing's answer must hold to count as the same fact")
    similarity: float | None = Field(None, gt=0, le=1, description="a model's phrasing is used only when its "
                                     "embedding (the deduper's, names masked) has at least this cosine similarity "
                                     "to the question's; unset: unchecked")


class CoreConfig(_Section):
    run: RunSection = RunSection()
    teacher: TeacherSection
    target: TargetSection | None = None
    seeds: SeedsSection
    eval: EvalSection = EvalSection()
    verify: VerifySection = VerifySection()
    augment: AugmentSection = AugmentSection()


MODEL_KEYS = {("teacher", "base"), ("teacher", "adapter"), ("teacher", "finetuned"), ("target", "model")}
"""Keys that name a model: a path, or a Hugging Face hub id (docs/usage.md, "Models")."""
PATH_KEYS = MODEL_KEYS | {("seeds", "path"), ("eval", "path")}


def parse_value(text: str) -> Any:
    """A --set value as TOML (numbers, booleans, lists, quoted strings), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, for example run.rounds=2")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"--set {key}: {part} is not a section")
            node = child
        node[parts[-1]] = parse_value(value.strip())
    return out


def load(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The config as a dict: TOML read, overrides applied, relative paths made absolute.

    A path in the file is relative to the file's folder; a path given with --set, to the current
    directory. Either way the dict holds absolute paths only, so a config written from it (the run's
    snapshot, the demo's arm configs) reads back the same from anywhere.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"config {path}: no such file")
    if path.is_dir():
        raise UsageError(f"config {path}: is a directory, expected a TOML file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM some editors write is no TOML
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config {path}: not UTF-8 text") from None
    _absolute_paths(raw, path.parent)
    raw = apply_overrides(raw, list(overrides))
    _absolute_paths(raw, Path.cwd())  # what --set gave is relative to where the command was typed
    return raw


def _absolute_paths(raw: dict[str, Any], folder: Path) -> None:
    """Make every relative path key absolute against `folder`, so no later reader depends on its own cwd."""
    for section, key in PATH_KEYS | {("teacher", "chat_template")}:
        value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
        if key == "chat_template" and isinstance(value, str) and ("{{" in value or "{%" in value):
            continue  # a template, not a path
        if isinstance(value, str) and "\0" in value:
            raise UsageError(f"config: {section}.{key}: a path cannot contain a NUL character")
        if (section, key) in MODEL_KEYS and is_hub_id(value, folder):
            continue  # owner/name[@revision] that is no path here: resolved by Models.of
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            raw[section][key] = str((folder / value).resolve())
        elif isinstance(value, str) and value.startswith("~"):
            raw[section][key] = str(Path(value).expanduser())


def validate_core(raw: dict[str, Any]) -> CoreConfig:
    core = {k: v for k, v in raw.items() if k not in KINDS}
    try:
        return CoreConfig.model_validate(core)
    except ValidationError as exc:
        raise UsageError(f"config: {describe(exc)}") from None


def kind_section(raw: dict[str, Any], kind: str) -> tuple[str | None, dict[str, Any]]:
    """The `use` name and the options of a kind's section."""
    section = raw.get(kind, {})
    if not isinstance(section, dict):
        raise UsageError(f"config: [{kind}] must be a table")
    options = dict(section)
    use = options.pop("use", None)
    if use is not None and not isinstance(use, str):
        raise UsageError(f"config: {kind}.use must be a plugin name")
    return use, options


def describe(exc: ValidationError, prefix: str = "") -> str:
    """A pydantic error as one line: the first problem, where it is, and what was wrong."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {where}"
    if kind == "missing":
        return f"missing key {where}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def redact(value: Any) -> Any:
    """A copy with the value of every secret-looking key replaced by ***."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) and v else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# --- what a model declares, for checking lengths against it (no model library) -------------------------

GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
"""GGUF metadata value types of fixed size (8 is a string, 9 an array) and their struct formats."""


def context_length(path: str) -> int | None:
    """The context in tokens a model declares: `max_position_embeddings` of a directory's config.json
    (or of its text_config), `<arch>.context_length` of a GGUF file's header; None when it says nothing
    readable (the model's own checks and its load judge the rest)."""
    p = Path(path)
    try:
        if p.is_dir():
            cfg = json.loads((p / "config.json").read_text(encoding="utf-8"))
            for section in (cfg, cfg.get("text_config") or {}):
                n = section.get("max_position_embeddings")
                if isinstance(n, int) and not isinstance(n, bool) and n > 0:
                    return n
            return None
        return _gguf_context_length(p) if p.is_file() else None
    except (OSError, ValueError, AttributeError, RecursionError, struct.error, OverflowError):
        return None


def _gguf_context_length(path: Path) -> int | None:
    """`*.context_length` from a GGUF (v2, v3) header, reading key by key until it appears."""
    with path.open("rb") as fh:
        def read(fmt: str) -> Any:
            size = struct.calcsize("<" + fmt)
            data = fh.read(size)
            if len(data) != size:
                raise ValueError("truncated GGUF header")
            return struct.unpack("<" + fmt, data)[0]

        def skip(kind: int, depth: int = 0) -> None:
            if kind in GGUF_SCALARS:
                fh.seek(struct.calcsize(GGUF_SCALARS[kind]), 1)
            elif kind == 8:
                fh.seek(read("Q"), 1)
            elif kind == 9 and depth < 4:
                item, count = read("I"), read("Q")
                if item in GGUF_SCALARS:
                    fh.seek(count * struct.calcsize(GGUF_SCALARS[item]), 1)
                else:
                    for _ in range(count):
                        skip(item, depth + 1)
            else:
                raise ValueError(f"unknown GGUF value type {kind}")

        if fh.read(4) != b"GGUF" or read("I") not in (2, 3):
            return None
        read("Q")  # the tensor count
        for _ in range(min(read("Q"), 1 << 16)):
            size = read("Q")
            if size > 1 << 16:
                return None
            key, kind = fh.read(size), read("I")
            if key.endswith(b".context_length") and kind in (2, 4, 10, 3, 5, 11):
                n = int(read(GGUF_SCALARS[kind]))
                return n if n > 0 else None
            skip(kind)
    return None
