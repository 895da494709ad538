"""iclselect command line.

    iclselect run data/alpaca_demo_60.json --out runs/demo            # wICI, keep 10%
    iclselect run pool.jsonl --method miwv --fraction 0.01 --out runs/miwv
    iclselect run conv.parquet --fields instruction=question,output=answer --count 500
    iclselect compare pool.jsonl --methods wici,miwv,ifd,random --out runs/compare
    iclselect methods                                                  # what each costs

Every option has a --help entry; method defaults follow each method's paper.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from iclselect.pipeline import RunConfig, RunResult

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=(
        "Select the instruction-tuning samples that teach a model most.\n\n"
        "Scores every sample of a dataset (Alpaca, ShareGPT, OpenAI messages; JSON, JSONL, CSV, "
        "Parquet or a saved Hugging Face dataset) with a causal LM, and writes the best subset in "
        "the input's own format, with scores.parquet and manifest.json explaining every row."
    ),
)

_INPUT = "Input"
_MODEL = "Model"
_BUDGET = "Budget (pick one; default: the method paper's headline fraction)"
_METHOD = "Method (defaults = the papers; `iclselect methods` lists options)"
_ENGINE = "Engine"


def _parse_fields(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise typer.BadParameter("expected NAME=COLUMN[,NAME=COLUMN...], e.g. output=answer")
    return {name.strip(): column.strip() for name, column in pairs}


Data = Annotated[
    Path,
    typer.Argument(
        help="Dataset file or saved Hugging Face dataset directory; - reads JSON or JSON Lines "
        "from standard input (give --format). "
        "Format is detected from the extension and the keys of the rows.",
        show_default=False,
    ),
]
OptionalData = Annotated[
    Path | None,
    typer.Argument(
        help="Dataset file or directory (Hugging Face save_to_disk, Parquet/Arrow shards, or a "
        "LLaMA-Factory dataset_info.json with --dataset); - reads JSON or JSON Lines from standard "
        "input (give --format). Format is detected from the extension and the keys of the rows. "
        "May come from --config instead.",
        show_default=False,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML (or JSON) file of settings, keys named as these options (max_batch_tokens: "
        "4096; options: {n_probes: 3} for --set). Options given here override it. A run's "
        "manifest.json works too: `--config OUT/manifest.json` repeats that run.",
        show_default=False,
    ),
]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Output directory (default: runs/<data name>).", show_default=False
    ),
]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Method option KEY=VALUE, repeatable (e.g. -s n_probes=3; in compare, name the "
        "method: -s nuggets.anchors=20). `iclselect methods` lists every option.",
        show_default=False,
        rich_help_panel=_METHOD,
    ),
]
Format = Annotated[
    str,
    typer.Option(help="Row schema: auto, alpaca, sharegpt or messages.", rich_help_panel=_INPUT),
]
Fields = Annotated[
    str | None,
    typer.Option(
        help="Map our field names to your columns, e.g. instruction=question,output=answer.",
        rich_help_panel=_INPUT,
    ),
]
DatasetEntry = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="Entry of a LLaMA-Factory dataset_info.json given as DATA (the file or its "
        "directory): its file, formatting, columns and tags are read from the entry, and the "
        "output gets a dataset_info.json entry '<name>_<method>' for the subset.",
        show_default=False,
        rich_help_panel=_INPUT,
    ),
]
Split = Annotated[
    str | None,
    typer.Option(
        help="Split to read of a Hugging Face DatasetDict directory (save_to_disk with splits); "
        "needed when it holds more than one.",
        show_default=False,
        rich_help_panel=_INPUT,
    ),
]
SkipInvalid = Annotated[
    bool,
    typer.Option(
        help="Drop rows with a bad field instead of stopping; manifest.json and scores.parquet "
        "list each dropped row and why.",
        rich_help_panel=_INPUT,
    ),
]
Model = Annotated[
    str,
    typer.Option(
        help="Causal LM: the embedded default, a local Hugging Face model directory, or a hub "
        "id (Qwen/Qwen2.5-1.5B-Instruct) resolved through the Hugging Face cache; set "
        "HF_HUB_OFFLINE=1 to use the cache alone.",
        rich_help_panel=_MODEL,
    ),
]
TemplateName = Annotated[
    str,
    typer.Option(
        help="Prompt format: chat (the model's chat template), alpaca "
        "('### Instruction:' ... '### Response:', the ICon paper's) or plain "
        "('{instruction}\\n{response}', the wICI code's).",
        rich_help_panel=_MODEL,
    ),
]
EmbedderName = Annotated[
    str,
    typer.Option(
        help="Sentence embedder for neighbours: the embedded all-MiniLM-L6-v2, or any "
        "sentence-transformers model by local directory or hub id.",
        rich_help_panel=_MODEL,
    ),
]
Dtype = Annotated[
    str,
    typer.Option(
        help="Compute dtype: auto, fp32, bf16 or fp16. auto = bf16 on GPUs; on CPUs the "
        "faster of fp32 and bf16 by a one-second matmul probe, remembered per machine.",
        rich_help_panel=_MODEL,
    ),
]
Device = Annotated[
    str, typer.Option(help="auto (CUDA when present), cpu or cuda.", rich_help_panel=_MODEL)
]
Fraction = Annotated[
    float | None,
    typer.Option(
        help="Keep this fraction of the distinct scored rows (default: wici 0.1, miwv 0.01, "
        "icon 0.15, ifd 0.05, nuggets 0.01, others 0.1; compare: 0.1 for all).",
        show_default=False,
        rich_help_panel=_BUDGET,
    ),
]
Count = Annotated[int | None, typer.Option(help="Keep this many rows.", rich_help_panel=_BUDGET)]
Threshold = Annotated[
    float | None,
    typer.Option(help="Keep every row scoring at least this.", rich_help_panel=_BUDGET),
]
Tau = Annotated[
    float | None,
    typer.Option(
        help="Near-duplicate threshold: a row is skipped if its cosine similarity to an "
        "already kept row is >= tau (1.0 or more turns it off). Default: the method's paper "
        "(0.9 for wici, off for the others).",
        show_default=False,
        rich_help_panel=_BUDGET,
    ),
]
MaxBatchTokens = Annotated[
    int | None,
    typer.Option(
        help="Tokens per forward pass; requests are packed end to end, without padding "
        "(default: 2048 on a CPU, where taller rows fall out of cache; 16384 on a GPU).",
        show_default=False,
        rich_help_panel=_ENGINE,
    ),
]
MaxLength = Annotated[
    int,
    typer.Option(
        help="Longest sequence; longer ones lose context from the left (demo first); a "
        "response is cut only if it alone is longer. A row left with none of its own context "
        "is not ranked (reason too_long).",
        rich_help_panel=_ENGINE,
    ),
]
ExecutorName = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where the model runs: local (this process), ray (--workers model copies on a "
        "Ray cluster; same batches, same numbers; a lost worker costs only its batches) or "
        "vllm (vLLM on this machine's GPU; extra iclselect[vllm]).",
        rich_help_panel=_ENGINE,
    ),
]
Workers = Annotated[
    int, typer.Option(help="Ray workers, one model copy each.", rich_help_panel=_ENGINE)
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster to join (e.g. auto, or ray://head:10001); default: start Ray here.",
        show_default=False,
        rich_help_panel=_ENGINE,
    ),
]
GpusPerWorker = Annotated[
    float, typer.Option(help="GPUs each Ray worker takes.", rich_help_panel=_ENGINE)
]
Store = Annotated[
    Path | None,
    typer.Option(
        help="Result store (SQLite). Rerunning with the same store recomputes nothing and a "
        "killed run resumes; share one store across runs and methods to reuse answers "
        "(default: <out>/store.sqlite).",
        show_default=False,
        rich_help_panel=_ENGINE,
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        help="Replace an earlier run's outputs in --out (subset, scores.parquet, manifest.json, "
        "report.html, dataset_info.json, subset_scored/; the store is kept, other files are "
        "never touched). Without it, an --out holding a run is refused.",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
Report = Annotated[
    bool,
    typer.Option(
        help="Write report.html: why rows were kept or dropped, score distribution, a map of "
        "the pool and its topic coverage (self-contained; opens in any browser)."
    ),
]
AddScores = Annotated[
    bool,
    typer.Option(
        help="Also write subset_scored/: the kept rows with their score columns "
        "(iclselect_score, iclselect_rank, ...) as a Hugging Face dataset (load_from_disk).",
    ),
]


@app.command()
def run(
    ctx: typer.Context,
    data: OptionalData = None,
    out: Out = None,
    config: ConfigFile = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="Scoring method (`iclselect methods` lists them).",
            rich_help_panel=_METHOD,
        ),
    ] = "wici",
    set_: Settings = None,
    format: Format = "auto",
    fields: Fields = None,
    dataset: DatasetEntry = None,
    split: Split = None,
    skip_invalid: SkipInvalid = False,
    model: Model = "smollm2-135m-instruct",
    template: TemplateName = "chat",
    embedder: EmbedderName = "all-minilm-l6-v2",
    dtype: Dtype = "auto",
    device: Device = "auto",
    fraction: Fraction = None,
    count: Count = None,
    threshold: Threshold = None,
    tau: Tau = None,
    max_batch_tokens: MaxBatchTokens = None,
    max_length: MaxLength = 2048,
    executor: ExecutorName = "local",
    workers: Workers = 2,
    ray_address: RayAddress = None,
    gpus_per_worker: GpusPerWorker = 0.0,
    store: Store = None,
    add_scores: AddScores = False,
    report: Report = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print the requests, tokens, FLOPs and estimated time, then stop (a few "
            "requests run to measure this machine's speed; their answers are kept).",
            rich_help_panel=_ENGINE,
        ),
    ] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Score DATA with one method (wICI by default) and write the best subset.

    Writes to --out: subset.<input extension> (kept rows, byte-for-byte as in the input),
    scores.parquet (one row per input row: score, its components, selected, rank, reason) and
    manifest.json (counts, reasons, every parameter, model and package versions, timings).
    """
    from iclselect.api import run as run_pipeline
    from iclselect.pipeline import dry_run as estimate

    def go() -> None:
        settings = _settings(ctx, locals_)
        run_config = _config(settings)
        if settings.get("dry_run"):
            typer.echo(estimate(run_config))
            return
        typer.echo(_summary(run_pipeline(run_config, bool(settings.get("overwrite")))))

    locals_ = dict(locals())
    _guarded(go)


