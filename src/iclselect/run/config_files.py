"""Config files for `iclselect run --config FILE`: YAML (or JSON) whose keys are RunConfig's
fields, the same names as the command's options (`--max-batch-tokens` is `max_batch_tokens`;
`--set` is `options`, a mapping). A run's manifest.json is a config file too: its `config`
holds the effective config, so `iclselect run --config OUT/manifest.json` repeats the run.

merge() is the one place settings are layered: RunConfig's defaults < the config file < what
the command line (or an API call) gave.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iclselect.io.errors import InputError
from iclselect.run.config import FIELDS, unknown_key

KEYS: tuple[str, ...] = tuple(FIELDS)
# Keys that are not run settings but what the command does with them.
ACTION_KEYS: tuple[str, ...] = ("dry_run", "overwrite")


def load_config(path: Path) -> dict[str, Any]:
    """The settings in `path`; unknown keys and values of the wrong shape raise InputError."""
    import yaml

    shown = str(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(shown, f"cannot read: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise InputError(shown, f"not valid YAML: {error}") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("config"), dict) and "input" in loaded:
        loaded = loaded["config"]  # a manifest.json
    if not isinstance(loaded, dict):
        raise InputError(shown, "a config file holds a mapping of settings, e.g. 'method: wici'")
    unknown = sorted(set(loaded) - set(KEYS) - set(ACTION_KEYS))
    if unknown:
        message = unknown_key(unknown[0], shown).removeprefix(f"{shown}: ")
        raise InputError(shown, f"{message}; keys: {', '.join(KEYS)}")
    for key in ("options", "fields"):
        if loaded.get(key) is not None and not isinstance(loaded[key], dict):
            raise InputError(shown, f"key {key!r}: expected a mapping of NAME: VALUE")
    return loaded


def merge(given: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """The settings of a run: those in the config file at `path`, overridden by `given` (only
    what was actually given: a setting left out keeps the file's value, or else RunConfig's
    default). Method options add up: `given`'s win over the file's, key by key."""
    settings = load_config(path) if path is not None else {}
    merged = {**settings, **given}
    if settings.get("options") or given.get("options"):
        merged["options"] = {**(settings.get("options") or {}), **(given.get("options") or {})}
    return merged
