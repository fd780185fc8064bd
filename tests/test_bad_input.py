"""Every bad input of docs/reliability.md: exit code, one `error:` line, no traceback, nothing half-written.

One table row per case: how to break the tiny example, the exit code (2: bad input, nothing ran;
1: a failure at run time, the work done so far stays on disk) and a fragment of the message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import BROKEN_PLUGIN, OLD_API_PLUGIN, TINY, run_cli, tiny_overrides
from fake_llm import FakeLLM, closed_port
from tuneshift import _cli as cli

GOOD = (TINY / "config.toml").read_text()


@dataclass
class Job:
    """One broken `tuneshift run`: the config text, extra arguments, environment, where it writes."""

    tmp: Path
    tiny: dict[str, Path]
    config: str = GOOD
    config_path: Path | None = None
    before: list[str] = field(default_factory=list)  # arguments before `run`
    sets: dict[str, object] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)  # arguments after the overrides
    out: Path | None = None
    server: FakeLLM | None = None

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def plugin_module(self, name: str, source: str) -> None:
        self.file(f"plugins/{name}.py", source)
        self.env.update(PYTHONPATH=str(self.tmp / "plugins"), TUNESHIFT_PLUGINS=name)

    def litellm(self, url: str, **options: object) -> None:
        self.before += ["--plugin", "litellm-paraphrase"]
        self.sets.update({"run.rounds": 1, "expander.model": "openai/ft", "expander.api_base": url,
                          "expander.retries": 1, "expander.backoff": 0.1, "expander.timeout": 2, **options})
        self.env["OPENAI_API_KEY"] = "sk-unused"  # also makes the job run in its own process

    def argv(self) -> list[str]:
        """The command line; a key set to None is left out of the tiny example's overrides."""
        config = self.config_path or self.file("config.toml", self.config)
        sets = tiny_overrides(self.tiny, **{k: v for k, v in self.sets.items() if v is not None})
        dropped = {k for k, v in self.sets.items() if v is None}
        pairs = [(sets[i], sets[i + 1]) for i in range(0, len(sets), 2)
                 if sets[i + 1].split("=", 1)[0] not in dropped]
        return [*self.before, "run", str(config), "--out", str(self.out or self.tmp / "out"),
                *(arg for pair in pairs for arg in pair), *self.extra]


Setup = Callable[[Job], None]
CASES: dict[str, tuple[Setup, int, str]] = {}


def case(name: str, code: int, fragment: str) -> Callable[[Setup], Setup]:
    def register(setup: Setup) -> Setup:
        CASES[name] = (setup, code, fragment)
        return setup
    return register


# --- the config ------------------------------------------------------------------------------------------

case("missing config", 2, "nope.toml: no such file")(lambda j: setattr(j, "config_path", j.tmp / "nope.toml"))
case("config is a directory", 2, "is a directory")(lambda j: setattr(j, "config_path", j.tmp))
case("TOML syntax error", 2, "TOML syntax error")(lambda j: setattr(j, "config", "[run\nseed = 1"))
case("config not UTF-8", 2, "not UTF-8")(lambda j: setattr(j, "config_path", j.file("c.toml", b"\xff\xfe[run]")))
case("unknown section", 2, "unknown key bogus")(lambda j: setattr(j, "config", GOOD + "\n[bogus]\nx = 1\n"))
case("unknown key", 2, "unknown key run.colour")(lambda j: j.sets.update({"run.colour": 1}))
case("unknown plugin option", 2, "unknown key selector.bogus")(lambda j: j.sets.update({"selector.bogus": 1}))
case("wrong type", 2, "run.rounds: Input should be a valid integer")(lambda j: j.sets.update({"run.rounds": "two"}))
case("section of wrong type", 2, "[selector] must be a table")(lambda j: j.sets.update({"selector": 3}))
case("threshold out of range", 2, "selector: threshold -1.0 is out of range")(
    lambda j: j.sets.update({"selector.threshold": -1}))
case("zero rounds", 2, "run.rounds: Input should be greater than or equal to 1")(
    lambda j: j.sets.update({"run.rounds": 0}))
case("target size below the seeds", 2, "smaller than the number of seeds")(
    lambda j: j.sets.update({"run.target_size": 2}))
