"""RunConfig: every setting of a run, each field carrying its own help.

One list of fields serves every way in: the options of `iclselect run`, `compare` and `inspect`
are generated from it (iclselect.cli.options), a --config file's keys are its names
(iclselect.run.config_files), and iclselect.score() takes them as keywords. A field's metadata holds

    help    one paragraph for --help and the API's docstring; a callable when it is read from
            the method registry (called only when the help is shown, so no import cost)
    flags   the command-line names ("--method", "-m"); default: --the-field-name
    group   the --help panel it is listed under
    choices the values it takes, shown as the option's metavar

Help strings are written for the command line (they name options as --flags); the API's
docstring lists the same text under the keyword names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iclselect.errors import UsageError
from iclselect.infra.values import checked
from iclselect.selectors import Budget, check_tau

if TYPE_CHECKING:
    from iclselect.methods.registry import Method

DEFAULT_FRACTION = 0.1  # compare's equal budget for every method, unless one is given
EXECUTORS = ("local", "ray", "vllm")
# The same names as iclselect.lm.DEFAULT_MODEL and iclselect.embed.DEFAULT_EMBEDDER (a test
# holds them equal): importing those packages loads torch, which `iclselect --help` must not.
DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"

INPUT = "Input"
MODEL = "Model"
BUDGET = "Budget (pick one; default: the method paper's headline fraction)"
METHOD = "Method (defaults = the papers; `iclselect methods` lists options)"
ENGINE = "Engine"


def setting(
    default: Any = dataclasses.MISSING,
    help: str | Callable[[], str] = "",
    *,
    flags: tuple[str, ...] = (),
    group: str | None = None,
    choices: tuple[str, ...] = (),
    show_default: bool = True,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A RunConfig field: its default and how it is documented and spelled on the command line."""
    metadata = {
        "help": help,
        "flags": flags,
        "group": group,
        "choices": choices,
        "show_default": show_default,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _methods_help() -> str:
    from iclselect.methods.registry import METHODS

    return f"Scoring method: {', '.join(METHODS)} (`iclselect methods` describes them)."


def _fraction_help() -> str:
    """The default budget of every method, from the registry: the ones that differ from
    DEFAULT_FRACTION by name, the rest as 'others'."""
    from iclselect.methods.registry import METHODS

    first = next(iter(METHODS))
    named = [
        f"{m.name} {m.fraction:g}"
        for m in METHODS.values()
        if m.name == first or m.fraction != DEFAULT_FRACTION
    ]
    others = "" if len(named) == len(METHODS) else f", others {DEFAULT_FRACTION:g}"
    return (
        "Keep this fraction of the distinct scored rows (default: the method paper's, "
        f"{', '.join(named)}{others}; compare: {DEFAULT_FRACTION:g} for all)."
    )


def _tau_help() -> str:
    from iclselect.methods.registry import METHODS

    with_tau = [f"{m.tau:g} for {m.name}" for m in METHODS.values() if m.tau is not None]
    return (
        "Near-duplicate threshold: a row is skipped if its cosine similarity to an already "
        "kept row is >= tau (above 0; 1.0 or more turns it off). Default: the method's paper "
        f"({', '.join(with_tau) or 'none has one'}, off for the others)."
    )


@dataclass
class RunConfig:
    """Every setting of a run; the CLI's options, a --config file's keys and the API's keywords
    are these fields."""

    # A path; through the Python API also rows in memory (see io.read_input).
    data: Any = setting(  # noqa: RUF009 (setting() is dataclasses.field with metadata)
        help="Dataset file or directory (Hugging Face save_to_disk, Parquet/Arrow shards, or a "
        "LLaMA-Factory dataset_info.json with --dataset); - reads JSON or JSON Lines from "
        "standard input (give --format). Format is detected from the extension and the keys of "
        "the rows. May come from --config instead.",
        show_default=False,
    )
    out: str = setting(
        help="Output directory (default: runs/<data name>).",
        flags=("--out", "-o"),
        show_default=False,
    )
    method: str = setting("wici", _methods_help, flags=("--method", "-m"), group=METHOD)
    # Method options by name ("n_probes") or, to address one method in a compare, by
    # "method.name" ("wici.n_probes"). Strings are converted to the option's type.
    options: dict[str, Any] = setting(  # noqa: RUF009
        help="Method option KEY=VALUE, repeatable (e.g. -s n_probes=3; in compare, name the "
        "method: -s nuggets.anchors=20). `iclselect methods` lists every option.",
        flags=("--set", "-s"),
        group=METHOD,
        show_default=False,
        factory=dict,
    )
    format: str = setting(
        "auto",
        "Row schema: auto, alpaca, sharegpt or messages.",
        group=INPUT,
        choices=("auto", "alpaca", "sharegpt", "messages"),
    )
    fields: dict[str, str] | None = setting(  # noqa: RUF009
        None,
        "Map our field names to your columns: NAME=COLUMN pairs joined by commas, e.g. "
        "instruction=q,output=a for columns q and a.",
        group=INPUT,
    )
    dataset: str | None = setting(
        None,
        "Entry of a LLaMA-Factory dataset_info.json given as DATA (the file or its "
        "directory): its file, formatting, columns and tags are read from the entry, and the "
        "output gets a dataset_info.json entry '<name>_<method>' for the subset.",
        group=INPUT,
        show_default=False,
    )
    split: str | None = setting(
        None,
        "Split to read of a Hugging Face DatasetDict directory (save_to_disk with splits); "
        "needed when it holds more than one.",
        group=INPUT,
        show_default=False,
    )
    skip_invalid: bool = setting(
        False,
        "Drop rows with a bad field instead of stopping; manifest.json and scores.parquet "
        "list each dropped row and why.",
        group=INPUT,
    )
    model: str = setting(
        DEFAULT_MODEL,
        "Causal LM: the embedded default, a local Hugging Face model directory, or a hub "
        "id (Qwen/Qwen2.5-1.5B-Instruct) resolved through the Hugging Face cache; set "
        "HF_HUB_OFFLINE=1 to use the cache alone.",
        group=MODEL,
    )
    template: str = setting(
        "chat",
        "Prompt format: chat (the model's chat template), alpaca "
        "('### Instruction:' ... '### Response:', the ICon paper's), plain "
        "('{instruction}\\n{response}', the wICI code's) or reference: each method's own "
        "reference-code format, tokenised, cut and scored as that code does, with that code's "
        "options (wICI: ifd_form=ppl, aggregate=code, prefilter_ifd=true, "
        "probe_prefilter_ifd=false; Nuggets: "
        "anchor_space=model; each quirk of its tokenisation, `iclselect methods` lists them), "
        "to reproduce a published selection; --set overrides any of them.",
        group=MODEL,
        choices=("chat", "alpaca", "plain", "reference"),
    )
    # auto: bf16 on GPUs, on CPUs whichever a matmul probe finds faster
    dtype: str = setting(
        "auto",
        "Compute dtype: auto, fp32, bf16 or fp16. auto = bf16 on GPUs; on CPUs the "
        "faster of fp32 and bf16 by a one-second matmul probe, remembered per machine.",
        group=MODEL,
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    device: str = setting(
        "auto",
        "auto (CUDA when present), cpu or cuda.",
        group=MODEL,
        choices=("auto", "cpu", "cuda"),
    )
    embedder: str = setting(
        DEFAULT_EMBEDDER,
        "Sentence embedder for neighbours: the embedded all-MiniLM-L6-v2, or any "
        "sentence-transformers model by local directory or hub id.",
        group=MODEL,
    )
    fraction: float | None = setting(None, _fraction_help, group=BUDGET, show_default=False)
    count: int | None = setting(None, "Keep this many rows.", group=BUDGET)
    threshold: float | None = setting(
        None,
        "Keep every row whose score, as scores.parquet shows it, is at least this; at most "
        "this for a method that keeps low scores first (perplexity order=low, length "
        "order=short).",
        group=BUDGET,
    )
    # Near-duplicate threshold (cosine of instruction+response embeddings); None: the method's
    # own (0.9 for wICI, whose paper has the diversity step; off for the others).
    tau: float | None = setting(None, _tau_help, group=BUDGET, show_default=False)
    max_batch_tokens: int | None = setting(
        None,
        "Tokens per forward pass; requests are packed end to end, without padding "
        "(default: 2048 on a CPU, where taller rows fall out of cache; 16384 on a GPU).",
        group=ENGINE,
        show_default=False,
    )
    max_length: int = setting(
        2048,
        "Longest sequence; longer ones lose context from the left (demo first); a "
        "response is cut only if it alone is longer. A row left with none of its own context "
        "is not ranked (reason too_long).",
        group=ENGINE,
    )
    executor: str = setting(
        "local",
        "Where the model runs: local (this process), ray (--workers model copies on a "
        "Ray cluster; same batches, same numbers; a lost worker costs only its batches) or "
        "vllm (vLLM on this machine's GPU; extra iclselect[vllm]).",
        group=ENGINE,
        choices=EXECUTORS,
    )
    workers: int = setting(2, "Ray workers, one model copy each.", group=ENGINE)
    ray_address: str | None = setting(
        None,
        "Ray cluster to join (e.g. auto, or ray://head:10001); default: start Ray here.",
        group=ENGINE,
        show_default=False,
    )
    gpus_per_worker: float = setting(0.0, "GPUs each Ray worker takes.", group=ENGINE)
    store: str | None = setting(
        None,
        "Result store (SQLite). Rerunning with the same store recomputes nothing and a "
        "killed run resumes; share one store across runs and methods to reuse answers "
        "(default: <out>/store.sqlite).",
        group=ENGINE,
        show_default=False,
    )
    add_scores: bool = setting(
        False,
        "Also write subset_scored/: the kept rows with their score columns "
        "(iclselect_score, iclselect_rank, ...) as a Hugging Face dataset (load_from_disk).",
    )
    report: bool = setting(
        True,
        "Write report.html: why rows were kept or dropped, score distribution, a map of "
        "the pool and its topic coverage (self-contained; opens in any browser).",
    )
    quiet: bool = setting(
        False, "No progress output; warnings still show.", flags=("--quiet", "-q")
    )

    def __post_init__(self) -> None:
        """Every setting's value is checked here, when the config is made: a bad one fails
        before any data is read or model loaded, never after the scoring (the machine's own
        limits, CUDA and optional packages, are iclselect.run.preflight's)."""
        for name, spec in FIELDS.items():
            choices = spec.metadata["choices"]
            value = getattr(self, name)
            if (
                choices
                and value not in choices
                and not (name == "device" and _gpu_by_number(value))
            ):
                numbered = " or cuda:N" if name == "device" else ""
                raise UsageError(
                    f"{_flag(name)} must be one of {', '.join(choices)}{numbered}; got {value!r}"
                )
        for name, least in (("workers", 1), ("max_length", 1), ("max_batch_tokens", 1)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise UsageError(f"{_flag(name)} must be at least {least}; got {value}")
        if self.gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker must be 0 or more; got {self.gpus_per_worker}")
        if self.tau is not None:
            check_tau(self.tau)
        if self.fraction is not None or self.count is not None or self.threshold is not None:
            Budget(self.fraction, self.count, self.threshold)

    def budget(self, method: Method | None = None) -> Budget:
        """The budget given, or else the method's paper's headline fraction (compare passes no
        method: every method then gets the same DEFAULT_FRACTION)."""
        if self.fraction is None and self.count is None and self.threshold is None:
            return Budget(fraction=method.fraction if method else DEFAULT_FRACTION)
        return Budget(self.fraction, self.count, self.threshold)

    def options_for(self, method: Method, prefixed_only: bool = False) -> dict[str, Any]:
        """The options addressed to `method`: "method.name" keys, and bare "name" keys unless
        `prefixed_only` (a compare, where a bare key would be ambiguous), over the reference
        code's values under --template reference."""
        chosen: dict[str, Any] = dict(method.reference) if self.template == "reference" else {}
        for key, value in self.options.items():
            owner, dot, name = key.rpartition(".")
            if dot and owner == method.name:
                chosen[name] = value
            elif not dot:
                if prefixed_only:
                    raise UsageError(
                        f"--set {key}: with several methods, name the method: METHOD.{key}"
                    )
                chosen[key] = value
        return chosen

    def configs_for(self, methods: list[Method]) -> list[Any]:
        """Each method's options, configured (and so checked); with several methods (compare,
        inspect), every option names its method."""
        names = [m.name for m in methods]
        for key in self.options:
            owner = key.rpartition(".")[0]
            if owner and owner not in names:
                raise UsageError(f"--set {key}: {owner!r} is not among --methods {','.join(names)}")
        several = len(methods) > 1
        return [m.configure(self.options_for(m, prefixed_only=several)) for m in methods]

    def tau_for(self, method: Method) -> float | None:
        return self.tau if self.tau is not None else method.tau


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RunConfig)}


def _gpu_by_number(device: str) -> bool:
    """cuda:0, cuda:1, ...: a GPU by number, beyond the choices --help lists."""
    return re.fullmatch(r"cuda:\d+", device) is not None


def _flag(name: str) -> str:
    """The command-line name of setting `name` (--max-length)."""
    flags = FIELDS[name].metadata["flags"]
    return flags[0] if flags else "--" + name.replace("_", "-")


def help_text(name: str) -> str:
    """The help of field `name`, read from the registry where it is generated."""
    text = FIELDS[name].metadata["help"]
    return text() if callable(text) else text


def unknown_key(key: str, where: str, also: tuple[str, ...] = ()) -> str:
    """ "WHERE: unknown key 'modle' (did you mean 'model'?)", naming the nearest field."""
    from iclselect.methods.options import did_you_mean

    return f"{where}: unknown key {key!r}{did_you_mean(key, (*FIELDS, *also))}"


def build(settings: dict[str, Any]) -> RunConfig:
    """The RunConfig of `settings` (keys named as its fields; unset ones take the defaults).
    DATA is required; --out defaults to runs/<data name>; paths become strings."""
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise UsageError(unknown_key(unknown[0], "settings") + f"; keys: {', '.join(FIELDS)}")
    if settings.get("data") is None:
        raise UsageError("give DATA, or a --config file with a 'data' key")
    values = dict(settings)
    if values.get("options") is None:
        values.pop("options", None)
    if isinstance(values["data"], os.PathLike):
        values["data"] = os.fspath(values["data"])
    if values.get("out") is None:
        if not isinstance(values["data"], str):
            raise UsageError("give out=, the directory to write to")
        name = "stdin" if values["data"] == "-" else Path(values["data"]).name.split(".")[0]
        values["out"] = str(Path("runs") / name)
    values["out"] = str(values["out"])
    if values.get("store") is not None:
        values["store"] = str(values["store"])
    hints = typing.get_type_hints(RunConfig)
    return RunConfig(**{name: checked(value, hints[name], name) for name, value in values.items()})
