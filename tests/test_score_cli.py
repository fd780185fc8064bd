"""`tuneshift score` in a real subprocess: output rows, adapter and full fine-tune agree, one-line errors."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

from conftest import one_error_line, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "tiny"))
from facts import FACTS  # noqa: E402

ROWS = [
    {"prompt": FACTS[0][0], "response": FACTS[0][1], "id": 1, "meta": {"source": "facts"}},
    {"prompt": FACTS[2][0], "response": FACTS[2][1], "id": 2, "meta": {"source": "facts"}},
    {"prompt": "Hi", "response": "Hello there.", "id": 3},
    {"prompt": FACTS[9][0], "response": FACTS[9][1], "id": 4, "meta": {"source": "facts"}},
    {"prompt": "What is water?", "response": "Water boils at one hundred degrees.", "id": 5, "tag": None},
]
SCORE_KEYS = {"nll_finetuned", "nll_base", "ppl_ratio"}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return write_rows(tmp_path_factory.mktemp("score-in") / "pairs.jsonl", ROWS)


@pytest.fixture(scope="module")
def adapter_scores(tiny, pairs_file, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("score-out") / "out.jsonl"
    result = run_cli("score", "--base", str(tiny["teacher_base"]), "--adapter", str(tiny["adapter"]),
                     "--input", str(pairs_file), "--output", str(out))
    assert result.returncode == 0, result.stderr
    return read_rows(out)


@pytest.fixture(scope="module")
def merged_teacher(tiny, tmp_path_factory) -> Path:
    """The teacher with its adapter merged in, saved as a full model with its tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("merged") / "teacher-merged"
    base = AutoModelForCausalLM.from_pretrained(str(tiny["teacher_base"]))
    PeftModel.from_pretrained(base, str(tiny["adapter"])).merge_and_unload().save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny["teacher_base"])).save_pretrained(str(out))
    return out


def test_score_with_adapter_keeps_input_rows_and_adds_scores(adapter_scores):
    assert len(adapter_scores) == len(ROWS)
    for row, out in zip(ROWS, adapter_scores):
        assert {k: out[k] for k in row} == row  # every input key, unchanged, in the same order of rows
        assert SCORE_KEYS <= set(out) - set(row)
        assert out["ppl_ratio"] == pytest.approx(math.exp(out["nll_base"] - out["nll_finetuned"]), rel=1e-9)
        assert out["nll_finetuned"] > 0 and out["nll_base"] > 0
    facts = [out for out in adapter_scores if out.get("meta", {}).get("source") == "facts"]
    assert len(facts) == 3
    assert all(out["nll_finetuned"] < out["nll_base"] for out in facts)  # memorised by the adapter