case("malformed --set", 2, "expected KEY=VALUE")(lambda j: j.extra.extend(["--set", "nonsense"]))
case("NaN threshold", 2, "config: selector.threshold: Input should be a finite number (for plugin ppl-ratio)")(
    lambda j: j.extra.extend(["--set", "selector.threshold=nan"]))
case("infinite option", 2, "config: expander.temperature: Input should be a finite number (for plugin self-generate)")(
    lambda j: j.extra.extend(["--set", "expander.temperature=inf"]))
case("seed of 2**64", 2, "config: run.seed: Input should be less than 18446744073709551616")(
    lambda j: j.sets.update({"run.seed": 2**64}))
case("negative seed", 2, "config: run.seed: Input should be greater than or equal to 0")(
    lambda j: j.sets.update({"run.seed": -1}))
case("max_new_tokens beyond the context", 2, "config: run.max_new_tokens = 1024 leaves no room for a prompt in "
     "the context of teacher.base = …/teacher-base (1024 tokens); lower it")(
    lambda j: j.sets.update({"run.max_new_tokens": 1024}))
case("expander max_new_tokens beyond the context", 2, "config: expander.max_new_tokens = 4096 leaves no room for "
     "the request in the context of the expander's model …/teacher-base (1024 tokens); lower it")(
    lambda j: j.sets.update({"expander.max_new_tokens": 4096}))


# --- plugins ---------------------------------------------------------------------------------------------

case("unknown plugin", 2, "--plugin no-such-thing: no such plugin")(
    lambda j: j.before.extend(["--plugin", "no-such-thing"]))
case("unknown plugin in the config", 2, "expander.use = self-generat: no such plugin; did you mean self-generate")(
    lambda j: j.sets.update({"expander.use": "self-generat"}))


@case("plugin that fails to import", 2, "plugin 'ts_broken' cannot be used: error: ImportError: this plugin is")
def _broken(j: Job) -> None:
    j.plugin_module("ts_broken", BROKEN_PLUGIN)
    j.before += ["--plugin", "ts_broken"]


@case("plugin of another API version", 2, "written for plugin API 0, this tuneshift speaks 2")
def _old_api(j: Job) -> None:
    j.plugin_module("ts_old", OLD_API_PLUGIN)
    j.sets["deduper.use"] = "old-dedup"


# --- seeds and eval --------------------------------------------------------------------------------------

case("empty seeds file", 2, "no seed prompts")(lambda j: j.sets.update({"seeds.path": j.file("s.jsonl", "")}))
case("malformed seeds line", 2, "s.jsonl, line 2: not valid JSON")(
    lambda j: j.sets.update({"seeds.path": j.file("s.jsonl", '{"prompt": "ok"}\n{"prompt": broken\n')}))
case("seed of the wrong type", 2, "s.jsonl, line 1: 'prompt' is int, expected a string")(
    lambda j: j.sets.update({"seeds.path": j.file("s.jsonl", '{"prompt": 3}\n')}))
case("seeds.prompts of the wrong type", 2, "seeds.prompts: Input should be a valid list")(
    lambda j: j.sets.update({"seeds.path": None, "seeds.prompts": 3}))
case("missing seeds file", 2, "no such file")(lambda j: j.sets.update({"seeds.path": str(j.tmp / "none.jsonl")}))
case("malformed eval line", 2, "e.jsonl, line 1: expected an object with string 'prompt' and 'answer'")(
    lambda j: j.sets.update({"eval.path": j.file("e.jsonl", '{"prompt": "q"}\n')}))
case("lone surrogate in a seed", 2, "s.jsonl, line 2: a lone surrogate \\ud800 in a string; text must be valid Unicode")(
    lambda j: j.sets.update({"seeds.path": j.file("s.jsonl", '{"prompt": "ok"}\r\n{"prompt": "bad \\ud800"}\r\n')}))
case("lone surrogate in the eval file", 2, "e.jsonl, line 1: a lone surrogate \\udc00 in a string")(
    lambda j: j.sets.update({"eval.path": j.file("e.jsonl", '{"prompt": "q \\udc00", "answer": "a"}\n')}))
case("seeds not UTF-8", 2, "s.txt, line 2: not UTF-8 text (byte 3)")(
    lambda j: j.sets.update({"seeds.path": j.file("s.txt", b"\xef\xbb\xbfok\r\nno\xff\r\n")}))


