"""Each method's subset against its controls, and the recommendation they add up to.

A method arm (a method at a budget) is compared, on every eval metric, with three references
trained at the same budget: random subsets (all seeds), random subsets length-matched to the
method's own selection (all seeds), and the longest-response subset. Each comparison is a
paired bootstrap interval over eval items (stats.py); "better" means the interval clears zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iclselect.bench.quality.stats import Interval, paired_bootstrap, recovered_share

CONTROLS = ("random", "matched", "full", "untuned")  # arm kinds that are not methods
REFERENCES = ("random", "length-matched", "longest")


def metrics(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(eval set, metric) columns: NLL for every set, accuracy where a set has it."""
    columns = []
    for name, values in summary["arms"][0]["eval"].items():
        columns.append((name, "nll"))
        if "accuracy" in values:
            columns.append((name, "accuracy"))
    return columns


def item_values(arm: dict[str, Any], name: str, metric: str) -> np.ndarray:
    key = "item_nll" if metric == "nll" else "item_correct"
    return np.asarray(arm["eval"][name][key], dtype=float)


def references(arm: dict[str, Any], arms: list[dict[str, Any]]) -> dict[str, list[dict]]:
    """The arms `arm` is judged against, by reference name (empty ones left out)."""
    same = [a for a in arms if a["budget"] == arm["budget"]]
    method = arm["method"]
    found = {
        "random": [a for a in same if a["method"] == "random"],
        "length-matched": [a for a in same if a["method"] == "matched" and a["of"] == method],
        "longest": [a for a in same if a["method"] == "longest" and arm["method"] != "longest"],
    }
    return {name: group for name, group in found.items() if group}


def comparisons(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every method arm against every reference it has, on every metric."""
    arms = summary["arms"]
    out = []
    for name, metric in metrics(summary):
        for arm in arms:
            if arm["method"] in CONTROLS:
                continue
            for reference, group in references(arm, arms).items():
                interval = paired_bootstrap(
                    item_values(arm, name, metric),
                    np.stack([item_values(a, name, metric) for a in group]),
                    lower_is_better=metric == "nll",
                )
                out.append(
                    {
                        "arm": arm["arm"],
                        "method": arm["method"],
                        "budget": arm["budget"],
                        "set": name,
                        "metric": metric,
                        "reference": reference,
                        "reference_arms": len(group),
                        "gain": interval.gain,
                        "low": interval.low,
                        "high": interval.high,
                        "verdict": interval.verdict,
                    }
                )
    return out


def interval(row: dict[str, Any]) -> Interval:
    return Interval(row["gain"], row["low"], row["high"])


def primary_set(summary: dict[str, Any]) -> str:
    """The set a recommendation rests on: held-out rows of the user's own pool if there are
    any (the distribution the subset is for), else the first eval set."""
    names = [name for name, _ in metrics(summary)]
    return next((n for n in names if n.endswith("-heldout")), names[0])


def recommendation(summary: dict[str, Any]) -> dict[str, Any]:
    """Which method and budget to use on this pool and model, or none, and why: on the primary
    set's NLL a method must beat random, its length-matched random and longest-response (the
    references this run has), each by an interval that clears zero."""
    primary = primary_set(summary)
    rows = [r for r in summary["comparisons"] if r["set"] == primary and r["metric"] == "nll"]
    by_arm: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], {})[row["reference"]] = row
    arms = {a["arm"]: a for a in summary["arms"]}

    def evidence(arm: str) -> str:
        parts = [
            f"vs {ref} {interval(row).text()} ({row['verdict']})"
            for ref, row in by_arm[arm].items()
        ]
        return f"{arm}: " + "; ".join(parts)

    def others(arm: str) -> str:
        """On the other sets' NLL: where it beats random."""
        wins = [
            r["set"]
            for r in summary["comparisons"]
            if r["arm"] == arm
            and r["metric"] == "nll"
            and r["set"] != primary
            and r["reference"] == "random"
            and r["verdict"] == "better"
        ]
        total = len({r["set"] for r in summary["comparisons"] if r["set"] != primary})
        return f"it beats random on {len(wins)} of the {total} other sets' NLL" + (
            f" ({', '.join(wins)})" if wins else ""
        )

    winners = [
        arm
        for arm, refs in by_arm.items()
        if arms[arm]["method"] != "longest"
        and "random" in refs
        and all(row["verdict"] == "better" for row in refs.values())
    ]
    unit = f"gain in mean per-token NLL on {primary} (positive: better), 95% paired bootstrap"
    if winners:
        best = max(winners, key=lambda arm: by_arm[arm]["random"]["gain"])
        arm = arms[best]
        checked = ", ".join(by_arm[best])
        text = (
            f"Use {arm['method']} at {arm['budget'] * 100:g}% of this pool: on {primary} it beats "
            f"{checked}, each by an interval that clears zero; {others(best)}."
        )
        return {
            "text": text,
            "method": arm["method"],
            "budget": arm["budget"],
            "primary": primary,
            "unit": unit,
            "evidence": [evidence(best)],
        }
    longest = [
        a
        for a, refs in by_arm.items()
        if arms[a]["method"] == "longest" and refs.get("random", {}).get("verdict") == "better"
    ]
    lines = [evidence(arm) for arm in by_arm]
    if longest:
        best = max(longest, key=lambda arm: by_arm[arm]["random"]["gain"])
        text = (
            f"None beats longest-response here: on {primary} no method clears random, its "
            f"length-matched random and longest-response together. Longest-response at "
            f"{arms[best]['budget'] * 100:g}% beats random; use it ({others(best)})."
        )
        return {
            "text": text,
            "method": "longest",
            "budget": arms[best]["budget"],
            "primary": primary,
            "unit": unit,
            "evidence": lines,
        }
    ran_longest = any(a["method"] == "longest" for a in summary["arms"])
    text = (
        f"None beats random here: on {primary} no method"
        + (", longest-response included," if ran_longest else "")
        + " beats random subsets of the same size by an interval that clears zero; selecting "
        "buys nothing measurable for this pool and model at these budgets."
    )
    return {
        "text": text,
        "method": None,
        "budget": None,
        "primary": primary,
        "unit": unit,
        "evidence": lines,
    }


