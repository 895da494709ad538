"""report.html: why each sample was kept or dropped, in one self-contained file (inline CSS,
figures embedded as PNG data URIs, no script, nothing fetched)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from iclselect.io import Dataset, replace_file
from iclselect.methods.registry import get
from iclselect.report import plots
from iclselect.run.outputs import higher_first, row_columns
from iclselect.selectors import REASONS

MAP_POINTS = 50_000  # most points drawn on the map; larger pools are sampled (and say so)
_SHOWN = 10  # top and bottom samples explained
_DUPLICATES_SHOWN = 20
_BASE = {
    "row",
    "id",
    "score",
    "selected",
    "rank",
    "reason",
    "detail",
    "duplicate_of",
    "near_duplicate_of",
    "similarity",
    "context_cut_tokens",
    "response_cut_tokens",
    "map_x",
    "map_y",
    "cluster",
    "cluster_central",
}
SECTIONS = ("Summary", "Scores", "Map and coverage", "Top and bottom samples", "Near-duplicates")

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#212529;
padding:0 1em}
h1{font-size:1.6em} h2{border-bottom:1px solid #dee2e6;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #dee2e6;padding:3px 8px;
text-align:left;vertical-align:top} th{background:#f1f3f5} .num{text-align:right}
.note{color:#6c757d} .sample{border:1px solid #dee2e6;border-radius:6px;padding:.6em 1em;
margin:.8em 0} .kept{border-left:5px solid #d9480f} .dropped{border-left:5px solid #adb5bd}
pre{white-space:pre-wrap;background:#f8f9fa;padding:.4em .6em;margin:.3em 0;max-height:12em;
overflow:auto} img{max-width:100%} .warn{background:#fff3bf;border-left:5px solid #f08c00;
padding:.5em 1em}
"""


