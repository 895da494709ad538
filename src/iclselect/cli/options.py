"""The options of `iclselect run`, `compare` and `inspect`, generated from RunConfig's fields.

    @settings_command(app, skip=("method",))
    def compare(ctx: typer.Context, methods: Annotated[str, typer.Option(...)] = "...", **_):
        settings = given_settings(ctx)          # RunConfig keys: the file < the command line

A command declares only its own parameters (compare's --methods); every RunConfig field it
does not skip becomes an option with the field's flags, help, group and default, and --config
is added. given_settings() hands the command the one merge of config.merge().
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from iclselect.errors import UsageError
from iclselect.run.config import FIELDS, RunConfig, help_text

# Settings whose command-line form is not their type: parsed into it by _PARSERS.
_CLI_TYPES: dict[str, Any] = {
    "data": Path | None,
    "out": Path | None,
    "options": list[str] | None,
    "fields": str | None,
    "store": Path | None,
}

CONFIG_HELP = (
    "YAML (or JSON) file of settings, keys named as these options (max_batch_tokens: 4096; "
    "options: {n_probes: 3} for --set). Options given here override it. A run's "
    "manifest.json works too: `--config OUT/manifest.json` repeats that run."
)
Config = Annotated[
    Path | None, typer.Option("--config", "-c", help=CONFIG_HELP, show_default=False)
]


def parse_fields(text: str | None) -> dict[str, str] | None:
    """--fields instruction=question,output=answer as a mapping."""
    if not text:
        return None
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise typer.BadParameter("expected NAME=COLUMN[,NAME=COLUMN...], e.g. output=answer")
    return {name.strip(): column.strip() for name, column in pairs}


def parse_settings(
    items: list[str] | None, flag: str = "--set", example: str = "n_probes=3"
) -> dict[str, str]:
    """Repeated KEY=VALUE options as a mapping."""
    settings: dict[str, str] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} {example}")
        settings[key.strip()] = value.strip()
    return settings


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "options": parse_settings,
    "fields": parse_fields,
    "data": lambda path: None if path is None else str(path),
    "out": lambda path: None if path is None else str(path),
    "store": lambda path: None if path is None else str(path),
}


def option(name: str) -> Any:
    """Field `name` of RunConfig as a typer parameter annotation (the DATA argument for
    `data`); other commands (bench quality) reuse single settings this way."""
    spec = FIELDS[name]
    meta = spec.metadata
    kind = _CLI_TYPES.get(name) or typing.get_type_hints(RunConfig)[name]
    text = meta["help"] if isinstance(meta["help"], str) else f"{{{name}}}"  # filled when shown
    if name == "data":
        return Annotated[kind, typer.Argument(help=text, show_default=False)]
    info = typer.Option(
        *meta["flags"],  # none: typer's own, --name (and --no-name for a switch)
        help=text,
        show_default=meta["show_default"],
        rich_help_panel=meta["group"],
    )
    return Annotated[kind, info]


def default(name: str) -> Any:
    """Field `name`'s default as the command line shows it (None where the default is made
    later: --set's empty mapping, --out's runs/<data name>)."""
    spec = FIELDS[name]
    return None if spec.default is dataclasses.MISSING else spec.default


def _flag_type_hidden(
    display: Callable[[typer.core.TyperOption, Any], str | None],
) -> Callable[[typer.core.TyperOption, Any], str | None]:
    """typer's rich help prints a flag's type (`<bool>`) where a value would go, though a flag
    takes none; click's plain help prints nothing there."""

    def shown(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else display(self, ctx)

    return shown


typer.core.TyperOption.display_type_rich = _flag_type_hidden(  # type: ignore[method-assign]
    typer.core.TyperOption.display_type_rich
)


class RegistryHelp(typer.core.TyperCommand):
    """A command whose help is partly read from the method registry, only when it is shown
    (importing the registry loads torch; `iclselect run DATA` pays that anyway, --help not)."""

    epilog_from: Callable[[], str] | None = None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if param.name in FIELDS and callable(FIELDS[param.name].metadata["help"]):
                param.help = help_text(param.name)  # type: ignore[attr-defined]
        if self.epilog_from is not None:
            self.epilog = self.epilog_from()
        super().format_help(ctx, formatter)


def settings_command(
    app: typer.Typer,
    name: str | None = None,
    *,
    skip: Iterable[str] = (),
    epilog: Callable[[], str] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register the decorated function as a command of `app` with its own parameters, then
    one option per RunConfig field not in `skip` (and not declared by the function), then
    --config. The function is called with every parameter by name."""

    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        own = [
            p
            for p in inspect.signature(body, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        taken = {p.name for p in own} | set(skip)
        generated = [
            inspect.Parameter(
                field,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=option(field),
                default=default(field),
            )
            for field in FIELDS
            if field not in taken
        ]
        config = inspect.Parameter(
            "config", inspect.Parameter.KEYWORD_ONLY, annotation=Config, default=None
        )
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        # Listed as --help shows them: --config after --out, the command's own switches
        # (--dry-run, --overwrite) before --quiet.
        after_out = next((i + 1 for i, p in enumerate(generated) if p.name == "out"), 0)
        last = [p for p in generated if p.name == "quiet"]
        generated = [p for p in generated if p.name != "quiet"]
        params = [*own[:1], *generated[:after_out], config, *generated[after_out:], *own[1:]]
        params += last

        def command(**values: Any) -> None:
            body(**values)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__name__, command.__doc__ = body.__name__, body.__doc__
        command.__annotations__ = {}
        cls = type("Command", (RegistryHelp,), {"epilog_from": staticmethod(epilog)})
        app.command(name, cls=cls)(command)
        return body

    return decorate


def given_settings(ctx: typer.Context, **fixed: Any) -> dict[str, Any]:
    """RunConfig keys (and dry_run, overwrite) for the command in `ctx`: the --config file's,
    overridden by the options given on the command line, then by `fixed` (what the command
    itself decides, e.g. compare's method). Defaults are left to RunConfig."""
    from iclselect.run.config_files import ACTION_KEYS, merge

    given = {
        name: _PARSERS.get(name, lambda value: value)(value)
        for name, value in ctx.params.items()
        if (name in FIELDS or name in ACTION_KEYS) and _from_command_line(ctx, name)
    }
    return {**merge(given, ctx.params.get("config")), **fixed}


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    # By name: typer vendors its own click, whose ParameterSource is not click's.
    return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"


def run_settings(settings: dict[str, Any]) -> RunConfig:
    """The RunConfig of merged settings (what given_settings returns), without the action
    keys; DATA must be there."""
    from iclselect.cli.output import log_to_stderr
    from iclselect.run.config import build
    from iclselect.run.config_files import ACTION_KEYS

    config = build({k: v for k, v in settings.items() if k not in ACTION_KEYS})
    log_to_stderr(config.quiet)
    return config
