"""The Python API: the CLI's engine, store, methods and selector, called from a notebook.

    import iclselect

    scores = iclselect.score("data/alpaca_demo_60.json", method="ifd")
    scores.to_pandas().sort_values("score").tail()     # one row per input row
    subset = iclselect.select(scores, fraction=0.1)
    subset.to_pandas()                                  # the kept rows, with their scores
    subset.write("runs/api")                            # what `iclselect run` writes

`iclselect run` is `select(score(...))` then `Subset.write`, through the same functions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from iclselect.embed import DEFAULT_EMBEDDER
from iclselect.lm import DEFAULT_MODEL
from iclselect.lm.model import cache_dir
from iclselect.methods.registry import get
from iclselect.outputs import scores_table, to_pandas, with_scores
from iclselect.pipeline import (
    Choice,
    RunConfig,
    RunResult,
    Scored,
    _logger,
    choose,
    prepare,
    write,
)
from iclselect.pipeline import score as score_prepared
from iclselect.rundir import check_out
from iclselect.selectors import Budget

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    import pyarrow as pa


@dataclass
class Scores:
    """One method's scores for every input row (rows that were invalid or not scored included,
    with a reason)."""

    method: str
    scored: Scored = field(repr=False)

    @cached_property
    def table(self) -> pa.Table:
        """Columns: row, id, score, reason and detail (why a row will not be ranked),
        duplicate_of, and the method's components (for wICI: ifd, loss, probe_rows, probe_ici,
        probe_weight)."""
        return scores_table(self.scored.dataset, self.scored.scores)

    def to_pandas(self) -> pd.DataFrame:
        return to_pandas(self.table)

    def to_dataset(self) -> datasets.Dataset:
        import datasets

        return datasets.Dataset(self.table)

    def __len__(self) -> int:
        return self.scored.dataset.n_rows

    def __repr__(self) -> str:
        scored = self.scored
        ranked = int(np.isfinite(scored.scores.score).sum())
        return (
            f"<Scores {self.method}: {scored.dataset.n_rows} rows of {scored.dataset.path}, "
            f"{ranked} scored>"
        )


@dataclass
class Subset:
    """The rows kept by select(), and why every other row was not."""

    scores: Scores
    choice: Choice = field(repr=False)

    @property
    def rows(self) -> list[int]:
        """Kept source rows (0-based), best first."""
        samples = self.scores.scored.pool.samples
        return [samples[i].row for i in self.choice.selection.selected]

    @cached_property
    def table(self) -> pa.Table:
        """Every input row's score with selected, rank and reason, as in scores.parquet."""
        scored = self.scores.scored
        return scores_table(scored.dataset, scored.scores, self.choice.selection)

    def to_pandas(self) -> pd.DataFrame:
        """The kept rows in input order: the input's own columns, then iclselect_score,
        iclselect_rank, iclselect_reason and the method's components. A DataFrame given to
        score() keeps its own index."""
        import pandas as pd

        rows = sorted(self.rows)
        frame = to_pandas(with_scores(self.scores.scored.dataset, self.table, rows))
        data = self.scores.scored.config.data
        if isinstance(data, pd.DataFrame):
            frame.index = data.index[rows]
        return frame

    def to_dataset(self) -> datasets.Dataset:
        import datasets

        return datasets.Dataset(
            with_scores(self.scores.scored.dataset, self.table, sorted(self.rows))
        )

    def write(
        self, out: str | Path, add_scores: bool | None = None, overwrite: bool = False
    ) -> RunResult:
        """Write subset.<input's format>, scores.parquet and manifest.json to `out`, exactly as
        `iclselect run` does; with add_scores also subset_scored/, the kept rows with their
        scores as a datasets dataset. An earlier run in `out` is replaced only with
        `overwrite` (its own outputs; other files are left alone)."""
        scored = self.scores.scored
        if add_scores is not None:
            scored = replace(scored, config=replace(scored.config, add_scores=add_scores))
        return write(scored, self.choice, Path(out), _logger(scored.config.quiet), overwrite)

    def __len__(self) -> int:
        return len(self.choice.selection.selected)

    def __repr__(self) -> str:
        selection = self.choice.selection
        return (
            f"<Subset {self.scores.method}: kept {len(selection.selected)} of "
            f"{self.scores.scored.dataset.n_rows} rows ({selection.ranked} ranked)>"
        )