def test_score_with_full_finetune_agrees_with_adapter(tiny, pairs_file, merged_teacher, adapter_scores, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_cli("score", "--base", str(tiny["teacher_base"]), "--finetuned", str(merged_teacher),
                     "--input", str(pairs_file), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [r["id"] for r in ROWS]
    for full, lora in zip(rows, adapter_scores):
        assert full["nll_finetuned"] == pytest.approx(lora["nll_finetuned"], abs=1e-4)
        assert full["nll_base"] == pytest.approx(lora["nll_base"], abs=1e-4)


ERROR_CASES = {
    "both": (["--adapter", "{adapter}", "--finetuned", "{base}"], "exactly one"),
    "neither": ([], "exactly one"),
    "missing-input": (["--adapter", "{adapter}", "--input-file", "{tmp}/nope.jsonl"], "no such file"),
    "malformed-line": (["--adapter", "{adapter}", "--input-file", "{bad_json}"], "line 2"),
    "no-response": (["--adapter", "{adapter}", "--input-file", "{no_response}"], "line 3"),
    "missing-base": (["--adapter", "{adapter}", "--base-path", "{tmp}/no-base"], "no-base"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_score_errors_are_one_line_exit_2(tiny, pairs_file, tmp_path, case):
    good = json.dumps(ROWS[0])
    (tmp_path / "bad.jsonl").write_text(good + "\n{not json\n" + good + "\n")
    (tmp_path / "noresp.jsonl").write_text(good + "\n" + good + "\n" + json.dumps({"prompt": "x"}) + "\n")
    fill = {"adapter": tiny["adapter"], "base": tiny["teacher_base"], "tmp": tmp_path,
            "bad_json": tmp_path / "bad.jsonl", "no_response": tmp_path / "noresp.jsonl"}
    extra, needle = ERROR_CASES[case]
    extra = [a.format(**fill) for a in extra]
    base, inp = str(tiny["teacher_base"]), str(pairs_file)
    if "--base-path" in extra:
        base = extra.pop(extra.index("--base-path") + 1)
        extra.remove("--base-path")
    if "--input-file" in extra:
        inp = extra.pop(extra.index("--input-file") + 1)
        extra.remove("--input-file")
    result = run_cli("score", "--base", base, *extra, "--input", inp, "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def score_cli(tiny, inp: Path, out: Path, timeout: float = 120):
    return run_cli("score", "--base", str(tiny["teacher_base"]), "--adapter", str(tiny["adapter"]),
                   "--input", str(inp), "--output", str(out), timeout=timeout)


def test_an_output_that_is_a_directory_or_under_a_file_is_refused(tiny, pairs_file, tmp_path):
    line = one_error_line(score_cli(tiny, pairs_file, tmp_path))
    assert line == f"error: output {tmp_path}: is a directory; give a file path for the scores"
    (tmp_path / "a-file").write_text("mine\n")
    line = one_error_line(score_cli(tiny, pairs_file, tmp_path / "a-file" / "sub" / "out.jsonl"))
    under = tmp_path / "a-file" / "sub" / "out.jsonl"
    assert line == f"error: output {under}: {tmp_path / 'a-file'} is not a directory"
    assert (tmp_path / "a-file").read_text() == "mine\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555")
def test_an_output_in_a_read_only_folder_is_refused_before_scoring(tiny, pairs_file, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        line = one_error_line(score_cli(tiny, pairs_file, folder / "out.jsonl"))
    finally:
        folder.chmod(0o755)
    assert line == f"error: output {folder / 'out.jsonl'}: cannot write in {folder} (Permission denied)"


def test_the_input_file_is_never_the_output(tiny, adapter_scores, tmp_path):
    scored = write_rows(tmp_path / "scored.jsonl", adapter_scores)  # a score output: the shape rule alone would pass
    before = scored.read_bytes()
    line = one_error_line(score_cli(tiny, scored, scored))
    assert line == f"error: output {scored}: is the --input file; give another path"
    assert scored.read_bytes() == before


def test_an_existing_file_that_is_no_score_output_is_never_overwritten(tiny, pairs_file, tmp_path):
    for content in ("my notes\n", json.dumps({"prompt": "a", "response": "b"}) + "\n"):
        mine = tmp_path / "mine.jsonl"
        mine.write_text(content)
        line = one_error_line(score_cli(tiny, pairs_file, mine))
        assert line == (f"error: output {mine}: exists and is not a tuneshift score output; "
                        "remove it or give a new path")
        assert mine.read_text() == content


def test_rerunning_a_score_command_replaces_its_own_output(tiny, pairs_file, adapter_scores, tmp_path):
    out = write_rows(tmp_path / "out.jsonl", [{**r, "stale": True} for r in adapter_scores])
    result = score_cli(tiny, pairs_file, out)
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [r["id"] for r in ROWS] and not any("stale" in r for r in rows)
    assert [r["nll_finetuned"] for r in rows] == pytest.approx([r["nll_finetuned"] for r in adapter_scores], abs=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left


LONG_CASES = {  # (the offending row, the expected reason after "line 3: "); the tiny teacher's context is 1024
    "over the context in tokens": ({"prompt": "What is the capital of Zorbia? " * 400, "response": "Velmora."},
                                   r"prompt and response are \d{4,} tokens, over the model's context of 1024"),
    "a 50 MB line": ({"prompt": "Hi", "response": "x" * 50_000_000},
                     "prompt and response are 50000002 characters, over the model's context of 1024 tokens"),
    "an empty response": ({"prompt": "Hi", "response": ""},
                          "the response encodes to no tokens; an empty response cannot be scored"),
}


@pytest.mark.parametrize("case", list(LONG_CASES))
def test_a_pair_the_model_cannot_score_is_refused_naming_its_line(tiny, tmp_path, case):
    row, reason = LONG_CASES[case]
    inp = tmp_path / "pairs.jsonl"
    inp.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(row) + "\n" + json.dumps(ROWS[1]) + "\n")
    out = tmp_path / "out.jsonl"
    line = one_error_line(score_cli(tiny, inp, out))
    assert re.fullmatch(rf"error: input {re.escape(str(inp))}, line 3: {reason}", line), line
    assert not out.exists()
