"""What a `bench quality` run writes: the Markdown table with intervals and the recommendation,
the CSV (one row per arm, each method arm with its intervals), the JSON (everything) and the
plot; and the section appended to BENCHMARKS.md."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

from iclselect.bench.quality.verdicts import REFERENCES, interval, metrics
from iclselect.io import replace_file


def markdown(summary: dict[str, Any]) -> str:
    """The arms' values (random and each length-matched control: mean ± sd over seeds), then per
    eval metric each method's gain over its references with 95% intervals, then the
    recommendation."""
    columns = metrics(summary)
    header = ["arm", "rows", "mean response chars", "train s"] + [
        f"{name} {'NLL' if metric == 'nll' else 'acc'}" for name, metric in columns
    ]
    lines = [_row(header), "|" + "---|" * len(header)]
    for label, group in _groups(summary["arms"]):
        cells = [
            label,
            f"{group[0]['rows']}",
            f"{statistics.fmean(a['mean_response_chars'] for a in group):.0f}",
            f"{statistics.fmean(a.get('train', {}).get('seconds', 0.0) for a in group):.0f}",
        ]
        cells += [_mean_sd([a["eval"][n][m] for a in group], m) for n, m in columns]
        lines.append(_row(cells))
    advice = summary["recommendation"]
    evidence = "\n".join(f"- {line}" for line in advice["evidence"])
    closing = f"**Recommendation.** {advice['text']}\n\nEvidence ({advice['unit']}):\n\n{evidence}"
    parts = [
        "\n".join(lines),
        gains(summary),
        recovered_table(summary),
        planted_table(summary),
        closing,
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def recovered_table(summary: dict[str, Any]) -> str:
    """Per arm and eval metric, the share of the full pool's gain over the untuned model that
    the subset recovers, with its 95% paired bootstrap interval; empty without a full arm."""
    rows = summary.get("recovered", [])
    if not rows:
        return ""
    columns = list(dict.fromkeys((r["set"], r["metric"]) for r in rows))
    header = ["arm", *(f"{n} {'NLL' if m == 'nll' else 'acc'}" for n, m in columns)]
    gains = {(g["set"], g["metric"]): g for g in summary.get("full_gain", [])}
    lines = [
        "Share of the full pool's gain over the untuned model that each subset recovers "
        "(100%: as good as tuning on every row), 95% paired bootstrap interval; n/a where the "
        "full pool's own gain (first row) is not clearly above zero, so a share of it means "
        "nothing:",
        "",
        _row(header),
        "|" + "---|" * len(header),
    ]
    if gains:
        cells = ["full: gain over untuned"]
        for name, metric in columns:
            cells.append(interval(gains[(name, metric)]).text(4 if metric == "nll" else 3))
        lines.append(_row(cells))
    for arm in dict.fromkeys(r["arm"] for r in rows):
        found = {(r["set"], r["metric"]): r for r in rows if r["arm"] == arm}
        cells = [arm]
        for key in columns:
            r = found[key]
            share = f"{r['share']:.0%} [{r['low']:.0%}, {r['high']:.0%}]"
            cells.append("n/a" if math.isnan(r["share"]) else share)
        lines.append(_row(cells))
    return "\n".join(lines)


def planted_table(summary: dict[str, Any]) -> str:
    """The dirty track: each method's AUC of clean over planted rows (overall and per kind)
    and each arm's share of planted rows, beside the pool's (random's expectation)."""
    planted = summary.get("planted")
    if not planted:
        return ""
    kinds = [k for k, n in planted["kinds"].items() if n]
    header = ["method", "AUC clean > planted", *kinds]
    lines = [
        f"Planted rows: {planted['pool_share']:.0%} of the pool ("
        + ", ".join(f"{k} {planted['kinds'][k]}" for k in kinds)
        + "). AUC of clean over planted rows in each method's ranking (1: every clean row "
        "first; 0.5: random order; below 0.5: the method prefers junk):",
        "",
        _row(header),
        "|" + "---|" * len(header),
    ]
    for method, auc in planted["auc"].items():
        lines.append(_row([method, f"{auc['all']:.3f}", *(f"{auc[k]:.3f}" for k in kinds)]))
    expected = f"{planted['pool_share']:.0%}"
    lines += [
        "",
        f"Share of planted rows in each subset (random expects {expected}):",
        "",
        _row(["arm", "planted share"]),
        "|---|---|",
    ]
    lines += [_row([arm, f"{share:.0%}"]) for arm, share in planted["subset_share"].items()]
    return "\n".join(lines)


def gains(summary: dict[str, Any]) -> str:
    """Per eval metric, a table: each method arm's gain over random, over its length-matched
    random and over longest-response (positive: the method is better), 95% paired bootstrap
    interval in brackets, and the verdict."""
    out = [
        "Gain over each reference (NLL: reference minus arm; accuracy: arm minus reference; "
        "positive is better), with its 95% paired bootstrap interval over eval items (random "
        "and length-matched seeds resampled too); **better** / *worse* only where the interval "
        "clears zero."
    ]
    rows = summary["comparisons"]
    for name, metric in metrics(summary):
        mine = [r for r in rows if r["set"] == name and r["metric"] == metric]
        if not mine:
            continue
        digits = 4 if metric == "nll" else 3
        lines = [
            f"*{name} {'NLL' if metric == 'nll' else 'accuracy'}*",
            "",
            _row(["arm", *(f"vs {r}" for r in REFERENCES)]),
            "|---|---|---|---|",
        ]
        for arm in dict.fromkeys(r["arm"] for r in mine):
            cells = [arm]
            for reference in REFERENCES:
                row = next(
                    (r for r in mine if r["arm"] == arm and r["reference"] == reference), None
                )
                cells.append("" if row is None else _verdict_cell(row, digits))
            lines.append(_row(cells))
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _verdict_cell(row: dict[str, Any], digits: int) -> str:
    text = interval(row).text(digits)
    mark = {"better": " **better**", "worse": " *worse*"}.get(row["verdict"], "")
    return text + mark


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _groups(arms: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Random arms grouped per budget, matched arms per method and budget; others alone."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        budget = f"{arm['budget'] * 100:g}%" if arm["budget"] is not None else ""
        same = [
            a
            for a in arms
            if a["method"] == arm["method"]
            and a["budget"] == arm["budget"]
            and a.get("of") == arm.get("of")
        ]
        if arm["method"] == "random":
            label = f"random@{budget} (mean ± sd, {len(same)} seeds)"
        elif arm["method"] == "matched":
            label = f"{arm['of']}-length-matched@{budget} (mean ± sd, {len(same)} seeds)"
        else:
            label = arm["arm"]
        groups.setdefault(label, []).append(arm)
    return list(groups.items())


def _mean_sd(values: list[float], metric: str) -> str:
    digits = 4 if metric == "nll" else 3
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def write_outputs(out: Path, summary: dict[str, Any], table: str) -> list[Path]:
    from iclselect.bench.quality.plot import quality_plot

    files = [out / "quality.json", out / "quality.md", out / "quality.csv", out / "quality.png"]
    replace_file(files[0], lambda t: t.write_text(json.dumps(summary, indent=1), "utf-8"))
    replace_file(files[1], lambda t: t.write_text(table, "utf-8"))
    replace_file(files[2], lambda t: t.write_text(to_csv(summary), "utf-8"))
    replace_file(files[3], lambda t: quality_plot(summary, t))
    return files


def to_csv(summary: dict[str, Any]) -> str:
    """One row per arm: its values, and for a method arm its gain over each reference with the
    interval (`SET.METRIC.vs_REFERENCE`, `_low`, `_high`; empty where it has none)."""
    columns = metrics(summary)
    rows = summary["comparisons"]
    gain_columns = [(n, m, r) for n, m in columns for r in REFERENCES]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["arm", "method", "of", "budget", "seed", "rows", "mean_response_chars", "train_seconds"]
        + [f"{name}.{metric}" for name, metric in columns]
        + [f"{n}.{m}.vs_{r}{end}" for n, m, r in gain_columns for end in ("", "_low", "_high")]
    )
    for arm in summary["arms"]:
        found = {(r["set"], r["metric"], r["reference"]): r for r in rows if r["arm"] == arm["arm"]}
        intervals = []
        for key in gain_columns:
            row = found.get(key)
            intervals += ["", "", ""] if row is None else [row["gain"], row["low"], row["high"]]
        writer.writerow(
            [
                arm["arm"],
                arm["method"],
                arm.get("of") or "",
                arm["budget"],
                arm["seed"],
                arm["rows"],
                f"{arm['mean_response_chars']:.1f}",
                f"{arm.get('train', {}).get('seconds', 0):.1f}",
            ]
            + [arm["eval"][name][metric] for name, metric in columns]
            + intervals
        )
    return buffer.getvalue()


def append_benchmarks(path: Path, result: Any, command: str) -> None:
    """A section for BENCHMARKS.md from a Quality `result`: command, machine, pool, eval sets,
    table, intervals and the recommendation, and the plot copied under docs/ beside it."""
    summary, table, files = result.summary, result.table, result.files
    preset = summary["config"]["preset"]
    image = path.parent / "docs" / f"bench_quality_{preset}.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(next(f for f in files if f.suffix == ".png").read_bytes())
    resolved = summary["config"]["preset_resolved"]
    train = resolved["train"]
    kind = "LoRA" if train["lora"] else "full fine-tuning"
    sets = "; ".join(
        f"{s['name']} ({s['items']} items"
        + (
            f", {n} with an empty reference left out"
            if (n := s["empty_reference_left_out"])
            else ""
        )
        + ")"
        for s in summary["eval_sets"]
    )
    scoring = summary["scoring"]["seconds"] / 60
    pool = summary["pool"]
    about = (
        f"Machine: {summary['machine']}. Whole command: {summary['seconds'] / 60:.1f} min "
        f"(scoring the pool: {scoring:.1f} min). Pool: the first {pool['rows']} valid rows of "
        f"`{pool['path']}`, {pool['heldout']} rows after them held out. Random subsets: "
        f"{resolved['seeds']} seeds per budget; length-matched controls: {summary['matched']} "
        f"seeds per method and budget. Method options: {resolved['options'] or 'defaults'}. "
        f"Training, every arm: {kind}, {train['epochs']} epoch(s), lr {train['lr']}, batch "
        f"{train['batch_size']}, at most {train['max_length']} tokens, seed {train['seed']}, "
        f"precision {train['precision']}, loss on response tokens only. Eval sets, each "
        f"checked disjoint from the pool (content id and sha256 of the folded prompt): {sets}. "
        "NLL is the mean per-token NLL of the reference reply (lower is better); acc is exact "
        "match (MMLU: the likeliest letter; GSM8K: the final number of a greedy answer)."
    )
    section = (
        f"\n### bench quality, {summary['date']}: preset {preset}\n\n`{command}`\n\n{about}\n\n"
        f"{table}\n![bench quality {preset}](docs/{image.name})\n"
    )
    with path.open("a", encoding="utf-8") as handle:
        handle.write(section)