def score(
    data: Any,
    method: str = "wici",
    *,
    model: str = DEFAULT_MODEL,
    template: str = "chat",
    embedder: str = DEFAULT_EMBEDDER,
    dtype: str = "auto",
    device: str = "auto",
    format: str = "auto",
    fields: dict[str, str] | None = None,
    dataset: str | None = None,
    split: str | None = None,
    skip_invalid: bool = False,
    max_batch_tokens: int | None = None,
    max_length: int = 2048,
    tau: float | None = None,
    store: str | Path | None = None,
    quiet: bool = False,
    **options: Any,
) -> Scores:
    """Score every row of `data` with `method` (see `iclselect methods`).

    `data`: a path (any format `iclselect run` reads), a LLaMA-Factory dataset_info.json with
    `dataset` naming the entry, a list of dicts, a pandas DataFrame or a datasets.Dataset
    (`split` names the split of a DatasetDict directory).
    `options` are the method's options (`n_probes=3`, `anchors=20`), as `--set` takes them.
    `tau` sets select()'s default near-duplicate threshold (and computes the embeddings it
    needs for methods that have none of their own).
    Answers are kept in `store` (default: one store in the iclselect cache directory), so
    scoring the same data again, by any method that asks the same questions, is free.
    """
    config = RunConfig(
        data=data, out="", method=method, options=options, format=format, fields=fields,
        dataset=dataset, split=split, skip_invalid=skip_invalid, model=model, template=template,
        dtype=dtype, device=device, embedder=embedder, max_batch_tokens=max_batch_tokens,
        max_length=max_length, tau=tau, store=str(store or cache_dir() / "store.sqlite"),
        quiet=quiet,
    )  # fmt: skip
    return score_config(config)


def score_config(config: RunConfig) -> Scores:
    """score() for a whole RunConfig (what the CLI builds from its options)."""
    chosen = get(config.method)
    method_config = chosen.configure(config.options_for(chosen.name))
    log = _logger(config.quiet)
    with prepare(config, [chosen], log) as prepared:
        return Scores(chosen.name, score_prepared(prepared, chosen, method_config, config, log))


def select(
    scores: Scores,
    fraction: float | None = None,
    *,
    count: int | None = None,
    threshold: float | None = None,
    tau: float | None = None,
) -> Subset:
    """Keep the best rows: one of `fraction`, `count` or `threshold` (none: the method paper's
    headline fraction). `tau`: skip a row whose cosine similarity to a kept row is >= tau
    (default: the method's own rule, 0.9 for wICI, off for the others)."""
    scored = scores.scored
    given = fraction is not None or count is not None or threshold is not None
    budget = (
        Budget(fraction, count, threshold, api=True)
        if given
        else scored.config.budget(scored.method)
    )
    if tau is not None and scored.pool.full_vectors is None:
        raise ValueError(
            f"tau= needs embeddings, which {scores.method} does not compute: "
            "pass tau= to score() instead"
        )
    subset = Subset(scores, choose(scored, budget, tau))
    warning = subset.choice.selection.warning()
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=2)
    return subset


def run(config: RunConfig, overwrite: bool = False) -> RunResult:
    """`iclselect run`: score, select under the config's budget, write to config.out (checked
    before anything is read or loaded)."""
    check_out(Path(config.out), overwrite)
    scores = score_config(config)
    subset = Subset(scores, choose(scores.scored, config.budget(scores.scored.method)))
    return subset.write(config.out, overwrite=overwrite)
