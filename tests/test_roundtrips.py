"""Round trips through the tools people train with: Hugging Face datasets (save_to_disk,
Parquet and Arrow shards, --add-scores) and LLaMA-Factory's dataset_info.json."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from conftest import cli, write_json

from iclselect.io import InputError, read_dataset, read_input


@pytest.fixture(scope="module")
def rows(demo_rows):
    return demo_rows[:24]


def _run(data: Path, out: Path, *extra: str) -> dict:
    result = cli("run", str(data), "-m", "length", "--count", "5", "-o", str(out), "-q", *extra)
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


def test_datasets_round_trip_with_scores(tmp_path, rows):
    source = datasets.Dataset.from_list(rows)
    source.save_to_disk(str(tmp_path / "ds"))
    _run(tmp_path / "ds", tmp_path / "out", "--add-scores")
    scores = pq.read_table(tmp_path / "out" / "scores.parquet").to_pandas()
    kept = sorted(scores[scores.selected].row)
    subset = datasets.load_from_disk(str(tmp_path / "out" / "subset"))
    assert subset.features == source.features
    assert subset.to_list() == source.select(kept).to_list()
    scored = datasets.load_from_disk(str(tmp_path / "out" / "subset_scored"))
    assert scored.select_columns(source.column_names).to_list() == subset.to_list()
    assert scored["iclselect_score"] == scores.set_index("row").loc[kept, "score"].tolist()
    assert scored["iclselect_reason"] == ["selected"] * 5


def test_parquet_and_arrow_shards_read_as_one_split(tmp_path, rows):
    source = datasets.Dataset.from_list(rows)
    whole = read_dataset(write_json(tmp_path / "rows.json", rows))
    shards = tmp_path / "hub" / "data"
    shards.mkdir(parents=True)
    for k in range(3):
        part = source.shard(3, k, contiguous=True)
        part.to_parquet(str(shards / f"train-{k:05d}-of-00003.parquet"))
    from_parquet = read_dataset(tmp_path / "hub")
    assert from_parquet.container == "parquet"
    assert [s.turns for s in from_parquet.samples] == [s.turns for s in whole.samples]
    saved = tmp_path / "saved"
    source.save_to_disk(str(saved), num_shards=2)
    from_arrow = read_dataset(next(saved.glob("*.arrow")))
    assert from_arrow.container == "arrow" and from_arrow.n_rows == 12
    _run(next(saved.glob("*.arrow")), tmp_path / "out")
    assert datasets.load_from_disk(str(tmp_path / "out" / "subset")).num_rows == 5
    source.select(range(4)).to_parquet(str(shards / "test-00000-of-00001.parquet"))
    with pytest.raises(InputError, match=r"holds shards of several splits .*test.*train"):
        read_dataset(tmp_path / "hub")


def _lf_alpaca(tmp_path: Path, rows: list[dict]) -> Path:
    renamed = [
        {"question": r["instruction"], "context": r["input"], "answer": r["output"]} for r in rows
    ]
    write_json(tmp_path / "qa.json", renamed)
    info = {
        "qa": {
            "file_name": "qa.json",
            "columns": {"prompt": "question", "query": "context", "response": "answer"},
            "num_samples": 10,
        },
        "hub": {"hf_hub_url": "someone/data"},
    }
    return write_json(tmp_path / "dataset_info.json", info)


def test_llamafactory_alpaca_round_trip(tmp_path, rows):
    info = _lf_alpaca(tmp_path, rows)
    original = read_input(info, dataset="qa")
    assert original.schema == "alpaca" and original.entry is not None
    _run(tmp_path, tmp_path / "out", "--dataset", "qa")
    written = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert written == {
        "qa_length": {
            "file_name": "subset.json",
            "columns": {"prompt": "question", "query": "context", "response": "answer"},
        }
    }
    back = read_input(tmp_path / "out" / "dataset_info.json", dataset="qa_length")
    scores = pq.read_table(tmp_path / "out" / "scores.parquet").to_pandas()
    kept = sorted(scores[scores.selected].row)
    assert [s.turns for s in back.samples] == [original.samples[r].turns for r in kept]


def test_llamafactory_sharegpt_with_tags_round_trip(tmp_path, rows):
    conversations = [
        {
            "messages": [
                {"role": "user", "content": r["instruction"]},
                {"role": "assistant", "content": r["output"]},
            ],
            "system": "Be brief.",
        }
        for r in rows
    ]
    write_json(tmp_path / "chat.json", conversations)
    entry = {
        "file_name": "chat.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "system": "system"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }
    write_json(tmp_path / "dataset_info.json", {"chat": entry})
    original = read_input(tmp_path / "dataset_info.json", dataset="chat")
    assert original.samples[0].turns[0].content == "Be brief."
    _run(tmp_path / "dataset_info.json", tmp_path / "out", "--dataset", "chat")
    written = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert written == {"chat_length": {**entry, "file_name": "subset.json"}}
    back = read_input(tmp_path / "out", dataset="chat_length")
    kept_rows = json.loads((tmp_path / "out" / "subset.json").read_text())
    assert len(back.samples) == len(kept_rows) == 5
    assert all(row in conversations for row in kept_rows)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, "name an entry with --dataset; entries: ['hub', 'qa']"),
        ("nope", "no entry 'nope'; entries: ['hub', 'qa']"),
        ("hub", "entry 'hub': only local files are read, and it is a hub dataset (hf_hub_url)"),
    ],
)
def test_llamafactory_entry_errors(tmp_path, rows, name, message):
    info = _lf_alpaca(tmp_path, rows)
    with pytest.raises(InputError, match=None) as error:
        read_input(info, dataset=name)
    assert str(error.value) == f"{info}: {message}"