# --- models ----------------------------------------------------------------------------------------------

case("missing model path", 2, "teacher.base = ")(lambda j: j.sets.update({"teacher.base": str(j.tmp / "gone")}))
case("empty teacher.base", 2, "config: teacher.base: a path cannot be empty")(
    lambda j: j.sets.update({"teacher.base": ""}))
case("empty target.model", 2, "config: target.model: a path cannot be empty")(
    lambda j: j.sets.update({"target.model": ""}))
case("missing expander model", 2, "config: expander.model = …/gone: no such file or directory (give teacher, base, "
     "a model directory or a hub id)")(
    lambda j: j.sets.update({"expander.model": str(j.tmp / "gone")}))
case("empty expander model", 2, "config: expander.model: empty; give teacher, base or a model directory")(
    lambda j: j.sets.update({"expander.model": ""}))
case(".gguf that is not GGUF", 2, "not a GGUF file (bad magic bytes)")(
    lambda j: j.sets.update({"target.model": j.file("m.gguf", b"\x00junk, not a model" * 8)}))
case("adapter for another base model", 2, "does not fit base")(
    lambda j: j.sets.update({"teacher.base": str(j.tiny["target"])}))
case("adapter directory without adapter_config.json", 2, "no adapter_config.json")(
    lambda j: j.sets.update({"teacher.adapter": str(j.tmp)}))


def _broken_model(kind: str, name: str, remove: tuple[str, ...] = (), **files: str) -> Setup:
    """The tiny `kind` model ("teacher_base", "target", "adapter") copied with files removed or replaced."""
    key = {"teacher_base": "teacher.base", "target": "target.model", "adapter": "teacher.adapter"}[kind]

    def setup(j: Job) -> None:
        model = j.tmp / name
        shutil.copytree(j.tiny[kind], model)
        for pattern in remove:
            for f in model.glob(pattern):
                f.unlink()
        for file, text in files.items():
            (model / file.replace("__", ".")).write_text(text)
        j.sets[key] = str(model)
    return setup


NO_TOKENIZER = ("tokenizer*", "special_tokens_map.json", "chat_template.*", "vocab*", "merges.txt")
case("base model without config.json", 2, "config: teacher.base = …/no-config: no config.json (not a transformers "
     "model directory; give a model directory or a .gguf file)")(
    _broken_model("teacher_base", "no-config", ("config.json",)))
case("unparsable config.json of the target", 2, "config: target.model = …/bad-config: config.json is not valid "
     "JSON (Expecting property name enclosed in double quotes at line 1, column 2)")(
    _broken_model("target", "bad-config", config__json="{oops"))
case("unparsable config.json of the teacher base", 2, "config: teacher.base = …/bad-config: config.json is not "
     "valid JSON (Expecting property name enclosed in double quotes at line 1, column 24)")(
    _broken_model("teacher_base", "bad-config", config__json='{"model_type": "llama",'))
case("adapter_config.json not JSON", 2, "config: teacher.adapter = …/bad-adapter: adapter_config.json is not "
     "valid JSON (Expecting value at line 1, column 1)")(
    _broken_model("adapter", "bad-adapter", adapter_config__json="not json"))
case("adapter_config.json not an object", 2, "config: teacher.adapter = …/list-adapter: adapter_config.json is "
     "not a JSON object (it holds a list)")(_broken_model("adapter", "list-adapter", adapter_config__json="[1, 2]"))
case("target without a tokenizer", 2, "config: target.model = …/no-tokenizer: no tokenizer (no tokenizer.json, "
     "tokenizer_config.json or vocabulary file); save the model's tokenizer into the directory")(
    _broken_model("target", "no-tokenizer", NO_TOKENIZER))
case("teacher base without a tokenizer", 2, "config: teacher.base = …/no-tokenizer: no tokenizer")(
    _broken_model("teacher_base", "no-tokenizer", NO_TOKENIZER))


