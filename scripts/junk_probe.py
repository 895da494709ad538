"""Scoring only, no fine-tuning: how each method ranks planted defects.

Plants defects (bench/quality/defects.py) in a pool, scores the dirty pool with each method
through one store, and prints per method the AUC of clean over planted rows (overall and per
kind; bench/quality/junk.py), the planted share of its top 10% (its own selection, near-duplicate
step included) and, for every wICI arm, the kinds of its probes and its mean score per kind; for
the paper's wICI also the mean in-context influence per candidate kind and probe kind (why it
prefers junk). Minutes, where `bench quality --preset dirty` takes hours: which methods fall for
junk, not a verdict on what a subset teaches.

    python scripts/junk_probe.py --rows 300 --store runs/junk/store.sqlite
    # the dirty preset's own pool and settings, from its run's store (no new model work):
    python scripts/junk_probe.py --preset dirty --store runs/quality-dirty/store.sqlite
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

import iclselect
from iclselect.bench.quality.data import split_pool
from iclselect.bench.quality.defects import plant
from iclselect.bench.quality.junk import junk_report, planted_share
from iclselect.bench.quality.presets import GUARDED, QualityConfig

PAPER = {"prefilter_ifd": False, "probe_prefilter_ifd": False}
ARMS = (
    ("length", "length", {}),
    ("ifd", "ifd", {}),
    ("perplexity", "perplexity", {}),
    ("miwv", "miwv", {}),
    ("wici-paper", "wici", PAPER),
    ("wici-min4", "wici", {**PAPER, "min_tokens": 4}),
    ("wici-cand", "wici", {"probe_prefilter_ifd": False}),
    ("wici-probes", "wici", {"prefilter_ifd": False}),
    ("wici", "wici", {}),
    ("wici-code", "wici", {"ifd_form": "ppl", "aggregate": "code", "prefilter_ifd": True,
                           "probes": "topk", "probe_prefilter_ifd": False}),
    ("rds", "rds", {"target_size": 100}),
    ("ifd-loss", "ifd", {"loss_outliers": True}),
    ("miwv-loss", "miwv", {"loss_outliers": True}),
    ("perplexity-loss", "perplexity", {"loss_outliers": True}),
    ("miwv-ifd1", "miwv", {"prefilter_ifd": True}),
    ("perplexity-ifd1", "perplexity", {"prefilter_ifd": True}),
    ("miwv-guarded", "miwv", GUARDED["miwv"]),
    ("perplexity-guarded", "perplexity", GUARDED["perplexity"]),
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="", help="a bench quality preset's pool and settings")
    parser.add_argument("--rows", type=int, default=300, help="without --preset: the first rows")
    parser.add_argument("--share", type=float, default=0.3, help="without --preset")
    parser.add_argument("--store", default="runs/junk/store.sqlite")
    parser.add_argument("--only", default="", help="comma-separated arm labels (default: all)")
    args = parser.parse_args()
    arms = [arm for arm in ARMS if not args.only or arm[0] in args.only.split(",")]
    if args.preset:
        preset = QualityConfig(out="", preset=args.preset).resolved()
        share, settings = preset.corrupt, {"max_length": preset.max_length}
        options = preset.options
    else:
        preset = QualityConfig(out="", overrides={"pool_rows": args.rows}).resolved()
        share, settings, options = args.share, {}, {}
    split = split_pool(QualityConfig(out=""), preset)
    rows = split.dataset.table([s.row for s in split.train]).to_pylist()
    planted = plant(rows, share, seed=preset.corrupt_seed)
    labels = planted.labels
    for label, method, fixed in arms:
        own = {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith(f"{method}.")}
        started = time.perf_counter()
        scores = iclselect.score(
            planted.rows, method=method, store=args.store, quiet=True,
            **settings, **{**own, **fixed},
        )  # fmt: skip
        frame = scores.to_pandas()
        frame = frame[frame["score"].notna()]
        higher_first = scores.scored.scores.higher_first
        ranked = frame.sort_values(["score", "row"], ascending=[not higher_first, True])
        auc = junk_report(ranked["row"].tolist(), labels)
        top = iclselect.select(scores, fraction=0.1).rows
        seconds = time.perf_counter() - started
        print(f"{label} ({seconds:.0f} s): AUC " + json.dumps({k: round(v, 3) for k, v in
              auc.items()}) + f"; top 10%: {planted_share(top, labels):.1%} planted of "
              f"{len(top)} (pool {share:.0%})")  # fmt: skip
        if method == "wici":
            probes(frame.assign(kind=[labels[r] for r in frame["row"]]), labels, label)


def probes(frame: pd.DataFrame, labels: list[str], label: str) -> None:
    """What a wICI arm's probes are, and what its scores are made of, per kind."""
    pairs = pd.DataFrame(
        [
            (kind, labels[probe], ici)
            for kind, rows, icis in zip(
                frame["kind"], frame["probe_rows"], frame["probe_ici"], strict=True
            )
            for probe, ici in zip(rows, icis, strict=True)
        ],
        columns=["candidate", "probe", "ici"],
    )
    shares = pairs["probe"].value_counts(normalize=True).round(3).to_dict()
    print(f"  probes by kind: {json.dumps(shares)}")
    print(
        "  mean score by kind: "
        + json.dumps(frame.groupby("kind")["score"].mean().round(4).to_dict())
    )
    if label == "wici-paper":
        print("  mean ICI, candidate kind (rows) by probe kind (columns):")
        table = pairs.pivot_table(index="candidate", columns="probe", values="ici", aggfunc="mean")
        print(table.round(4).to_string())


if __name__ == "__main__":
    main()
