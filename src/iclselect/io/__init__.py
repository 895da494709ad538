"""Input/output: read instruction data in any supported format, write chosen rows back.

read_dataset detects the container from the path (.json, .jsonl, .csv, each optionally .gz;
.parquet, .arrow, or a directory of their shards; a save_to_disk directory) and the schema
(alpaca, sharegpt, messages) from the keys; read_records reads rows in memory; read_input takes
either, or a LLaMA-Factory dataset_info.json entry. write_subset writes chosen rows in the same
format, byte-for-byte for the text containers; write_entry the subset's dataset_info.json.
"""

from iclselect.io.dataset import Dataset
from iclselect.io.errors import InputError, InvalidRow
from iclselect.io.files import replace_dir, replace_file
from iclselect.io.inputs import read_input
from iclselect.io.llamafactory import LlamaFactoryEntry, write_entry
from iclselect.io.read import read_dataset, read_records
from iclselect.io.schemas import FORMATS
from iclselect.io.write import write_subset

__all__ = [
    "FORMATS",
    "Dataset",
    "InputError",
    "InvalidRow",
    "LlamaFactoryEntry",
    "read_dataset",
    "read_input",
    "read_records",
    "replace_dir",
    "replace_file",
    "write_entry",
    "write_subset",
]
