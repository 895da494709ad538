"""ICon's assessment set: the shipped 1,020 rows of the paper (OpenOrca GPT-3.5 / GPT-4 and
Dolly, from the RICo repository, Apache-2.0) or any dataset iclselect reads.

The paper's rows hold an Alpaca-style prompt in `inputs` ("### System Prompt:", "### Question:"
or "### Instruction:" / "### Context:" sections, ending in "### Response:") and a `response`.
They become Samples like any other data: the system prompt a system turn, the question (and the
Dolly context, as Alpaca's input is) the user turn, so every --template renders them.
"""

from __future__ import annotations

import gzip
import json
import re
from importlib import resources
from pathlib import Path

from iclselect.io import InputError, read_dataset
from iclselect.records import Sample, Turn

SHIPPED = "icon_assessment_1020.jsonl.gz"


def load_assessment(path: str | None) -> tuple[list[Sample], str]:
    """The assessment samples and a name for the manifest. `path` None: the shipped set."""
    if path is None:
        shipped = resources.files("iclselect") / "assets" / SHIPPED
        with resources.as_file(shipped) as file:
            return _icon_rows(Path(file)), f"shipped ICon assessment set ({SHIPPED})"
    file = Path(path)
    if file.is_file() and _is_icon_format(file):
        return _icon_rows(file), str(file)
    return read_dataset(path).samples, str(file)


def _is_icon_format(path: Path) -> bool:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        first = handle.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and {"inputs", "response"} <= set(row)


def _icon_rows(path: Path) -> list[Sample]:
    opener = gzip.open if path.suffix == ".gz" else open
    samples = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(str(path), f"not valid JSON: {error.msg}", number) from None
            for field in ("inputs", "response"):
                if not isinstance(row.get(field), str):
                    raise InputError(str(path), "missing or not a string", number, field)
            turns = (*parse_prompt(row["inputs"]), Turn("assistant", row["response"]))
            samples.append(Sample(number, turns))
    return samples


def parse_prompt(text: str) -> tuple[Turn, ...]:
    """Turns of one Alpaca-style assessment prompt (see the module docstring)."""
    body = re.sub(r"\n*### Response:\s*$", "", text.rstrip())
    system = ""
    if body.startswith("### System Prompt:\n"):
        head, _, body = body.partition("\n\n### Question:\n")
        system = head.removeprefix("### System Prompt:\n")
    body = body.removeprefix("### Question:\n").removeprefix("### Instruction:\n")
    body = body.replace("\n\n### Context:\n", "\n")
    return ((Turn("system", system),) if system.strip() else ()) + (Turn("user", body),)