@app.command()
def compare(
    ctx: typer.Context,
    data: Data,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated methods to run on the same data, model and store.",
            rich_help_panel=_METHOD,
        ),
    ] = "wici,miwv,ifd,random",
    out: Out = None,
    set_: Settings = None,
    format: Format = "auto",
    fields: Fields = None,
    dataset: DatasetEntry = None,
    split: Split = None,
    skip_invalid: SkipInvalid = False,
    model: Model = "smollm2-135m-instruct",
    template: TemplateName = "chat",
    embedder: EmbedderName = "all-minilm-l6-v2",
    dtype: Dtype = "auto",
    device: Device = "auto",
    fraction: Fraction = None,
    count: Count = None,
    threshold: Threshold = None,
    tau: Tau = None,
    max_batch_tokens: MaxBatchTokens = None,
    max_length: MaxLength = 2048,
    executor: ExecutorName = "local",
    workers: Workers = 2,
    ray_address: RayAddress = None,
    gpus_per_worker: GpusPerWorker = 0.0,
    store: Store = None,
    report: Report = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print each method's requests, tokens, FLOPs and estimated time, then stop.",
            rich_help_panel=_ENGINE,
        ),
    ] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Run several methods on DATA and compare them: cost, rank correlation, subset overlap.

    Each method writes its own run under --out/<method>/ (subset, scores.parquet, manifest.json);
    --out/compare.md and compare.csv hold the comparison. All methods share one model and one
    result store, so a request two methods make (L(y|x) for wici, miwv, ifd, perplexity) runs once.
    """
    from iclselect.compare import compare as run_compare
    from iclselect.compare import dry_run as estimate

    def go() -> None:
        config = _config({**_settings(ctx, locals_), "method": "compare"})
        names = [name.strip() for name in methods.split(",") if name.strip()]
        if dry_run:
            typer.echo(estimate(config, names))
            return
        result = run_compare(config, names, overwrite)
        typer.echo(result.table + "\n" + "\n".join(f"wrote {path}" for path in result.files))

    locals_ = dict(locals())
    _guarded(go)


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Argument(help="A run's output directory.", show_default=False)],
) -> None:
    """(Re)build OUT/report.html from OUT/manifest.json and OUT/scores.parquet; sample texts
    are read again from the run's input, which must still hold the rows the run scored."""
    from iclselect.provenance import read_run_input
    from iclselect.report import write_report

    def go() -> None:
        if not (out / "manifest.json").is_file() or not (out / "scores.parquet").is_file():
            raise FileNotFoundError(
                f"{out}: no manifest.json and scores.parquet (not a run's --out)"
            )
        typer.echo(f"wrote {write_report(out, read_run_input(out))}")

    _guarded(go)


