"""LLaMA-Factory's dataset_info.json: read an entry's file with its columns and tags, and write
a matching entry for the subset, so the subset trains with no edits.

An entry names a local file (`file_name`, relative to the dataset_info.json), its `formatting`
(alpaca or sharegpt) and, optionally, `columns` and `tags` that rename the keys. These map onto
iclselect's own schema and `fields`:

    alpaca:   prompt -> instruction, query -> input, response -> output, system -> system,
              history -> history, tools -> tools
    sharegpt: messages -> conversations, system -> system, tools -> tools,
              tags role_tag -> role key, content_tag -> content key,
              user_tag, assistant_tag, observation_tag, function_tag, system_tag -> the role
              names of those turns (any value, e.g. "USER")

Hub entries (hf_hub_url, ms_hub_url, om_hub_url, script_url) are not read: nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iclselect.io.errors import InputError
from iclselect.io.files import replace_file
from iclselect.records import Role

INFO_FILE = "dataset_info.json"
_HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
_ALPACA_COLUMNS = {
    "prompt": "instruction", "query": "input", "response": "output", "system": "system",
    "history": "history", "tools": "tools",
}  # fmt: skip
_SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools"}
# What each LLaMA-Factory tag must mean for the turn to be read as the same role.
_TAG_ROLES: dict[str, Role] = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "user",
    "function_tag": "assistant",
    "system_tag": "system",
}


@dataclass(frozen=True)
class LlamaFactoryEntry:
    name: str
    info: dict[str, Any]  # the entry as written in dataset_info.json


@dataclass(frozen=True)
class EntryInput:
    entry: LlamaFactoryEntry
    path: Path  # the entry's data file or directory
    format: str  # iclselect schema
    fields: dict[str, str]
    roles: dict[str, Role]  # the entry's role names (tags), e.g. {"USER": "user"}


def is_info_file(path: Path) -> bool:
    return path.name == INFO_FILE and path.is_file()


def read_entry(info_path: Path, name: str | None) -> EntryInput:
    """The data file, schema and field names of entry `name` of a dataset_info.json."""
    shown = str(info_path)
    try:
        infos = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(shown, f"not a readable dataset_info.json: {error}") from None
    if not isinstance(infos, dict):
        raise InputError(shown, "a dataset_info.json holds an object of named entries")
    if name is None:
        raise InputError(shown, f"name an entry with --dataset; entries: {sorted(infos)}")
    if name not in infos:
        raise InputError(shown, f"no entry {name!r}; entries: {sorted(infos)}")
    info = infos[name]
    where = f"entry {name!r}"
    if not isinstance(info, dict):
        raise InputError(shown, f"{where}: expected an object")
    if "file_name" not in info:
        hub = [key for key in _HUB_KEYS if key in info]
        reason = f"it is a hub dataset ({', '.join(hub)})" if hub else "it has no file_name"
        raise InputError(shown, f"{where}: only local files are read, and {reason}")
    if info.get("ranking"):
        raise InputError(shown, f"{where}: preference (ranking) data is not instruction data")
    formatting = info.get("formatting", "alpaca")
    columns = info.get("columns") or {}
    roles: dict[str, Role] = {}
    if formatting == "alpaca":
        fields = _renames(columns, _ALPACA_COLUMNS)
    elif formatting == "sharegpt":
        tags = info.get("tags") or {}
        fields = _renames(columns, _SHAREGPT_COLUMNS) | _tag_fields(tags)
        roles = _tag_roles(tags, shown, where)
    else:
        raise InputError(shown, f"{where}: unknown formatting {formatting!r}")
    path = info_path.parent / info["file_name"]
    return EntryInput(LlamaFactoryEntry(name, info), path, formatting, fields, roles)


def write_entry(out_dir: Path, entry: LlamaFactoryEntry, subset: Path, method: str) -> Path:
    """out_dir/dataset_info.json with one entry, '<name>_<method>', for the subset file; its
    columns, tags and formatting are the input entry's."""
    info = {key: value for key, value in entry.info.items() if key != "num_samples"}
    info["file_name"] = subset.name
    text = json.dumps({f"{entry.name}_{method}": info}, indent=2, ensure_ascii=False) + "\n"
    target = out_dir / INFO_FILE
    replace_file(target, lambda temp: temp.write_text(text, encoding="utf-8"))
    return target


def _renames(columns: dict[str, str], ours_by_theirs: dict[str, str]) -> dict[str, str]:
    return {ours: columns[theirs] for theirs, ours in ours_by_theirs.items() if theirs in columns}


def _tag_roles(tags: dict[str, Any], shown: str, where: str) -> dict[str, Role]:
    """The role each tag's value names; LLaMA-Factory accepts any string as a tag."""
    roles: dict[str, Role] = {}
    for tag, role in _TAG_ROLES.items():
        value = tags.get(tag)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InputError(shown, f"{where}: tags.{tag} must be a string; got {value!r}")
        if roles.get(value, role) != role:
            raise InputError(
                shown, f"{where}: tags.{tag} {value!r} also names the {roles[value]} role"
            )
        roles[value] = role
    return roles


def _tag_fields(tags: dict[str, Any]) -> dict[str, str]:
    renames = {"role": tags.get("role_tag"), "content": tags.get("content_tag")}
    return {ours: theirs for ours, theirs in renames.items() if theirs}