def write_report(out: Path, dataset: Dataset | None, unread: str = "") -> Path:
    """Build out/report.html from out/manifest.json and out/scores.parquet. Sample texts come
    from `dataset`; without it the page says why (`unread`) and shows none."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(out / "scores.parquet")
    schema = pq.read_schema(out / "scores.parquet")
    references = row_columns(schema)
    texts: dict[int, tuple[str, str]] = {}
    text_note = f"Sample texts are not shown: {unread}." if dataset is None else ""
    if dataset is not None:
        texts = {s.row: (s.instruction_text, s.response) for s in dataset.samples}
    method = manifest["method"]["name"]
    body = [
        f"<h1>iclselect report: {_e(method)} on {_e(manifest['input']['path'])}</h1>",
        *(f'<p class="warn"><b>Warning:</b> {_e(w)}</p>' for w in manifest.get("warnings", [])),
        _summary(manifest),
        _scores(
            table, method, manifest["cut"], manifest["config"].get("tau"), higher_first(schema)
        ),
        _map(table, texts),
        _samples(table, texts, text_note, references),
        _duplicates(table, texts),
    ]
    target = out / "report.html"
    page = _page(f"iclselect: {method}", body)
    replace_file(target, lambda temp: temp.write_text(page, encoding="utf-8"))
    return target


def write_compare_report(
    out: Path,
    methods: list[str],
    spearman: np.ndarray,
    overlap: np.ndarray,
    cost: tuple[list[str], list[tuple[Any, ...]]],
) -> Path:
    """out/report.html for a compare: agreement figures and tables, the cost table (`cost`:
    header and rows), links to each run."""
    links = "".join(f'<li><a href="{_e(m)}/report.html">{_e(m)}</a></li>' for m in methods)
    body = [
        "<h1>iclselect compare</h1>",
        "<h2>Agreement</h2>",
        "<p>Spearman rank correlation of the scores (rows both methods scored), and overlap of "
        "the kept subsets, |A ∩ B| / min(|A|, |B|).</p>",
        _img(plots.heatmap(spearman, methods, "Spearman rank correlation")),
        _table(["", *methods], _matrix_rows(methods, spearman, "+.2f")),
        _img(plots.heatmap(overlap, methods, "subset overlap")),
        _table(["", *methods], _matrix_rows(methods, overlap, ".2f")),
        "<h2>Cost and subsets</h2>",
        _table(*cost),
        f"<h2>Each method's report</h2><ul>{links}</ul>",
    ]
    target = out / "report.html"
    page = _page("iclselect compare", body)
    replace_file(target, lambda temp: temp.write_text(page, encoding="utf-8"))
    return target


def _matrix_rows(methods: list[str], matrix: np.ndarray, form: str) -> list[tuple[str, ...]]:
    return [
        (name, *(format(v, form) for v in row)) for name, row in zip(methods, matrix, strict=True)
    ]


def _dtype(manifest: dict) -> str:
    """The dtype the model ran in, and what was asked where that differs (auto)."""
    used, asked = manifest.get("dtype"), manifest["config"].get("dtype")
    if used is None or used == asked:
        return str(used or asked)
    return f"{used} (--dtype {asked})"


def _summary(manifest: dict) -> str:
    config, engine = manifest["config"], manifest.get("engine") or {}
    budget = next(
        (f"{key} {config[key]}" for key in ("fraction", "count", "threshold") if config.get(key)),
        "method default",
    )
    rows = [
        (
            "input",
            f"{manifest['input']['path']} ({manifest['input']['schema']}, "
            f"{manifest['input']['container']})",
        ),
        ("input rows", f"{manifest['input']['rows']:,}"),
        ("kept", f"{manifest['kept']:,}"),
        ("dropped", f"{manifest['dropped']:,}"),
        *[(f"  dropped: {why}", f"{n:,}") for why, n in manifest["dropped_by_reason"].items()],
        ("invalid rows", f"{len(manifest['invalid_rows']):,}"),
        (
            "exact duplicates",
            f"{manifest['exact_duplicates']['rows']:,} (only the first copy can be kept)",
        ),
        (
            "too long to rank",
            f"{len(manifest['too_long']['rows']):,} ({manifest['too_long']['policy']})",
        ),
        ("method", manifest["method"]["name"]),
        *[
            (f"{manifest['method']['name']}.{key}", _short(value))
            for key, value in manifest["method"]["params"].items()
        ],
        ("budget", f"{budget}; near-duplicate tau {_short(config.get('tau'))}"),
        (
            "model",
            f"{manifest.get('model') or 'none (no model requests)'}; "
            f"template {config.get('template')}; dtype {_dtype(manifest)}",
        ),
        ("time", ", ".join(f"{k} {v:.1f} s" for k, v in manifest["seconds"].items())),
    ]
    if engine:
        rows.append(
            (
                "cost",
                f"{engine['requests']:,} requests, {engine['stored']:,} from the store, "
                f"{engine['computed']:,} computed, {engine['tokens']:,} tokens",
            )
        )
    reasons = _table(["reason", "meaning"], [(why, meaning) for why, meaning in REASONS.items()])
    too_long = manifest["too_long"]["rows"]
    long_rows = (
        "<h3>Rows too long to rank</h3>"
        + _table(
            ["row", "context tokens cut", "response tokens cut"],
            [(r["row"], r["context_cut_tokens"], r["response_cut_tokens"]) for r in too_long],
        )
        if too_long
        else ""
    )
    return (
        "<h2>Summary</h2>"
        + _table(["", ""], rows, show_header=False)
        + long_rows
        + "<h3>Reasons</h3><p>Every row of scores.parquet has one (column <code>reason</code>; "
        "<code>detail</code> says more where there is more to say).</p>" + reasons
    )


def _above_the_cut(table: pd.DataFrame, tau: float | None, beyond: str) -> str:
    """What the rows scoring beyond the worst kept score and left out were, in words."""
    if (table.reason == "near_duplicate").any():
        return f"Rows {beyond} it that were not kept were near-duplicates of kept rows."
    if tau is None:
        return f"This method has no near-duplicate step: no row {beyond} it was left out."
    return (
        f"No row was close enough to a kept row (tau {tau:g}) to be left out as a near-duplicate."
    )


def _scores(
    table: pd.DataFrame, method: str, cut: dict[str, Any], tau: float | None, high_first: bool
) -> str:
    scored = table[table["rank"].notna()]
    selected = scored.selected.to_numpy(bool)
    values = scored.score.to_numpy(float)
    kept = values[selected]
    line = (float(kept.min()) if high_first else float(kept.max())) if selected.any() else None
    worst, beyond = ("lowest", "above") if high_first else ("highest", "below")
    order = "" if high_first else " Lower scores were kept first (the method's order option)."
    parts = [
        "<h2>Scores</h2>",
        f"<p>A high {_e(method)} score {_e(get(method).high_score)}{order}</p>",
        f"<p>{len(scored):,} rows ranked; kept rows in orange; the dashed line is the {worst} "
        f"kept score. {_above_the_cut(table, tau, beyond)}</p>",
    ]
    ties = cut["near_ties"]
    if ties:
        shown = ", ".join(map(str, ties[:20])) + (", …" if len(ties) > 20 else "")
        parts.append(
            f"<p><b>Near ties at the cut:</b> {len(ties):,} rows left out below the budget "
            f"(rows {shown}) score within {cut['near_tie_tolerance']:g} (relative) of the last "
            f"kept score, {cut['last_kept_score']:.6g}: between them, input order, not the "
            "score, decided what was kept.</p>"
        )
    parts.append(_img(plots.score_histogram(values, selected, line, method)))
    numeric = {
        name: pd.to_numeric(scored[name], errors="coerce").to_numpy(float)
        for name in scored.columns
        if name not in _BASE and pd.api.types.is_numeric_dtype(scored[name])
    }
    # A component with one value everywhere (n_probes) has no distribution to show.
    numeric = {name: v for name, v in numeric.items() if len(np.unique(v[np.isfinite(v)])) > 1}
    if numeric:
        parts += [
            "<h3>Components</h3><p>What the score is made of, over all scored rows and the "
            "kept ones.</p>",
            _img(plots.component_histograms(numeric, selected)),
        ]
    return "".join(parts)


def _map(table: pd.DataFrame, texts: dict[int, tuple[str, str]]) -> str:
    head = "<h2>Map and coverage</h2>"
    placed = table[table.get("map_x", pd.Series(dtype=float)).notna()] if "map_x" in table else None
    if placed is None or placed.empty:
        return head + (
            '<p class="note">No map: this method computes no embeddings. Rerun with --tau '
            "(e.g. --tau 1.0, which suppresses nothing) to embed the pool and get one.</p>"
        )
    note = f"All {len(placed):,} scored rows are drawn."
    shown = placed
    if len(placed) > MAP_POINTS:
        shown = placed.sample(MAP_POINTS, random_state=0)
        note = (
            f"The map draws {MAP_POINTS:,} of {len(placed):,} rows, sampled uniformly at random "
            "(seed 0); the coverage table counts every row."
        )
    selected = shown.selected.fillna(False).to_numpy(bool)
    xy = shown[["map_x", "map_y"]].to_numpy(float)
    title = "PCA of instruction + response embeddings"
    kept = placed[placed.selected.fillna(False)]
    coverage = []
    for cluster, members in placed.groupby("cluster"):
        central = members[members.cluster_central.fillna(False)]
        row = int(central.row.iloc[0]) if len(central) else int(members.row.iloc[0])
        label = _clip(texts.get(row, (f"row {row}", ""))[0], 60)
        coverage.append(
            (
                int(cluster),
                label,
                len(members) / len(placed),
                (kept.cluster == cluster).sum() / max(1, len(kept)),
            )
        )
    coverage.sort(key=lambda c: -c[2])
    labels = [f"{c}: {label}" for c, label, _, _ in coverage]
    pool_share = np.array([c[2] for c in coverage])
    kept_share = np.array([c[3] for c in coverage])
    rows = [
        (c, label, f"{p:.1%}", f"{k:.1%}", f"{k / p:.2f}" if p else "-")
        for (c, label, p, k) in coverage
    ]
    under = [label for (_, label, p, k) in coverage if p >= 0.02 and k < p / 2]
    finding = (
        "Under-covered (kept share below half the pool share): " + "; ".join(map(_e, under))
        if under
        else "No topic cluster is kept at less than half its share of the pool."
    )
    return "".join(
        [
            head,
            f'<p>{_e(title)}; kept rows in orange. <span class="note">{_e(note)}</span></p>',
            _img(plots.scatter_map(xy, selected, title)),
            "<h3>Topic coverage</h3><p>k-means clusters of the embeddings, each named by its most "
            f"central sample. {finding}</p>",
            _img(plots.coverage_bars(labels, pool_share, kept_share)),
            _table(["cluster", "named by", "pool share", "kept share", "kept / pool"], rows),
        ]
    )


def _samples(
    table: pd.DataFrame,
    texts: dict[int, tuple[str, str]],
    note: str,
    references: dict[str, list[str]],
) -> str:
    """`references`: the columns that name other rows, each with the columns that go with its
    rows (outputs.row_columns), read from the schema of scores.parquet."""
    ranked = table[table["rank"].notna()].sort_values("rank")
    parts = ["<h2>Top and bottom samples</h2>"]
    if note:
        parts.append(f'<p class="note">{_e(note)}</p>')
    parts.append(
        f"<p>The {_SHOWN} highest and {_SHOWN} lowest scored rows, each with the numbers its "
        "score was computed from (for wICI its probes and the influence on each; for MIWV its "
        "demo).</p><h3>Highest</h3>"
    )
    parts += [_sample(row, texts, references) for _, row in ranked.head(_SHOWN).iterrows()]
    parts.append("<h3>Lowest</h3>")
    parts += [
        _sample(row, texts, references) for _, row in ranked.tail(_SHOWN).iloc[::-1].iterrows()
    ]
    return "".join(parts)


def _sample(
    row: pd.Series, texts: dict[int, tuple[str, str]], references: dict[str, list[str]]
) -> str:
    number = int(row["row"])
    instruction, response = texts.get(number, ("", ""))
    state = "kept" if row["selected"] else "dropped"
    why = row["reason"] + (f" ({row['detail']})" if pd.notna(row["detail"]) else "")
    partners = {name for names in references.values() for name in names}
    scalars, refs, tables = [], [], []
    for name, value in row.items():
        if name in _BASE or name in partners or value is None or value is pd.NA:
            continue
        listed = isinstance(value, (list, tuple, np.ndarray))
        if name in references and listed:
            tables.append(
                _referenced(list(value), {k: list(row[k]) for k in references[name]}, texts)
            )
        elif name in references and pd.notna(value):
            other = texts.get(int(value), ("",))[0]
            refs.append(f"{_e(name)} {int(value)}: {_e(_clip(other, 120))}")
        elif not listed and isinstance(value, (int, float, np.number)) and pd.notna(value):
            scalars.append(f"{_e(name)} {float(value):.4g}")
    parts = [
        f'<div class="sample {state}"><b>rank {int(row["rank"])} · row {number} · score '
        f"{row['score']:.4g} · {_e(why)}</b>",
        f"<pre>{_e(_clip(instruction, 600))}</pre><pre>{_e(_clip(response, 400))}</pre>",
    ]
    if scalars:
        parts.append(f"<p>{' · '.join(scalars)}</p>")
    if refs:
        parts.append("<p>" + "<br>".join(refs) + "</p>")
    return "".join(parts + tables) + "</div>"


def _referenced(
    rows: list[Any], partners: dict[str, list[Any]], texts: dict[int, tuple[str, str]]
) -> str:
    """A table of the rows one sample's score refers to (wICI's probes), with the values that
    go with each (its influence, its weight)."""
    return _table(
        ["row", "instruction", *partners],
        [
            (
                int(r),
                _clip(texts.get(int(r), ("",))[0], 100),
                *[f"{values[j]:.4g}" for values in partners.values()],
            )
            for j, r in enumerate(rows)
        ],
    )


def _duplicates(table: pd.DataFrame, texts: dict[int, tuple[str, str]]) -> str:
    found = table[table.near_duplicate_of.notna()]
    head = "<h2>Near-duplicates</h2>"
    if found.empty:
        return head + "<p>No row was dropped as a near-duplicate of a kept row.</p>"
    rows = []
    for _, row in found.sort_values("rank").head(_DUPLICATES_SHOWN).iterrows():
        of = int(row.near_duplicate_of)
        rows.append(
            (
                int(row["row"]),
                _clip(texts.get(int(row["row"]), ("",))[0], 90),
                of,
                _clip(texts.get(of, ("",))[0], 90),
                f"{row.similarity:.3f}",
            )
        )
    shown = f"the {len(rows)} best scored of " if len(found) > len(rows) else ""
    return (
        head + f"<p>{len(found):,} rows scored high enough to keep but were too similar to a "
        f"kept row; {shown}them:</p>"
        + _table(["row", "instruction", "kept row", "its instruction", "similarity"], rows)
    )


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _img(png: bytes) -> str:
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(columns: list[str], rows: Iterable[tuple[Any, ...]], show_header: bool = True) -> str:
    head = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>" if show_header else ""
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    return f'<td class="num">{value}</td>' if numeric else f"<td>{_e(value)}</td>"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split()) if limit <= 120 else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    """A parameter as one short line in words, not a Python repr: long lists are counted, not
    printed; None is "off" and booleans "yes"/"no"."""
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(map(_short, value[:8]))
        return f"{len(value)} items: {shown}, …" if len(value) > 8 else shown
    if isinstance(value, dict):
        return "; ".join(f"{key} {_short(v)}" for key, v in value.items())
    return str(value)
