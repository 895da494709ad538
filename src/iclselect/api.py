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

from iclselect.errors import UsageError
from iclselect.lm.model import cache_dir
from iclselect.methods.options import did_you_mean
from iclselect.methods.registry import get
from iclselect.run.config import FIELDS, RunConfig, build, help_text
from iclselect.run.outputs import scores_table, to_pandas, with_scores
from iclselect.run.pipeline import (
    Choice,
    RunResult,
    Scored,
    choose,
    prepare,
    write,
)
from iclselect.run.pipeline import score as score_prepared
from iclselect.run.rundir import check_out
from iclselect.selectors import Budget, check_tau

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
        check_out(Path(out), overwrite, api=True)
        scored = self.scores.scored
        if add_scores is not None:
            scored = replace(scored, config=replace(scored.config, add_scores=add_scores))
        return write(scored, self.choice, Path(out), overwrite)

    def __len__(self) -> int:
        return len(self.choice.selection.selected)

    def __repr__(self) -> str:
        selection = self.choice.selection
        return (
            f"<Subset {self.scores.method}: kept {len(selection.selected)} of "
            f"{self.scores.scored.dataset.n_rows} rows ({selection.ranked} ranked)>"
        )


def score(data: Any, method: str = "wici", **settings: Any) -> Scores:
    """Score every row of `data` with `method` (see `iclselect methods`).

    `data`: a path (any format `iclselect run` reads), a LLaMA-Factory dataset_info.json with
    `dataset` naming the entry, a list of dicts, a pandas DataFrame or a datasets.Dataset
    (`split` names the split of a DatasetDict directory).
    `settings`: the options of `iclselect run` by their RunConfig names (model=, template=,
    max_length=, store=, ...; listed below), and the method's own options (`n_probes=3`,
    `anchors=20`), as `--set` takes them. An unknown keyword is an error naming the nearest.
    `tau` sets select()'s default near-duplicate threshold (and computes the embeddings it
    needs for methods that have none of their own).
    Answers are kept in `store` (default: one store in the iclselect cache directory), so
    scoring the same data again, by any method that asks the same questions, is free.
    """
    budget = [key for key in ("fraction", "count", "threshold") if key in settings]
    if budget:
        raise TypeError(
            f"score() got {budget[0]}=, a budget, which select() takes: "
            f"iclselect.select(scores, {budget[0]}=...)"
        )
    settings.setdefault("out", "")
    if settings.get("store") is None:
        settings["store"] = cache_dir() / "store.sqlite"
    return score_config(config_for("score", {"data": data, "method": method, **settings}))


def score_config(config: RunConfig) -> Scores:
    """score() for a whole RunConfig (what the CLI builds from its options)."""
    chosen = get(config.method)
    method_config = chosen.configure(config.options_for(chosen))
    with prepare(config, [chosen]) as prepared:
        return Scores(chosen.name, score_prepared(prepared, chosen, method_config, config))


def select(
    scores: Scores,
    fraction: float | None = None,
    *,
    count: int | None = None,
    threshold: float | None = None,
    tau: float | None = None,
) -> Subset:
    """Keep the best rows: one of `fraction`, `count` or `threshold` (none: the method paper's
    headline fraction). A threshold applies to the score as the table shows it: rows scoring at
    least it are kept, or at most it where the lowest scores come first (perplexity order=low,
    length order=short). `tau`: skip a row whose cosine similarity to a kept row is >= tau
    (default: the method's own rule, 0.9 for wICI, off for the others)."""
    scored = scores.scored
    if tau is not None:
        check_tau(tau, "tau=")
    given = fraction is not None or count is not None or threshold is not None
    budget = (
        Budget(fraction, count, threshold, api=True)
        if given
        else scored.config.budget(scored.method)
    )
    if tau is not None and scored.pool.full_vectors is None:
        raise UsageError(
            f"tau= needs embeddings, which {scores.method} does not compute: "
            "pass tau= to score() instead"
        )
    subset = Subset(scores, choose(scored, budget, tau))
    warning = subset.choice.selection.warning()
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=2)
    return subset


def run(config: RunConfig | None = None, overwrite: bool = False, **settings: Any) -> RunResult:
    """`iclselect run`: score, select under the config's budget, write to config.out (checked
    before anything is read or loaded). `config` is a RunConfig, or else the settings are
    keywords as score() takes them (data=, out=, method=, fraction=, ...)."""
    if config is None:
        config = config_for("run", settings)
    elif settings:
        raise TypeError("run() takes a RunConfig or settings as keywords, not both")
    check_out(Path(config.out), overwrite)
    scores = score_config(config)
    subset = Subset(scores, choose(scores.scored, config.budget(scores.scored.method)))
    return subset.write(config.out, overwrite=overwrite)


def config_for(call: str, settings: dict[str, Any]) -> RunConfig:
    """The RunConfig of an API call's keywords: RunConfig's fields by name; any other keyword
    is an option of the method (`n_probes=3`), or an error naming the nearest field or option."""
    extra = {key: value for key, value in settings.items() if key not in FIELDS}
    chosen = get(settings.get("method") or "wici")
    known = [name for name, _, _ in chosen.options()]
    for key in extra:
        if key not in known:
            hint = did_you_mean(key, (*FIELDS, *known))
            raise UsageError(
                f"{call}(): unknown keyword {key!r}{hint}: not a setting of a run (RunConfig: "
                f"{', '.join(FIELDS)}) and {chosen.name} has no option {key!r} (its options: "
                f"{', '.join(known) or 'none'})"
            )
    fields = {key: value for key, value in settings.items() if key in FIELDS}
    if extra:
        fields["options"] = {**(fields.get("options") or {}), **extra}
    return build(fields)


def _settings_doc() -> str:
    """score()'s settings, one paragraph each, from RunConfig's field help."""
    import textwrap

    lines = ["", "    Settings (RunConfig fields; --help of `iclselect run` names the same):", ""]
    for name, spec in FIELDS.items():
        if name in ("data", "method"):
            continue
        shown = {"options": "{}", "out": "''"}.get(name) or repr(spec.default)
        text = f"{name}={shown}: {help_text(name)}"
        lines += textwrap.wrap(text, 96, initial_indent="    ", subsequent_indent="        ")
    return "\n".join(lines) + "\n"


score.__doc__ = (score.__doc__ or "") + _settings_doc()
