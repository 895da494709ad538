"""`iclselect bench speed | memory | pipeline | quality`: the command line of the benchmarks in this
package; figures go to BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iclselect.cli.options import option, parse_settings
from iclselect.cli.output import guarded
from iclselect.run.config import DEFAULT_MODEL

app = typer.Typer(no_args_is_help=True, help="Benchmarks; figures go to BENCHMARKS.md.")

Model = option("model")
Template = option("template")


@app.command("speed")
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
            model_config or ["smollm2-135m"],
            rows=rows,
            n_probes=n_probes,
            dtype=dtype,
            device=device,
            max_batch_tokens=max_batch_tokens,
            benchmarks=benchmarks if write else None,
            command=command,
            json_out=json_out,
        )
        return
    from iclselect.bench.speed import run_speed
    from iclselect.errors import UsageError
    from iclselect.io import InputError

    try:
        report = run_speed(
            str(data),
            rows=rows,
            n_probes=n_probes,
            template_name=template,
            dtype=dtype,
            max_batch_tokens=max_batch_tokens,
            benchmarks=benchmarks if write else None,
            command=command,
            executor=executor,
            workers=workers,
        )
    except (InputError, UsageError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report)


def _bench_synthetic(
    configs: list[str],
    *,
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
    from iclselect.errors import UsageError

    try:
        report, summary = run_synthetic(
            configs,
            rows=rows,
            n_probes=n_probes,
            dtype=dtype,
            device=device,
            max_batch_tokens=max_batch_tokens,
            command=command,
        )
    except UsageError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
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


@app.command("memory")
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

    guarded(go)


@app.command("pipeline")
def bench_pipeline(
    rows: Annotated[
        list[int] | None,
        typer.Option(help="Rows of the run; repeat for a second size (growth is measured)."),
    ] = None,
    pool: Annotated[
        Path | None,
        typer.Option(
            help="Real rows to cycle (default: the shipped 2,600-row Alpaca pool); copies "
            'beyond its size are marked " (#i)".',
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="Method to run, or several comma-separated (wici,miwv,icon): a table each.",
        ),
    ] = "wici",
    workdir: Annotated[
        Path, typer.Option(help="Where the pool, the store and each method's run go.")
    ] = Path("runs/bench_pipeline"),
    embedder: Annotated[str, typer.Option(help="Sentence embedder.")] = "all-minilm-l6-v2",
    model: Model = DEFAULT_MODEL,
    kernel: Annotated[
        str,
        typer.Option(
            help="random: answers drawn without the model (the host side alone); hf: the "
            "model runs (on a GPU: the whole run, its forward passes a stage of their own)."
        ),
    ] = "random",
    dry_run: Annotated[bool, typer.Option(help="Also time `run --dry-run` at each size.")] = True,
    benchmarks: Annotated[
        Path | None, typer.Option(help="Append the report here; --no-write to skip.")
    ] = Path("BENCHMARKS.md"),
    write: Annotated[bool, typer.Option(help="Append to --benchmarks.")] = True,
) -> None:
    """Time every host stage of `iclselect run` (reading, embedding, neighbour search,
    request building, tokenisation, packing, the store, selection, writing, the report) on
    N rows of real text, with a kernel that draws answers at random instead of running the
    model; per stage: seconds, rows/s or requests/s, peak RSS; and the requests/s the host can
    feed the engine, its share of a 52k-row 8B run on an H200, and `--dry-run`'s time."""
    import shlex
    import sys

    from iclselect.bench.pipeline import run_bench

    def go() -> None:
        command = "iclselect " + shlex.join(sys.argv[1:])
        methods = [name.strip() for name in method.split(",")]
        report, _ = run_bench(
            rows or [5000],
            pool=pool,
            methods=methods,
            workdir=workdir,
            embedder=embedder,
            dry_run=dry_run,
            benchmarks=benchmarks if write else None,
            command=command,
            model=model,
            kernel=kernel,
        )
        typer.echo(report)

    guarded(go)


@app.command("quality")
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
            "eval sets, about 8 hours on 2 cores (stop and rerun: it resumes). dirty: 30% of "
            "the pool planted defects, cheaper method settings, about 75 minutes on 2 cores "
            "(measured). gpu: a 0.5-8B --model, the whole pool."
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
    model: Model = DEFAULT_MODEL,
    template: Template = "chat",
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
    corrupt: Annotated[
        float | None,
        typer.Option(
            help="Replace this share of the pool's training rows with planted defects "
            "(mismatched, truncated, refusal, shuffled, wrong-number, near-duplicate rows; "
            "Alpaca pools), and report how each method ranks them. The dirty preset: 0.3."
        ),
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
    from iclselect.cli.output import log_to_stderr

    def go() -> None:
        log_to_stderr(quiet)
        overrides = {
            key: value
            for key, value in {
                "seeds": seeds,
                "matched_seeds": matched_seeds,
                "pool_rows": pool_rows,
                "epochs": epochs,
                "lr": lr,
                "batch_size": batch_size,
                "lora": lora,
                "precision": precision,
                "eval_rows": eval_rows,
                "corrupt": corrupt,
            }.items()
            if value is not None
        }
        if budgets:
            overrides["budgets"] = tuple(float(b) for b in budgets.split(","))
        named = parse_settings(scores, "--scores", "wici=runs/wici/scores.parquet")
        config = QualityConfig(
            out=str(out or Path("runs") / f"quality-{preset}"),
            preset=preset,
            pool=pool,
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
            scores=named,
            evals=tuple(evals or ()),
            model=model,
            template=template,
            store=store,
            quiet=quiet,
            overrides=overrides,
        )
        result = run_quality(config)
        typer.echo(result.table)
        typer.echo("wrote " + ", ".join(str(f) for f in result.files))
        if write and benchmarks is not None:
            command = "iclselect " + shlex.join(sys.argv[1:])
            append_benchmarks(benchmarks, result, command)
            typer.echo(f"appended to {benchmarks}")

    guarded(go)
