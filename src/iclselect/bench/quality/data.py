"""The pool and the eval sets of a `bench quality` run, all from the package by default.

The pool is any dataset iclselect reads (`--pool`; default: the shipped Alpaca slice). Its
first valid rows are trained on; the held-out set is cut from the rows after them, leaving out
any row whose content id or folded prompt is in the training rows. The other eval sets ship
under assets/eval (SOURCES.md there), and every set is checked disjoint from the pool before
anything is scored or trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from iclselect.bench.quality.presets import Preset, QualityConfig
from iclselect.errors import UsageError
from iclselect.io import read_input, replace_file
from iclselect.io.dataset import Dataset
from iclselect.lm.templates import Template
from iclselect.records import Sample
from iclselect.tune.evalsets import EvalSet, check_disjoint, held_out, load_eval_set, stem

# The first 2,600 rows of shared/data/alpaca_pool_21k.json.gz (Stanford Alpaca rows, CC BY-NC
# 4.0): 2,000 to train on and 500 held out, as the cpu presets use them.
POOL_ASSET = "pool/alpaca_pool_2600.json.gz"


def asset(relative: str) -> Path:
    """A file shipped under iclselect/assets."""
    path = Path(str(resources.files("iclselect").joinpath("assets", relative)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a shipped asset is missing; reinstall iclselect")
    return path


@dataclass
class PoolSplit:
    path: str
    dataset: Dataset
    train: list[Sample]  # the pool every method selects from
    heldout: EvalSet | None


def split_pool(config: QualityConfig, preset: Preset) -> PoolSplit:
    """The training rows and the held-out set: at most a fifth of the file is held out, so a
    small pool still leaves most of its rows to select from."""
    path = config.pool or str(asset(POOL_ASSET))
    # A row with an empty field is not a training sample.
    dataset = read_input(path, skip_invalid=True)
    samples = dataset.samples
    n_held = min(preset.heldout, len(samples) // 5)
    n_train = min(preset.pool_rows or len(samples) - n_held, len(samples) - n_held)
    train = samples[:n_train]
    heldout = None
    if n_held:
        name = f"{stem(Path(path))}-heldout"
        heldout = held_out(samples[n_train:], train, n_held, name, path)
    return PoolSplit(path, dataset, train, heldout)


def eval_sets(config: QualityConfig, preset: Preset, split: PoolSplit) -> list[EvalSet]:
    """Held-out pool rows, the preset's shipped sets and any --eval files, each checked
    disjoint from the training rows (sha256 of the folded prompt)."""
    sets = [split.heldout] if split.heldout else []
    sets += [load_eval_set(asset(f"eval/{name}"), rows) for name, rows in preset.eval_files]
    sets += [load_eval_set(path) for path in config.evals]
    for eval_set in sets:
        if preset.eval_rows:
            eval_set.items = eval_set.items[: preset.eval_rows]
        check_disjoint(eval_set, split.train)
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise UsageError(f"eval sets need distinct names; got {', '.join(names)}")
    return sets


def short_assessment(template: Template, max_tokens: int, out: Path) -> Path:
    """OUT/icon_assessment_<max_tokens>.jsonl: the rows of ICon's shipped assessment set whose
    prompt and response render to at most `max_tokens` tokens, in the shipped format (ICon's
    icon.assessment_size then draws its seeded subset from them). Scoring cost grows with the
    assessment rows' length; this keeps the paper's rows and sources, only the short ones."""
    from iclselect.io import jsonl
    from iclselect.lm.requests import LogprobRequest
    from iclselect.methods.assessment import SHIPPED, load_assessment

    samples, _ = load_assessment(None)
    source = asset(SHIPPED)
    kept = []
    for sample, (_, row) in zip(samples, jsonl.rows(source), strict=True):
        encoded = template.encode(LogprobRequest(sample.prompt, sample.response))
        if len(encoded.context_ids) + len(encoded.target_ids) <= max_tokens:
            kept.append(row)
    path = out / f"icon_assessment_{max_tokens}.jsonl"
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        replace_file(path, lambda temp: temp.write_text(text, encoding="utf-8"))
    return path
