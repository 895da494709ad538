"""iclselect command line.

    iclselect run data/alpaca_demo_60.json --out runs/demo            # wICI, keep 10%
    iclselect run pool.jsonl --count 1000 --template alpaca --out runs/pool
    iclselect run conv.parquet --fields instruction=question,output=answer --fraction 0.05

Every option has a --help entry; defaults follow the wICI paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from iclselect.pipeline import RunResult

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
_BUDGET = "Budget (pick one; default --fraction 0.1)"
_WICI = "wICI method (defaults = the paper; see METHODS in the README)"
_ENGINE = "Engine"


def _parse_fields(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise typer.BadParameter("expected NAME=COLUMN[,NAME=COLUMN...], e.g. output=answer")
    return {name.strip(): column.strip() for name, column in pairs}


@app.command()
def run(
    data: Annotated[
        Path,
        typer.Argument(
            help="Dataset file or saved Hugging Face dataset directory. "
            "Format is detected from the extension and the keys of the rows."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output directory (default: runs/<data name>).", show_default=False
        ),
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            help="Row schema: auto, alpaca, sharegpt or messages.", rich_help_panel=_INPUT
        ),
    ] = "auto",
    fields: Annotated[
        str | None,
        typer.Option(
            help="Map our field names to your columns, e.g. instruction=question,output=answer.",
            rich_help_panel=_INPUT,
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            help="Drop rows with a bad field instead of stopping; manifest.json and scores.parquet "
            "list each dropped row and why.",
            rich_help_panel=_INPUT,
        ),
    ] = False,
    model: Annotated[
        str,
        typer.Option(
            help="Causal LM: the embedded default, or a local Hugging Face model directory.",
            rich_help_panel=_MODEL,
        ),
    ] = "smollm2-135m-instruct",
    template: Annotated[
        str,
        typer.Option(
            help="Prompt format: chat (the model's chat template), alpaca "
            "('### Instruction:' ... '### Response:') or plain ('{instruction}\\n{response}').",
            rich_help_panel=_MODEL,
        ),
    ] = "chat",
    embedder: Annotated[
        str,
        typer.Option(
            help="Sentence embedder for neighbours: the embedded all-MiniLM-L6-v2, or a local "
            "sentence-transformers directory.",
            rich_help_panel=_MODEL,
        ),
    ] = "all-minilm-l6-v2",
    dtype: Annotated[
        str,
        typer.Option(
            help="Compute dtype: auto, fp32, bf16 or fp16. auto = bf16 on GPUs; on CPUs the "
            "faster of fp32 and bf16 by a one-second matmul probe, remembered per machine.",
            rich_help_panel=_MODEL,
        ),
    ] = "auto",
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu or cuda.", rich_help_panel=_MODEL)
    ] = "auto",
    fraction: Annotated[
        float | None,
        typer.Option(help="Keep this fraction of the scored rows.", rich_help_panel=_BUDGET),
    ] = None,
    count: Annotated[
        int | None, typer.Option(help="Keep this many rows.", rich_help_panel=_BUDGET)
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Keep every row scoring at least this.", rich_help_panel=_BUDGET),
    ] = None,
    tau: Annotated[
        float,
        typer.Option(
            help="Near-duplicate threshold: a row is skipped if its cosine similarity to an "
            "already kept row is >= tau (1.0 or more turns this off).",
            rich_help_panel=_BUDGET,
        ),
    ] = 0.9,
    probes: Annotated[
        str,
        typer.Option(
            help="Probe sets: difficult (k-means the nearest neighbours, hardest of each cluster; "
            "paper) or topk (the nearest neighbours).",
            rich_help_panel=_WICI,
        ),
    ] = "difficult",
    n_probes: Annotated[
        int, typer.Option(help="Probes per candidate (clusters K, or k).", rich_help_panel=_WICI)
    ] = 5,
    n_neighbours: Annotated[
        int, typer.Option(help="Neighbours clustered into probes (N).", rich_help_panel=_WICI)
    ] = 32,
    difficulty: Annotated[
        str,
        typer.Option(
            help="Stand-in for the paper's DEITA complexity: ifd or loss, from the scoring model.",
            rich_help_panel=_WICI,
        ),
    ] = "ifd",
    seed: Annotated[int, typer.Option(help="k-means seed.", rich_help_panel=_WICI)] = 42,
    ifd_form: Annotated[
        str,
        typer.Option(
            help="IFD as a loss ratio (loss; paper) or perplexity ratio (ppl; reference code).",
            rich_help_panel=_WICI,
        ),
    ] = "loss",
    aggregate: Annotated[
        str,
        typer.Option(
            help="paper: sum of (1-cos)/(2|B|) * ICI over probes; code: mean of (1-cos) * ICI "
            "over probes the candidate helps.",
            rich_help_panel=_WICI,
        ),
    ] = "paper",
    prefilter_ifd: Annotated[
        bool,
        typer.Option(
            help="Skip candidates whose own IFD > 1 (reference code; paper: off).",
            rich_help_panel=_WICI,
        ),
    ] = False,
    max_batch_tokens: Annotated[
        int,
        typer.Option(help="Padded tokens per forward pass.", rich_help_panel=_ENGINE),
    ] = 8192,
    max_length: Annotated[
        int,
        typer.Option(
            help="Longest sequence; longer ones lose context from the left (demo first); a "
            "response is cut only if it alone is longer.",
            rich_help_panel=_ENGINE,
        ),
    ] = 2048,
    store: Annotated[
        Path | None,
        typer.Option(
            help="Result store (SQLite). Rerunning with the same store recomputes nothing and a "
            "killed run resumes; share one store across runs to reuse answers "
            "(default: <out>/store.sqlite).",
            show_default=False,
            rich_help_panel=_ENGINE,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print the requests, tokens, FLOPs and estimated time, then stop (a few "
            "requests run to measure this machine's speed; their answers are kept).",
            rich_help_panel=_ENGINE,
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Score DATA with wICI and write the best subset.

    Writes to --out: subset.<input extension> (kept rows, byte-for-byte as in the input),
    scores.parquet (one row per input row: score, its components, selected, rank, reason) and
    manifest.json (counts, reasons, every parameter, model and package versions, timings).
    """
    from iclselect.io import InputError
    from iclselect.methods import WiciConfig
    from iclselect.pipeline import RunConfig
    from iclselect.pipeline import dry_run as estimate
    from iclselect.pipeline import run as run_pipeline

    try:
        config = RunConfig(
            data=str(data),
            out=str(out or Path("runs") / data.name.split(".")[0]),
            format=format,
            fields=_parse_fields(fields),
            skip_invalid=skip_invalid,
            model=model,
            template=template,
            dtype=dtype,
            device=device,
            embedder=embedder,
            fraction=fraction,
            count=count,
            threshold=threshold,
            tau=tau,
            max_batch_tokens=max_batch_tokens,
            max_length=max_length,
            store=str(store) if store else None,
            quiet=quiet,
            wici=WiciConfig(
                probes=_choice("--probes", probes, ("difficult", "topk")),
                n_probes=n_probes,
                n_neighbours=n_neighbours,
                difficulty=_choice("--difficulty", difficulty, ("ifd", "loss")),
                seed=seed,
                ifd_form=_choice("--ifd-form", ifd_form, ("loss", "ppl")),
                aggregate=_choice("--aggregate", aggregate, ("paper", "code")),
                prefilter_ifd=prefilter_ifd,
            ),
        )
        if dry_run:
            typer.echo(estimate(config))
            return
        result = run_pipeline(config)
    except (InputError, ValueError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(_summary(result))


def _summary(result: RunResult) -> str:
    """What a user wants to see first: what was kept, why the rest was not, where it all is."""
    lines = [f"kept {result.kept} of {result.rows} rows"]
    lines += [f"  dropped, {reason}: {n}" for reason, n in result.dropped_by_reason.items()]
    lines.append("  best kept (rank, row, wICI, instruction):")
    for rank, row, score, instruction in result.best:
        preview = " ".join(instruction.split())
        preview = preview if len(preview) <= 60 else preview[:57] + "..."
        lines.append(f"    {rank:>4}  row {row:<6} {score:+.4f}  {preview}")
    lines += [
        f"  subset:   {result.subset}",
        f"  scores:   {result.scores}  (one row per input row: score, components, reason)",
        f"  manifest: {result.manifest}",
    ]
    return "\n".join(lines)


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
    return value


@app.callback()
def main() -> None:
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
    max_batch_tokens: Annotated[int, typer.Option(help="Engine batch budget.")] = 8192,
    benchmarks: Annotated[
        Path | None, typer.Option(help="Append the report here; --no-write to skip.")
    ] = Path("BENCHMARKS.md"),
    write: Annotated[bool, typer.Option(help="Append to --benchmarks.")] = True,
) -> None:
    """Time the engine against a plain one-request-per-forward reference loop on the same wICI
    requests, check they agree, and print requests/s, tokens/s, speed-up, peak RSS and MFU."""
    import shlex
    import sys

    from iclselect.bench.speed import run_speed
    from iclselect.io import InputError

    command = "iclselect " + shlex.join(sys.argv[1:])
    try:
        report = run_speed(
            str(data), rows, n_probes, template, dtype, max_batch_tokens,
            benchmarks if write else None, command,
        )  # fmt: skip
    except (InputError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report)