@app.command()
def inspect(
    data: Data,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated methods to estimate, or 'all'.", rich_help_panel=_METHOD
        ),
    ] = "all",
    format: Format = "auto",
    fields: Fields = None,
    dataset: DatasetEntry = None,
    split: Split = None,
    model: Model = "smollm2-135m-instruct",
    template: TemplateName = "chat",
    embedder: EmbedderName = "all-minilm-l6-v2",
    dtype: Dtype = "auto",
    device: Device = "auto",
    max_batch_tokens: MaxBatchTokens = None,
    max_length: MaxLength = 2048,
    timing: Annotated[
        bool,
        typer.Option(
            help="Time a few real requests to estimate each method's time (--no-timing skips "
            "it; it can take minutes on long rows).",
            rich_help_panel=_ENGINE,
        ),
    ] = True,
    quiet: Quiet = False,
) -> None:
    """Describe DATA before scoring it: format, rows, invalid rows, exact duplicates, token
    lengths under the model's template, and each method's estimated requests, tokens, FLOPs
    and time on this machine (from the engine's dry run; a few real requests are timed)."""
    from iclselect.inspection import inspect_data
    from iclselect.methods.registry import METHODS

    def go() -> None:
        names = list(METHODS) if methods == "all" else [m.strip() for m in methods.split(",")]
        values = {**locals_, "set_": None, "skip_invalid": True, "method": names[0]}
        config = _config({**values, "fields": _parse_fields(fields)})
        typer.echo(inspect_data(config, [n for n in names if n], timing).render())

    locals_ = {k: v for k, v in locals().items() if k not in ("methods", "timing")}
    _guarded(go)


