"""Whether a run's input still holds the rows the run scored: a report rebuilt from a changed
input would show one file's texts beside another file's scores."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from iclselect.errors import UsageError
from iclselect.io import Dataset, InputError, read_input


def read_run_input(out: Path) -> tuple[Dataset | None, str]:
    """The input of the run in `out`, read again as the run read it, and "" ; or None and why
    it cannot be read (moved or deleted, standard input, rows the Python API held in memory).
    Raises UsageError naming the first row whose content is not what scores.parquet scored."""
    config = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["config"]
    if config["data"] == "-":
        return None, "the run read its rows from standard input"
    try:
        dataset = read_input(
            config["data"],
            format=config["format"],
            fields=config["fields"],
            skip_invalid=True,
            dataset=config.get("dataset"),
            split=config.get("split"),
        )
    except (InputError, OSError, ValueError) as error:
        return None, f"the run's input cannot be read ({error})"
    scored = pq.read_table(out / "scores.parquet", columns=["row", "id"]).to_pylist()
    now = {sample.row: sample.id for sample in dataset.samples}
    where = f"{dataset.path} has changed since the run in {out}"
    fix = "rerun iclselect run to score it as it is now"
    if dataset.n_rows != len(scored):
        raise UsageError(f"{where}: {dataset.n_rows} rows, the run scored {len(scored)}; {fix}")
    for entry in scored:
        if now.get(entry["row"]) != entry["id"]:
            raise UsageError(
                f"{where}: row {entry['row']} is not the row scored (content id "
                f"{now.get(entry['row'])}, scores.parquet has {entry['id']}); {fix}"
            )
    return dataset, ""