def full_gain(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """On every metric, the full pool's gain over the untuned model with its 95% paired
    interval: where it reaches zero, no subset's recovered share is defined. Empty without a
    full-pool arm."""
    full, untuned = _full_and_untuned(summary["arms"])
    if full is None or untuned is None:
        return []
    out = []
    for name, metric in metrics(summary):
        gain = paired_bootstrap(
            item_values(full, name, metric),
            item_values(untuned, name, metric)[None, :],
            lower_is_better=metric == "nll",
        )
        out.append(
            {"set": name, "metric": metric, "gain": gain.gain, "low": gain.low, "high": gain.high}
        )
    return out


def _full_and_untuned(arms: list[dict[str, Any]]) -> tuple[dict | None, dict | None]:
    """The full-pool arm and the untuned one (None where the run has none)."""
    full = next((a for a in arms if a["method"] == "full"), None)
    untuned = next((a for a in arms if a["method"] == "untuned"), None)
    return full, untuned


def recovered(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per method arm and per budget's random seeds, on every metric: the share of the full
    pool's gain over the untuned model that the subset recovers, with its 95% paired interval
    (stats.recovered_share). Empty without a full-pool arm."""
    arms = summary["arms"]
    full, untuned = _full_and_untuned(arms)
    if full is None or untuned is None:
        return []
    groups: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        if arm["method"] == "random":
            groups.setdefault(f"random@{arm['budget'] * 100:g}%", []).append(arm)
        elif arm["method"] not in CONTROLS:
            groups[arm["arm"]] = [arm]
    out = []
    for name, metric in metrics(summary):
        for label, group in groups.items():
            share = recovered_share(
                np.stack([item_values(a, name, metric) for a in group]),
                item_values(full, name, metric),
                item_values(untuned, name, metric),
                lower_is_better=metric == "nll",
            )
            out.append(
                {
                    "arm": label,
                    "set": name,
                    "metric": metric,
                    "seeds": len(group),
                    "share": share.value,
                    "low": share.low,
                    "high": share.high,
                }
            )
    return out
