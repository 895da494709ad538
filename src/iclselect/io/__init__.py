"""Input/output: read instruction data in any supported format, write chosen rows back.

read_dataset detects the container from the path (.json, .jsonl, .csv, each optionally .gz;
.parquet; a save_to_disk directory) and the schema (alpaca, sharegpt, messages) from the keys.
write_subset writes chosen rows in the same format, byte-for-byte for the text containers.
"""

from iclselect.io.dataset import Dataset
from iclselect.io.errors import InputError, InvalidRow
from iclselect.io.read import read_dataset
from iclselect.io.schemas import FORMATS
from iclselect.io.write import replace_file, write_subset

__all__ = [
    "FORMATS",
    "Dataset",
    "InputError",
    "InvalidRow",
    "read_dataset",
    "replace_file",
    "write_subset",
]
