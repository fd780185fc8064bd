"""dataset.jsonl in the ecosystem's shapes, and `tuneshift export` to jsonl, parquet and a datasets dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import one_error_line, run_cli


@pytest.fixture(scope="module")
def run_dir(finished_run) -> Path:
    return finished_run


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dataset_rows_carry_completion_and_messages_with_one_set_of_keys(run_dir):
    rows = lines(run_dir / "dataset.jsonl")
    assert rows
    assert len({tuple(row) for row in rows}) == 1  # the same keys, in the same order, in every row
    for row in rows:
        assert row["completion"] == row["response"]
        assert row["messages"] == [{"role": "user", "content": row["prompt"]},
                                   {"role": "assistant", "content": row["response"]}]


def test_datasets_reads_dataset_jsonl_unchanged(run_dir):
    from datasets import load_dataset

    data = load_dataset("json", data_files=str(run_dir / "dataset.jsonl"), split="train")
    assert data.num_rows == len(lines(run_dir / "dataset.jsonl"))
    assert {"prompt", "completion", "messages"} <= set(data.column_names)  # what TRL's SFTTrainer reads
    assert data[0]["messages"][1]["content"] == data[0]["completion"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_export_writes_what_datasets_loads_back(run_dir, tmp_path, fmt):
    from datasets import load_dataset, load_from_disk

    out = tmp_path / f"data.{fmt}"
    result = run_cli("export", str(run_dir), "--format", fmt, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    data = (load_from_disk(str(out)) if fmt == "hf" else
            load_dataset("json" if fmt == "jsonl" else "parquet", data_files=str(out), split="train"))
    expected = lines(run_dir / "dataset.jsonl")
    assert data.num_rows == len(expected) > 0
    assert data["prompt"] == [r["prompt"] for r in expected] and data["completion"] == [r["response"] for r in expected]
    if fmt != "jsonl":
        assert str(data.features["nll_base"]) == "Value('float64')" and str(data.features["fact"]) == "Value('int64')"


def test_export_declares_types_where_the_first_rows_are_null(tmp_path):
    """A column null in the first tens of thousands of rows and a string later: `datasets`' JSON loader
    infers null from its first block and cannot cast the rest; the export declares every type."""
    from datasets import load_dataset

    run = tmp_path / "run"
    run.mkdir()
    filler = "p" * 300
    rows = [{"id": i, "round": 0, "prompt": f"{filler} {i}", "origin": "seed", "fate": "duplicate", "extra": {}}
            for i in range(40000)]
    rows += [{"id": 40000 + i, "round": 1, "prompt": f"q {i}", "origin": "self", "parent": "p", "response": "a",
              "nll_base": 1.0, "fate": "kept", "dup_of": None, "extra": {"fact": 3}} for i in range(10)]
    (run / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "candidates.parquet"
    result = run_cli("export", str(run), "--format", "parquet", "--out", str(out), "--table", "candidates")
    assert result.returncode == 0, result.stderr[-2000:]
    data = load_dataset("parquet", data_files=str(out), split="train")
    assert data.num_rows == 40010 and data[-1]["parent"] == "p" and json.loads(data[-1]["extra"]) == {"fact": 3}


def test_export_refuses_what_it_does_not_own(run_dir, tmp_path):
    existing = tmp_path / "mine.parquet"
    existing.write_text("a user's file")
    line = one_error_line(run_cli("export", str(run_dir), "--format", "parquet", "--out", str(existing)))
    assert "exists" in line and existing.read_text() == "a user's file"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    line = one_error_line(run_cli("export", str(run_dir), "--format", "hf", "--out", str(folder)))
    assert "not an earlier `tuneshift export" in line and (folder / "notes.txt").read_text() == "keep me"
    line = one_error_line(run_cli("export", str(tmp_path), "--format", "jsonl", "--out", str(tmp_path / "x.jsonl")))
    assert "no dataset.jsonl" in line


def test_an_hf_export_replaces_an_earlier_one(run_dir, tmp_path):
    from datasets import load_from_disk

    out = tmp_path / "hf"
    for _ in range(2):
        result = run_cli("export", str(run_dir), "--format", "hf", "--out", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
    assert load_from_disk(str(out)).num_rows == len(lines(run_dir / "dataset.jsonl"))
    assert not list(tmp_path.glob(".hf.*"))  # no staging or old copy left behind


def test_trls_sft_trainer_takes_dataset_jsonl_unchanged(run_dir, tiny, tmp_path):
    """What a TRL user does with a run's dataset: load it with `datasets`, hand it to SFTTrainer as is
    (prompt-completion format, loss on the completion), train a step."""
    pytest.importorskip("trl")
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    data = load_dataset("json", data_files=str(run_dir / "dataset.jsonl"), split="train")
    model = AutoModelForCausalLM.from_pretrained(tiny["teacher_base"])  # it has a chat template
    tokenizer = AutoTokenizer.from_pretrained(tiny["teacher_base"])
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2, report_to="none",
                     use_cpu=True, save_strategy="no", logging_steps=1, completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data.select_columns(["prompt", "completion"]),
                         processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
    conversational = SFTTrainer(model=model, args=args, train_dataset=data.select_columns(["messages"]),
                                processing_class=tokenizer).train()
    assert conversational.global_step == 1 and conversational.training_loss > 0