@app.command("methods")
def list_methods(
    name: Annotated[
        str | None, typer.Argument(help="Show one method's options.", show_default=False)
    ] = None,
) -> None:
    """List the scoring methods, what each costs, and their options (set with --set KEY=VALUE)."""
    from iclselect.methods.registry import METHODS, get

    def go() -> None:
        chosen = [get(name)] if name else list(METHODS.values())
        for m in chosen:
            tau = f"near-duplicate tau {m.tau}" if m.tau is not None else "no near-duplicate step"
            model = "uses the LM" if m.uses_model else "no LM"
            typer.echo(f"{m.name:<11} {m.summary}")
            typer.echo(f"{'':<11} requests per sample: {m.cost}; {model}")
            typer.echo(f"{'':<11} default budget: --fraction {m.fraction}; {tau}")
            for option, default, text in m.options():
                typer.echo(f"{'':<13}{option} = {default}  {text}")
            typer.echo("")

    _guarded(go)


def _settings(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The command's options as RunConfig keys, over the --config file's: an option given on
    the command line wins, a default gives way to the file; --set adds to the file's options."""
    from iclselect.config import load_config

    values = {k: v for k, v in values.items() if k not in ("ctx", "config")}
    values["options"] = _parse_settings(values.pop("set_"))
    values["fields"] = _parse_fields(values["fields"])
    path = ctx.params.get("config")
    if path is None:
        return values
    given = {
        "options" if name == "set_" else name
        for name in ctx.params
        # By name: typer vendors its own click, whose ParameterSource is not click's.
        if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    }
    settings = dict(values)
    for key, value in load_config(path).items():
        if key == "options":
            settings["options"] = {**value, **values["options"]}
        elif key not in given:
            settings[key] = value
    return settings


def _config(settings: dict[str, Any]) -> RunConfig:
    from iclselect.config import KEYS
    from iclselect.pipeline import RunConfig

    if settings.get("data") is None:
        raise ValueError("give DATA, or a --config file with a 'data' key")
    values = {key: settings[key] for key in KEYS if key in settings}
    values["data"] = str(settings["data"])
    name = "stdin" if values["data"] == "-" else Path(values["data"]).name.split(".")[0]
    values["out"] = str(settings.get("out") or Path("runs") / name)
    if settings.get("store") is not None:
        values["store"] = str(settings["store"])
    return RunConfig(**values)


def _guarded(action: Callable[[], None]) -> None:
    """Run `action`; a failure becomes one line on stderr naming what to do, and exit code 2
    (130 for Ctrl-C), no traceback."""
    from iclselect.io import InputError
    from iclselect.progress import Interrupted

    try:
        action()
    except (InputError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        typer.echo(f"error: {_os_error(error)}", err=True)
        raise typer.Exit(2) from None
    except sqlite3.Error as error:
        fix = "check that the disk of --store has space and is writable"
        typer.echo(f"error: result store: {error}; {fix}", err=True)
        raise typer.Exit(2) from None
    except Interrupted as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None


_OS_FIXES = {
    errno.ENOSPC: "free some disk space or choose another --out",
    errno.EDQUOT: "free some disk space or choose another --out",
    errno.EACCES: "choose a directory you can write to",
    errno.EPERM: "choose a directory you can write to",
    errno.EROFS: "choose a directory you can write to",
    errno.ENOTDIR: "a part of the path is a file; choose another path",
}


def _os_error(error: OSError) -> str:
    """'PATH: what went wrong; what to do' for an error of the file system."""
    if error.filename is None or error.strerror is None:
        return str(error)
    fix = _OS_FIXES.get(error.errno or 0, "check the path and the disk, then rerun")
    return f"{error.filename}: {error.strerror.lower()}; {fix}"


def _parse_settings(
    items: list[str] | None, flag: str = "--set", example: str = "n_probes=3"
) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} {example}")
        settings[key.strip()] = value.strip()
    return settings


def _summary(result: RunResult) -> str:
    """What a user wants to see first: what was kept, why the rest was not, where it all is."""
    lines = [f"kept {result.kept} of {result.rows} rows"]
    if result.warning:
        lines.append(f"  warning: {result.warning}")
    lines += [f"  dropped, {reason}: {n}" for reason, n in result.dropped_by_reason.items()]
    lines.append(f"  best kept (rank, row, {result.method} score, instruction):")
    for rank, row, score, instruction in result.best:
        preview = " ".join(instruction.split())
        preview = preview if len(preview) <= 60 else preview[:57] + "..."
        lines.append(f"    {rank:>4}  row {row:<6} {score:+.4f}  {preview}")
    if result.near_ties:
        ties = result.near_ties
        shown = ", ".join(map(str, ties[:5])) + (", ..." if len(ties) > 5 else "")
        lines.append(
            f"  near ties at the cut: {len(ties)} rows left out (rows {shown}) score within "
            "1e-6 of the last kept row; input order, not the score, decided between them"
        )
    lines += [
        f"  subset:   {result.subset}",
        f"  scores:   {result.scores}  (one row per input row: score, rank, reason, components)",
        f"  manifest: {result.manifest}",
    ]
    lines += [
        f"  report:   {path}  (open in a browser)"
        for path in result.files
        if path.name == "report.html"
    ]
    return "\n".join(lines)


def _print_version(given: bool) -> None:
    if given:
        from importlib import metadata

        typer.echo(f"iclselect {metadata.version('iclselect')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Select the instruction-tuning samples that teach a model most."""


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; figures go to BENCHMARKS.md.")
app.add_typer(bench_app, name="bench")


@bench_app.command("speed")
def bench_speed(
    data: Annotated[
        Path, typer.Option(help="Alpaca-style data the wICI workload is drawn from.")
    ] = Path("data/alpaca_demo_60.json"),
    rows: Annotated[int, typer.Option(help="Candidates (the first rows of DATA).")] = 40,
    n_probes: Annotated[int, typer.Option(help="Top-k probes per candidate.")] = 5,
    template: Annotated[str, typer.Option(help="chat, alpaca or plain.")] = "chat",
    dtype: Annotated[str, typer.Option(help="Engine dtype (the reference is fp32).")] = "auto",
    max_batch_tokens: Annotated[
        int | None,
        typer.Option(
            help="Engine tokens per forward pass (default: the engine's for the device).",
            show_default=False,
        ),
    ] = None,
    benchmarks: Annotated[
        Path | None, typer.Option(help="Append the report here; --no-write to skip.")
    ] = Path("BENCHMARKS.md"),
    write: Annotated[bool, typer.Option(help="Append to --benchmarks.")] = True,
    executor: Annotated[
        str,
        typer.Option(help="local; ray: also time the engine on Ray workers; vllm: and with vLLM."),
    ] = "local",
    workers: Annotated[int, typer.Option(help="Ray workers (with --executor ray).")] = 2,
    synthetic: Annotated[
        bool,
        typer.Option(
            help="A wICI-shaped workload of random tokens with real lengths, on random-weight "
            "models of shipped configs: no data, embedder, faiss or weights needed (a GPU "
            "machine with only PyTorch and transformers). Adds a Hugging Face padded-batch arm."
        ),
    ] = False,
    model_config: Annotated[
        list[str] | None,
        typer.Option(help="With --synthetic: smollm2-135m, llama-1b or tiny; repeatable."),
    ] = None,
    device: Annotated[str, typer.Option(help="With --synthetic: auto, cpu or cuda.")] = "auto",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="With --synthetic: also write the results here.")
    ] = None,
) -> None:
    """Time the engine against a plain one-request-per-forward reference loop on the same wICI
    requests, check they agree, and print requests/s, tokens/s, speed-up, peak RSS and MFU;
    each packed-attention kernel (loop, flex) is timed side by side."""
    import shlex
    import sys

    command = "iclselect " + shlex.join(sys.argv[1:])
    if synthetic:
        _bench_synthetic(
            model_config or ["smollm2-135m"], rows, n_probes, dtype, device, max_batch_tokens,
            benchmarks if write else None, command, json_out,
        )  # fmt: skip
        return
    from iclselect.bench.speed import run_speed
    from iclselect.io import InputError

    try:
        report = run_speed(
            str(data), rows, n_probes, template, dtype, max_batch_tokens,
            benchmarks if write else None, command, executor, workers,
        )  # fmt: skip
    except (InputError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report)


