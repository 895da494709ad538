"""Held-out evaluation sets for `bench quality`, and the check that they are disjoint from the
pool.

An eval item is a prompt and a reference reply; the metric every set gets is the tuned model's
mean per-token NLL of the reference. Sets with short gold answers also get exact-match accuracy:
MMLU by which of the four letters the model finds likeliest, GSM8K by the final number of a
greedy answer.

Recognised files: GSM8K JSONL (question, answer ending "#### N"), MMLU JSONL (question, choices,
answer_index), self-instruct seed tasks (instruction, instances: one item per task, its first
instance; tasks whose reference output is empty are left out and counted, never scored as NaN),
and any file iclselect reads (Alpaca, ShareGPT, messages: the last reply is the reference).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from iclselect.io import jsonl, read_input
from iclselect.io.errors import InputError
from iclselect.records import Sample, Turn

LETTERS = "ABCD"
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class EvalItem:
    prompt: tuple[Turn, ...]
    reference: str
    choices: tuple[str, ...] = ()  # MMLU: the reply to each choice; reference is one of them
    number: str | None = None  # GSM8K: the gold final number


@dataclass
class EvalSet:
    name: str
    path: str
    items: list[EvalItem]
    n_rows: int  # rows in the file
    n_empty: int = 0  # rows left out because their reference reply is empty

    @property
    def kind(self) -> str:
        if self.items and self.items[0].choices:
            return "choice"
        if self.items and self.items[0].number is not None:
            return "number"
        return "text"


def load_eval_set(path: str | Path, max_rows: int = 0, name: str | None = None) -> EvalSet:
    """Read `path` as one of the recognised kinds; `max_rows` > 0 keeps the first that many
    scorable rows."""
    path = Path(path)
    name = name or stem(path)
    first = jsonl.first_row(path) if path.name.removesuffix(".gz").endswith(".jsonl") else None
    if first is not None and {"question", "choices", "answer_index"} <= first.keys():
        items, n_rows, empty = _mmlu(path)
    elif first is not None and {"question", "answer"} <= first.keys():
        items, n_rows, empty = _gsm8k(path)
    elif first is not None and {"instruction", "instances"} <= first.keys():
        items, n_rows, empty = _self_instruct(path)
    else:
        dataset = read_input(str(path))
        samples = dataset.samples
        items = [EvalItem(s.prompt, s.response) for s in samples if s.response.strip()]
        n_rows, empty = dataset.n_rows, sum(1 for s in samples if not s.response.strip())
    if not items:
        raise InputError(str(path), "no row with a non-empty reference reply to evaluate")
    return EvalSet(name, str(path), items[:max_rows] if max_rows else items, n_rows, empty)


def held_out(
    samples: list[Sample], pool: list[Sample], count: int, name: str, path: str
) -> EvalSet:
    """The first `count` of `samples` (rows of the pool's own file outside the pool) whose
    content id and folded prompt are both absent from the pool: the same distribution, none
    of the same questions."""
    ids = {s.id for s in pool}
    prompts = {prompt_hash(s.prompt) for s in pool}
    items = [
        EvalItem(s.prompt, s.response)
        for s in samples
        if s.response.strip() and s.id not in ids and prompt_hash(s.prompt) not in prompts
    ][:count]
    return EvalSet(name, path, items, len(items))


def prompt_hash(prompt: tuple[Turn, ...]) -> str:
    """sha256 of the prompt's user text, case and whitespace folded: the same question asked
    with other spacing or capitals is the same question."""
    text = "\n".join(t.content for t in prompt if t.role == "user")
    folded = _SPACE.sub(" ", text).strip().lower()
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


def check_disjoint(eval_set: EvalSet, pool: list[Sample]) -> int:
    """Raise if any eval prompt is also a pool prompt; return how many prompts were checked."""
    pool_hashes = {prompt_hash(s.prompt) for s in pool}
    shared = [i for i, item in enumerate(eval_set.items) if prompt_hash(item.prompt) in pool_hashes]
    if shared:
        raise InputError(
            eval_set.path,
            f"eval set {eval_set.name!r}: {len(shared)} of {len(eval_set.items)} prompts are also "
            f"in the pool (sha256 of the folded prompt), first at item {shared[0]}; an eval set "
            "must be disjoint from the pool it judges",
        )
    return len(eval_set.items)


def final_number(text: str) -> str | None:
    """The answer a GSM8K-style reply ends on: the number after '####', else the last number."""
    tail = text.rsplit("####", 1)[1] if "####" in text else text
    numbers = _NUMBER.findall(tail)
    if not numbers:
        return None
    value = numbers[0] if "####" in text else numbers[-1]
    return _canonical(value)


def _canonical(number: str) -> str:
    cleaned = number.replace(",", "").rstrip(".")
    return str(float(cleaned)).removesuffix(".0")


def _mmlu(path: Path) -> tuple[list[EvalItem], int, int]:
    items = []
    for number, row in jsonl.rows(path):
        choices = jsonl.need(row, "choices", list, path, number)
        answer = jsonl.need(row, "answer_index", int, path, number)
        if not 0 <= answer < min(len(choices), len(LETTERS)):
            raise InputError(str(path), f"{answer} is not a choice's index", number, "answer_index")
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
        question = jsonl.need(row, "question", str, path, number)
        prompt = f"{question}\n\n{options}\n\nAnswer with the letter of the correct choice."
        letters = tuple(LETTERS[: len(choices)])
        items.append(EvalItem((Turn("user", prompt),), letters[answer], letters))
    return items, len(items), 0


def _gsm8k(path: Path) -> tuple[list[EvalItem], int, int]:
    items = []
    for number, row in jsonl.rows(path):
        question = jsonl.need(row, "question", str, path, number)
        answer = jsonl.need(row, "answer", str, path, number)
        items.append(EvalItem((Turn("user", question),), answer, number=final_number(answer)))
    return items, len(items), 0


def _self_instruct(path: Path) -> tuple[list[EvalItem], int, int]:
    items, n_rows = [], 0
    for number, row in jsonl.rows(path):
        n_rows += 1
        instances = jsonl.need(row, "instances", list, path, number)
        if not instances or not isinstance(instances[0], dict):
            raise InputError(str(path), "needs at least one instance object", number, "instances")
        output = jsonl.need(instances[0], "output", str, path, number)
        given = jsonl.need(instances[0], "input", str, path, number)
        if not output.strip():
            continue
        instruction = jsonl.need(row, "instruction", str, path, number)
        text = instruction + (f"\n\n{given}" if given else "")
        items.append(EvalItem((Turn("user", text),), output))
    return items, n_rows, n_rows - len(items)


def stem(path: Path) -> str:
    """A file's name without its data and compression suffixes."""
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".parquet", ".csv"):
        name = name.removesuffix(suffix)
    return name