@case("pickle-only model directory", 2, "no .safetensors weights (found pytorch_model.bin)")
def _pickled(j: Job) -> None:
    pickled = j.tmp / "pickled"
    shutil.copytree(j.tiny["target"], pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    j.sets["target.model"] = str(pickled)


# --- the output directory --------------------------------------------------------------------------------

case("output directory that is a file", 2, "exists and is not a directory")(
    lambda j: setattr(j, "out", j.file("out-file", "precious")))


def _damaged_run(j: Job, state_file: str, content: str = '{"fingerprint": "abc"') -> None:
    """A run directory whose `state_file` a crash or a hand edit left as no JSON (its lock names this
    process, which takes it again: the directory stays byte for byte as it was)."""
    j.file("out/.tuneshift", '{"kind": "run"}\n')
    j.file("out/.lock", str(os.getpid()))
    j.file(f"out/{state_file}", content)


case("corrupt state/job.json", 2, "state file …/out/state/job.json: not valid JSON (Expecting ',' delimiter at line 1, "
     "column 22); remove the directory or use a new --out")(lambda j: _damaged_run(j, "state/job.json"))
case("state/job.json that is not an object", 2, "state file …/out/state/job.json: not a JSON object; remove the "
     "directory or use a new --out")(lambda j: _damaged_run(j, "state/job.json", "[1, 2]\n"))


# --- the generator server --------------------------------------------------------------------------------

case("generator server refusing connections", 1, "failed after 1 retries: litellm.InternalServerError: "
     "InternalServerError: OpenAIException - Connection error.")(
    lambda j: j.litellm(f"http://127.0.0.1:{closed_port()}/v1"))


@case("API key variable not set", 2, "expander.api_key_env: the environment variable TS_NOT_SET is not set")
def _no_key(j: Job) -> None:
    j.litellm(f"http://127.0.0.1:{closed_port()}/v1", **{"expander.api_key_env": "TS_NOT_SET"})


def _with_server(mode: str, **server: object) -> Setup:
    def setup(j: Job) -> None:
        j.server = FakeLLM(mode, **server).__enter__()  # stopped by the test
        j.litellm(j.server.url, **{"expander.timeout": 1})
    return setup


case("generator server returning garbage JSON", 1, "failed after 1 retries")(_with_server("garbage"))
case("generator server timing out", 1, "failed after 1 retries: litellm.Timeout")(_with_server("sleep", delay=3))


def out_state(path: Path) -> dict[str, bytes] | None:
    """Every file under `path` with its bytes (None: there is no such directory)."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def run_job(job: Job, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr: in-process when the job needs no environment of its own (no import costs)."""
    if job.env:
        result = run_cli(*job.argv(), env={"OMP_NUM_THREADS": "1", **job.env})
        return result.returncode, result.stderr
    capsys.readouterr()
    code = cli.main(job.argv())
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, tiny, tmp_path, capsys):
    setup, code, fragment = CASES[name]
    job = Job(tmp_path, tiny)
    setup(job)
    out = job.out or tmp_path / "out"
    before = out_state(out)
    try:
        returncode, stderr = run_job(job, capsys)
    finally:
        if job.server is not None:
            job.server.stop()
    assert returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr[-3000:]
    assert re.search(".*".join(map(re.escape, fragment.split("…"))), errors[0]), errors[0]  # …: any path
    if code == 2:  # refused before the run: the output directory is as it was (absent, or untouched)
        assert out_state(out) == before
    else:  # failed while running: what was finished is on disk, whole
        candidates = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
        assert [c["id"] for c in candidates] == list(range(len(candidates))) and candidates
        assert json.loads((out / "run.json").read_text())["status"] == "failed"
        assert not [p for p in out.rglob(".*") if p.name not in (".lock", ".tuneshift")]


def test_a_damaged_stage_checkpoint_is_one_line_naming_it(tiny, tmp_path, capsys):
    """A stage file found damaged on resuming: one line naming it, exit 2, the file left as it was (the run
    stops before its first stage; run.json records the failure)."""
    job = Job(tmp_path, tiny)
    _damaged_run(job, "state/round-000/expand.json")
    damaged = tmp_path / "out" / "state" / "round-000" / "expand.json"
    before = damaged.read_bytes()
    returncode, stderr = run_job(job, capsys)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert returncode == 2 and "Traceback" not in stderr, stderr[-3000:]
    assert errors == [f"error: state file {damaged}: not valid JSON (Expecting ',' delimiter at line 1, column 22); "
                      "remove the directory or use a new --out"], stderr[-3000:]
    assert damaged.read_bytes() == before and not (tmp_path / "out" / "candidates.jsonl").exists()