def _bench_synthetic(
    configs: list[str],
    rows: int,
    n_probes: int,
    dtype: str,
    device: str,
    max_batch_tokens: int | None,
    benchmarks: Path | None,
    command: str,
    json_out: Path | None,
) -> None:
    import json

    from iclselect.bench.speed_synthetic import run_synthetic

    try:
        report, summary = run_synthetic(configs, rows, n_probes, dtype, device, max_batch_tokens)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    report = report.replace("\n\n", f"\n\n`{command}`\n\n", 1)
    if benchmarks is not None:
        with benchmarks.open("a", encoding="utf-8") as handle:
            handle.write("\n" + report)
    line = json.dumps(summary, separators=(",", ":"))
    if json_out is not None:
        json_out.write_text(line + "\n", encoding="utf-8")
    typer.echo(report)
    typer.echo(line)
    if any(model["errors"] for model in summary["models"]):
        raise typer.Exit(1)


@bench_app.command("memory")
def bench_memory(
    rows: Annotated[int, typer.Option(help="Rows in the generated pool.")] = 1_000_000,
    data: Annotated[Path, typer.Option(help="Real rows the pool is cycled from.")] = Path(
        "data/alpaca_pool_500.json"
    ),
    workdir: Annotated[Path, typer.Option(help="Where the pool and the run's outputs go.")] = Path(
        "runs/bench_memory"
    ),
    benchmarks: Annotated[
        Path | None, typer.Option(help="Append the report here; --no-write to skip.")
    ] = Path("BENCHMARKS.md"),
    write: Annotated[bool, typer.Option(help="Append to --benchmarks.")] = True,
) -> None:
    """Peak memory and time of reading, planning and selecting a large pool (each phase in its
    own process), on real rows made unique; appended to BENCHMARKS.md."""
    import shlex
    import sys

    from iclselect.bench.memory import run_memory

    def go() -> None:
        command = "iclselect " + shlex.join(sys.argv[1:])
        report, _ = run_memory(str(data), rows, workdir, benchmarks if write else None, command)
        typer.echo(report)

    _guarded(go)


