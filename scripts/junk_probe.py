"""Scoring only, no fine-tuning: how each method ranks planted defects.

Plants defects (bench/quality/defects.py) in the first N rows of the shipped Alpaca pool, scores
the dirty pool with each method through one store, and prints per method the AUC of clean over
planted rows (overall and per kind; bench/quality/junk.py), the planted share of its top 10%
(its own selection, near-duplicate step included) and, for wICI, the mean score and own IFD
per kind. Minutes, where `bench quality --preset dirty` takes hours: a first look at which
methods fall for junk, not a verdict on what a subset teaches.

    python scripts/junk_probe.py --rows 300 --store runs/junk/store.sqlite
"""

from __future__ import annotations

import argparse
import gzip
import json
import time

import iclselect
from iclselect.bench.quality.data import POOL_ASSET, asset
from iclselect.bench.quality.defects import plant
from iclselect.bench.quality.junk import junk_report, planted_share

ARMS = (
    ("length", "length", {}),
    ("ifd", "ifd", {}),
    ("perplexity", "perplexity", {}),
    ("miwv", "miwv", {}),
    ("wici-paper", "wici", {"prefilter_ifd": False, "probe_prefilter_ifd": False}),
    ("wici-min4", "wici", {"min_tokens": 4, "prefilter_ifd": False, "probe_prefilter_ifd": False}),
    ("wici", "wici", {}),
    ("wici-code", "wici", {"ifd_form": "ppl", "aggregate": "code", "prefilter_ifd": True,
                           "probes": "topk", "probe_prefilter_ifd": False}),
    ("rds", "rds", {"target_size": 100}),
    ("ifd-loss", "ifd", {"loss_outliers": True}),
    ("miwv-loss", "miwv", {"loss_outliers": True}),
    ("perplexity-loss", "perplexity", {"loss_outliers": True}),
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--store", default="runs/junk/store.sqlite")
    parser.add_argument("--only", default="", help="comma-separated arm labels (default: all)")
    args = parser.parse_args()
    arms = [arm for arm in ARMS if not args.only or arm[0] in args.only.split(",")]
    rows = json.loads(gzip.decompress(asset(POOL_ASSET).read_bytes()))[: args.rows]
    planted = plant(rows, args.share, seed=0)
    labels = planted.labels
    for label, method, options in arms:
        started = time.perf_counter()
        scores = iclselect.score(
            planted.rows, method=method, store=args.store, quiet=True, **options
        )
        frame = scores.to_pandas()
        frame = frame[frame["score"].notna()]
        higher_first = scores.scored.scores.higher_first
        ranked = frame.sort_values(["score", "row"], ascending=[not higher_first, True])
        auc = junk_report(ranked["row"].tolist(), labels)
        top = iclselect.select(scores, fraction=0.1).rows
        seconds = time.perf_counter() - started
        print(f"{label} ({seconds:.0f} s): AUC " + json.dumps({k: round(v, 3) for k, v in
              auc.items()}) + f"; top 10%: {planted_share(top, labels):.0%} planted of "
              f"{len(top)} (pool {args.share:.0%})")  # fmt: skip
        if label == "wici-paper":
            frame = frame.assign(kind=[labels[r] for r in frame["row"]])
            print(frame.groupby("kind")[["score", "ifd", "loss"]].mean().round(4).to_string())


if __name__ == "__main__":
    main()
