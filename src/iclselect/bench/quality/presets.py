"""What a `bench quality` run is: a preset (pool size, budgets, seeds, training, eval sets,
method settings) and the command's own choices (pool file, methods, model), overridable field
by field and recorded whole with the results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from iclselect.errors import UsageError
from iclselect.lm.model import DEFAULT_MODEL
from iclselect.tune.finetune import TrainConfig

# An arm spec: (label shown, registered method, options that arm fixes). Users name the label.
ArmSpec = tuple[str, str, dict[str, Any]]
# "longest" is the length baseline, longest responses first.
ALIASES: dict[str, ArmSpec] = {"longest": ("longest", "length", {"order": "long"})}
DEFAULT_METHODS = ("wici", "miwv", "icon", "ifd", "longest")

# The shipped eval sets (assets/eval; SOURCES.md there gives origin and license of each).
GSM8K, MMLU, SELF_INSTRUCT = (
    "gsm8k_train_first500.jsonl.gz", "mmlu_dev_5shot.jsonl.gz", "self_instruct_seed_tasks.jsonl.gz",
)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    pool_rows: int  # the first valid rows of the pool file trained on (0: all but the held-out)
    budgets: tuple[float, ...]
    seeds: int  # random subsets per budget
    train: TrainConfig
    heldout: int  # pool rows after the training rows, evaluated on (at most a fifth of the file)
    eval_files: tuple[tuple[str, int], ...]  # (shipped eval set, rows kept; 0: all)
    generate_tokens: int  # greedy tokens per GSM8K answer (0: no exact match)
    options: dict[str, Any] = field(default_factory=dict)  # method options ("wici.n_probes")
    max_length: int = 1024  # scoring and eval context limit
    eval_rows: int = 0  # if > 0, a cap on every eval set's items (a quick look)
    matched_seeds: int = -1  # length-matched random subsets per method and budget (-1: seeds)
    # More arms: a method at other settings, e.g. ("miwv-min3", "miwv", {"min_tokens": 3}),
    # tuned and compared like any method (the hook for token-count-aware variants).
    extra_arms: tuple[ArmSpec, ...] = ()
    # If > 0, ICon's assessment rows are drawn (icon.assessment_size of them, seeded) from the
    # shipped set's rows whose prompt and response fit in this many tokens (data.py).
    icon_assessment_tokens: int = 0
    full: bool = True  # also tune on the whole pool (the ceiling the subsets are read against)
    # If > 0, this share of the training rows is replaced by planted defects (defects.py), each
    # labelled, and every method is also judged by how it ranks them (junk.py).
    corrupt: float = 0.0
    corrupt_seed: int = 0

    @property
    def n_matched(self) -> int:
        return self.seeds if self.matched_seeds < 0 else self.matched_seeds


# wICI as its authors' code runs it (the published numbers come from the code): IFD as a
# perplexity ratio, only helped probes averaged, candidates with IFD > 1 skipped, the K nearest
# (of any IFD) as probes.
WICI_CODE: ArmSpec = (
    "wici-code", "wici",
    {"ifd_form": "ppl", "aggregate": "code", "prefilter_ifd": True, "probes": "topk",
     "probe_prefilter_ifd": False},
)  # fmt: skip
# wICI as published, without the two IFD > 1 guards iclselect's default adds (the `wici` arm:
# no candidate and no probe whose own IFD is above 1): their cost or gain, clean and dirty.
WICI_PAPER: ArmSpec = (
    "wici-paper", "wici", {"prefilter_ifd": False, "probe_prefilter_ifd": False}
)  # fmt: skip
# RDS+ against the same short assessment rows ICon uses (run_quality points it there).
RDS: ArmSpec = ("rds", "rds", {})

# The loss-based methods with iclselect's guards on (docs/METHODS.md, "Guards on a dirty pool");
# IFD drops IFD > 1 by default already.
GUARDED: dict[str, dict[str, Any]] = {
    "ifd": {"loss_outliers": True},
    "miwv": {"loss_outliers": True, "prefilter_ifd": True},
    "perplexity": {"loss_outliers": True, "prefilter_ifd": True},
}

ICON_TOKENS = 112  # cpu: ICon's assessment rows are the paper's rows that fit in this many tokens

# The cpu preset's wall time on 2 cores with nothing else running, from its run's token counts
# (BENCHMARKS.md, the cpu preset's section; bf16) at the rates ICon and the arms run alone:
#   wICI   7,000 requests, 1.11M tokens                                           ~18 min
#   MIWV   2,000 requests, 0.3M tokens (its L(y|x) are wICI's)                     ~5 min
#   IFD    its requests are wICI's own: all from the store                          ~0 s
#   ICon   40,100 requests, ~9.3M tokens at ~1,040 tokens/s: T and its random-text
#          control, a fresh one per pair (the code's), before each of 100 rows for 200
#          candidates. Random characters take a token per 1-2 characters, so a control
#          runs longer than its candidate: 9,039 answers had their demo cut at 512 tokens  ~2.5 h
#   arms   37 (untuned, 6 methods, 5 random, 25 length-matched): training on 100 rows
#          takes 31-112 s, evaluating 1,460 items 233-255 s (~1,000 tokens/s)    ~3.1 h
#   total                                                                          ~6 h
# Twice the 3 hours asked of it: ICon's own minimum (200 candidates x 100 rows, per-pair
# controls) is 2.5 h here, and every eval set whole is 4 minutes an arm. Since then the full
# pool (about 9 minutes), wici-code, wici-paper and rds (3 arms and 15 length-matched
# controls, about 1.6 h) joined: about 8 hours now. The store and the arm directories resume
# a stopped run, so it can run in parts.

PRESETS = {
    # The quick look, under an hour on 2 cores: 2,000 Alpaca rows, 1% and 5% budgets, one
    # epoch. On 2 cores (BENCHMARKS.md, the cpu-small section) wICI with 1 probe per candidate
    # takes 14 min, each of the 18 evaluations about 30 s, so wICI gets 1 probe, ICon 40 exactly
    # scored candidates against 8 assessment rows (the selector ranks the rest), the eval sets
    # are capped, one length-matched control per method and budget, and GSM8K gets no greedy
    # answers (the 135M model solves none, at 15 s an arm).
    "cpu-small": Preset(
        pool_rows=2000,
        budgets=(0.01, 0.05),
        seeds=3,
        train=TrainConfig(epochs=1, lr=5e-5, batch_size=4, max_length=512, checkpoint_every=100),
        heldout=100,
        eval_files=((GSM8K, 40), (MMLU, 40), (SELF_INSTRUCT, 80)),
        generate_tokens=0,
        # 40 exact scores leave 8 held out, too few to judge ICon's selector: a benchmark
        # measures the subset it picks all the same (its manifest records the doubt).
        options={
            "wici.n_probes": 1,
            "icon.exact": 40,
            "icon.assessment_size": 8,
            "icon.trust_selector": True,
        },
        max_length=512,
        matched_seeds=1,
    ),
    # The methods at their own settings, about 8 hours on 2 cores (above):
    # wICI with 5 difficult probes, MIWV and IFD as published, ICon with 200 exactly scored
    # candidates against 100 assessment rows and its selector ranking the rest; 5 random
    # seeds and 5 length-matched controls per method at one budget, 100 rows (the size of
    # cpu-small's 5%); every eval set whole; the full pool too, the ceiling every subset's
    # recovered share is read against (about 4 more minutes of training).
    "cpu": Preset(
        pool_rows=1000,
        budgets=(0.10,),
        seeds=5,
        train=TrainConfig(epochs=1, lr=5e-5, batch_size=4, max_length=512, checkpoint_every=100),
        heldout=500,
        eval_files=((GSM8K, 0), (MMLU, 0), (SELF_INSTRUCT, 0)),
        generate_tokens=0,
        # ICon's selector ranks the pool even where its held-out AUC is at chance: the
        # benchmark measures the subset ICon picks (the manifest records the doubt).
        options={
            "wici.n_probes": 5,
            "icon.exact": 200,
            "icon.assessment_size": 100,
            "icon.trust_selector": True,
        },
        max_length=512,
        icon_assessment_tokens=ICON_TOKENS,
        # MIWV's top 1% are one-word answers: its loss gap over one to three tokens is mostly
        # noise. The same method ranking only responses of 4+ tokens, beside the paper's form.
        extra_arms=(("miwv-min4", "miwv", {"min_tokens": 4}), WICI_CODE, WICI_PAPER, RDS),
    ),
    # Where selection should pay: the cpu pool with 30% of its rows replaced by planted defects
    # (defects.py), each method judged by the AUC of clean over planted rows and the planted
    # share of its subset, beside the fine-tune gains and the full pool's ceiling. Cheaper
    # than cpu so that it fits 4 hours on 2 cores (it ran in 73 minutes: BENCHMARKS.md, the
    # dirty preset's section): wICI with 2 difficult probes (4 requests a sample, not 7),
    # ICon with 60 exactly scored candidates against 40 assessment rows (cpu: 200 x 100, 2.5 h),
    # 3 random seeds and no length-matched controls (12 arms, about an hour: on this pool a
    # subset's planted rows, which it reports, are what a length control would miss; cpu
    # carries them), GSM8K and MMLU capped at 200 items (the held-out Alpaca rows and
    # self-instruct whole: the clean sets the gains are read on).
    "dirty": Preset(
        pool_rows=1000,
        budgets=(0.10,),
        seeds=3,
        train=TrainConfig(epochs=1, lr=5e-5, batch_size=4, max_length=512, checkpoint_every=100),
        heldout=500,
        eval_files=((GSM8K, 200), (MMLU, 200), (SELF_INSTRUCT, 0)),
        generate_tokens=0,
        options={
            "wici.n_probes": 2,
            "icon.exact": 60,
            "icon.assessment_size": 40,
            "icon.trust_selector": True,
        },
        max_length=512,
        matched_seeds=0,
        icon_assessment_tokens=ICON_TOKENS,
        corrupt=0.3,
        # The guards, each beside its method as published (docs/METHODS.md, "Guards on a dirty
        # pool"): wici (the default) takes no candidate and no probe whose own IFD is above 1
        # (a row whose instruction does not help its response: refusals, mismatched
        # responses), wici-paper takes them; *-guarded leave out rows whose response loss is
        # an outlier above the pool's (word salad) and, like IFD by default and wICI, rows
        # whose own IFD is above 1 (BENCHMARKS.md: neither guard alone brings MIWV or
        # perplexity to random's planted share on this pool).
        extra_arms=(
            ("perplexity", "perplexity", {}),
            WICI_CODE,
            RDS,
            WICI_PAPER,
            ("ifd-guarded", "ifd", GUARDED["ifd"]),
            ("miwv-guarded", "miwv", GUARDED["miwv"]),
            ("perplexity-guarded", "perplexity", GUARDED["perplexity"]),
        ),
    ),
    # A 0.5-8B model from a local directory (--model), the whole pool, paper method settings.
    "gpu": Preset(
        pool_rows=0,
        budgets=(0.01, 0.05, 0.10),
        seeds=5,
        train=TrainConfig(epochs=3, lr=2e-5, batch_size=16, max_length=2048, checkpoint_every=200),
        heldout=1000,
        eval_files=((GSM8K, 0), (MMLU, 0), (SELF_INSTRUCT, 0)),
        generate_tokens=320,
    ),
}


@dataclass
class QualityConfig:
    out: str
    preset: str = "cpu-small"
    pool: str | None = None  # any dataset iclselect reads; None: the shipped Alpaca slice
    methods: tuple[str, ...] = DEFAULT_METHODS
    scores: dict[str, str] = field(default_factory=dict)  # name -> a run's scores.parquet
    evals: tuple[str, ...] = ()  # more eval files, any supported format
    model: str = DEFAULT_MODEL
    template: str = "chat"
    device: str = "auto"
    store: str | None = None  # scoring result store; None = <out>/store.sqlite
    quiet: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # Preset or TrainConfig fields

    def resolved(self) -> Preset:
        if self.preset not in PRESETS:
            raise UsageError(f"--preset must be one of {', '.join(PRESETS)}; got {self.preset!r}")
        preset = PRESETS[self.preset]
        train_keys = set(asdict(preset.train))
        preset_keys = {k for k in asdict(preset) if k != "train"}
        unknown = set(self.overrides) - train_keys - preset_keys
        if unknown:
            raise UsageError(f"unknown bench quality setting(s): {', '.join(sorted(unknown))}")
        train = {k: v for k, v in self.overrides.items() if k in train_keys}
        rest = {k: v for k, v in self.overrides.items() if k not in train_keys}
        return replace(preset, train=replace(preset.train, **train), **rest)

    def arm_specs(self, preset: Preset) -> list[ArmSpec]:
        """The methods whose subsets are tuned on: --methods, then the preset's extra arms."""
        if "random" in self.methods:
            raise UsageError(
                "--methods: random always runs, as the baseline (--seeds sets how often)"
            )
        specs = [ALIASES.get(name, (name, name, {})) for name in self.methods]
        specs += [spec for spec in preset.extra_arms if spec[0] not in self.methods]
        labels = [label for label, _, _ in specs] + list(self.scores)
        if len(set(labels)) != len(labels):
            raise UsageError(f"--methods: each arm once; got {', '.join(labels)}")
        return specs