@bench_app.command("quality")
def bench_quality(
    pool: Annotated[
        str | None,
        typer.Option(
            help="Pool to select from: any dataset iclselect reads (default: the shipped "
            "2,600-row Alpaca slice). The preset trains on its first rows and holds out rows "
            "after them (checked disjoint by content id).",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="cpu-small: a quick look, under an hour on 2 cores (cut-down method settings). "
            "cpu: the methods at their own settings, 5 seeds, length-matched controls, whole "
            "eval sets, about 3 hours on 2 cores. gpu: a 0.5-8B --model, the whole pool."
        ),
    ] = "cpu-small",
    methods: Annotated[
        str, typer.Option(help="Methods whose subsets are tuned on; random always runs too.")
    ] = ",".join(("wici", "miwv", "icon", "ifd", "longest")),
    scores: Annotated[
        list[str] | None,
        typer.Option(help="NAME=PATH: also tune on the ranking of a run's scores.parquet."),
    ] = None,
    evals: Annotated[
        list[str] | None,
        typer.Option("--eval", help="More held-out eval files (Alpaca, ShareGPT, messages)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Default: runs/quality-PRESET.")] = None,
    model: Model = "smollm2-135m-instruct",
    template: TemplateName = "chat",
    budgets: Annotated[
        str | None, typer.Option(help="Comma-separated fractions, e.g. 0.01,0.05,0.1.")
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="Random subsets per budget.")] = None,
    matched_seeds: Annotated[
        int | None,
        typer.Option(help="Length-matched random subsets per method and budget (-1: --seeds)."),
    ] = None,
    pool_rows: Annotated[
        int | None, typer.Option(help="First valid rows of POOL (0: all).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs, every arm.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate, every arm.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per optimizer step.")] = None,
    lora: Annotated[
        bool | None, typer.Option("--lora/--full", help="LoRA (peft) or full fine-tuning.")
    ] = None,
    precision: Annotated[
        str | None, typer.Option(help="Training: fp32, bf16 (autocast) or auto.")
    ] = None,
    eval_rows: Annotated[
        int | None, typer.Option(help="Cap every eval set at this many items (a quick look).")
    ] = None,
    store: Annotated[str | None, typer.Option(help="Scoring result store.")] = None,
    benchmarks: Annotated[
        Path | None, typer.Option(help="Append the table here; --no-write to skip.")
    ] = Path("BENCHMARKS.md"),
    write: Annotated[bool, typer.Option(help="Append to --benchmarks.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log.")] = False,
) -> None:
    """Fine-tune on each method's subset, on random subsets of the same size (several seeds),
    on random subsets matched to each method's response lengths and on the whole pool, with
    the same hyperparameters; score every tuned model and the untuned one on held-out sets
    (reference NLL; accuracy on MMLU and GSM8K), item by item. Each method's gain over random,
    its length-matched random and longest-response gets a paired bootstrap 95% interval, and
    the run ends with a recommendation. Eval sets ship with the package and are checked
    disjoint from the pool. Writes quality.md/.csv/.json/.png under OUT; an interrupted run
    resumes (finished arms are read back, a running one from its checkpoint).
    """
    import shlex
    import sys

    from iclselect.bench.quality import QualityConfig, append_benchmarks, run_quality

    def go() -> None:
        overrides = {
            key: value
            for key, value in {
                "seeds": seeds, "matched_seeds": matched_seeds, "pool_rows": pool_rows,
                "epochs": epochs, "lr": lr,
                "batch_size": batch_size, "lora": lora, "precision": precision,
                "eval_rows": eval_rows,
            }.items()
            if value is not None
        }  # fmt: skip
        if budgets:
            overrides["budgets"] = tuple(float(b) for b in budgets.split(","))
        named = _parse_settings(scores, "--scores", "wici=runs/wici/scores.parquet")
        config = QualityConfig(
            out=str(out or Path("runs") / f"quality-{preset}"), preset=preset,
            pool=pool,
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()), scores=named,
            evals=tuple(evals or ()), model=model, template=template, store=store, quiet=quiet,
            overrides=overrides,
        )  # fmt: skip
        result = run_quality(config)
        typer.echo(result.table)
        typer.echo("wrote " + ", ".join(str(f) for f in result.files))
        if write and benchmarks is not None:
            command = "iclselect " + shlex.join(sys.argv[1:])
            append_benchmarks(benchmarks, result, command)
            typer.echo(f"appended to {benchmarks}")

    _guarded(go)
