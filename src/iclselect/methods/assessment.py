"""ICon's assessment set: the shipped 1,020 rows of the paper (OpenOrca GPT-3.5 / GPT-4 and
Dolly, from the RICo repository, Apache-2.0) or any dataset iclselect reads.

The paper's rows hold an Alpaca-style prompt in `inputs` ("### System Prompt:", "### Question:"
or "### Instruction:" / "### Context:" sections, ending in "### Response:") and a `response`.
They become Samples like any other data: the system prompt a system turn, the question (and the
Dolly context, as Alpaca's input is) the user turn, so every --template renders them.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from iclselect.io import jsonl, read_dataset
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
    row = jsonl.first_row(path)
    return row is not None and {"inputs", "response"} <= set(row)


def _icon_rows(path: Path) -> list[Sample]:
    samples = []
    for number, row in jsonl.rows(path):
        inputs, response = (jsonl.need(row, f, str, path, number) for f in ("inputs", "response"))
        samples.append(Sample(number, (*parse_prompt(inputs), Turn("assistant", response))))
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
    user = Turn("user", body, (("inputs", text),))
    return ((Turn("system", system),) if system.strip() else ()) + (user,)
