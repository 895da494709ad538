"""Row schemas: turning one parsed row (a dict) into the Turns of a Sample.

Three schemas are understood:

- alpaca: `instruction`, optional `input`, `output`, optional `system`, optional `history`
  (LLaMA-Factory's [[user, assistant], ...] of earlier exchanges, which become earlier turns).
  The user turn is the instruction, followed by a newline and the input when the input is not
  blank.
- sharegpt: `conversations`, a list of {"from": role, "value": text}, plus an optional
  top-level `system` string.
- messages (OpenAI): `messages`, a list of {"role": role, "content": text or parts}. Parts are
  dicts of type "text" holding the text under "text" (OpenAI) or "value" (LLaMA-Factory); the
  texts of one message are concatenated. Other keys (e.g. `loss_weight`) are ignored.

Every schema takes an optional `tools` (glaive style: a JSON string, or the JSON value itself)
describing the functions the assistant may call. LLaMA-Factory's templates render it into the
system prompt, so it is scored there too: appended to the system turn, or as the system turn.
Other keys are not read; read_dataset lists them (Dataset.unused_columns).

Roles map onto the three roles of a Turn. Most chat templates have no tool role, so tool
traffic folds into the two sides of the dialogue: a tool *call* is something the assistant
says, a tool *result* is something the user side feeds back.

    system, developer                                  -> system
    human, user, observation, tool, function           -> user
    gpt, assistant, bot, model, function_call          -> assistant

A conversation must end with a non-blank assistant turn (the response) and hold at least one
user turn before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from iclselect.errors import UsageError
from iclselect.io.errors import RowError
from iclselect.records import Role, Turn

SCHEMAS: tuple[str, ...] = ("alpaca", "sharegpt", "messages")
FORMATS: tuple[str, ...] = ("auto", *SCHEMAS)

# Our names for the keys a schema reads; `fields` renames them to the user's column names.
FIELD_NAMES: tuple[str, ...] = (
    "instruction",
    "input",
    "output",
    "system",
    "history",
    "tools",
    "conversations",
    "messages",
)
# The keys each schema reads (our names); any other column is carried, never scored.
READS: dict[str, tuple[str, ...]] = {
    "alpaca": ("instruction", "input", "output", "system", "history", "tools"),
    "sharegpt": ("conversations", "system", "tools"),
    "messages": ("messages", "tools"),
}
# The keys inside a turn; unless renamed, each conversation schema's own (from/value, role/content).
TURN_FIELD_NAMES: tuple[str, ...] = ("role", "content")
_REQUIRED: dict[str, tuple[str, ...]] = {  # in detection order
    "sharegpt": ("conversations",),
    "messages": ("messages",),
    "alpaca": ("instruction", "output"),
}
_EXPECTED = (
    "expected alpaca (instruction/output), sharegpt (conversations) or messages (messages); "
    "use --format/--fields"
)

ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "human": "user",
    "user": "user",
    "observation": "user",
    "tool": "user",
    "function": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "function_call": "assistant",
}


def field_names(fields: Mapping[str, str] | None) -> dict[str, str]:
    """Our key name -> the user's key name; raises UsageError naming an unknown key."""
    fields = dict(fields or {})
    known = FIELD_NAMES + TURN_FIELD_NAMES
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise UsageError(f"unknown field name(s) {unknown} in fields; expected {list(known)}")
    names = {name: fields.get(name, name) for name in FIELD_NAMES}
    names.update({name: fields[name] for name in TURN_FIELD_NAMES if name in fields})
    return names


def _fits(schema: str, keys: Iterable[str], names: Mapping[str, str]) -> bool:
    present = set(keys)
    return all(names[name] in present for name in _REQUIRED[schema])


def detect(keys: Iterable[str], names: Mapping[str, str], allowed: Iterable[str]) -> str | None:
    """The first allowed schema whose required keys are all present. A conversation key is
    more telling than alpaca's generic instruction/output, so conversations are tried first."""
    keys, allowed = list(keys), set(allowed)
    order = [schema for schema in _REQUIRED if schema in allowed]
    return next((schema for schema in order if _fits(schema, keys, names)), None)


def mismatch_message(keys: Iterable[str], schema: str | None, names: Mapping[str, str]) -> str:
    """Why no schema fits a row with these keys (schema=None: auto-detection failed)."""
    found = sorted(str(key) for key in keys)
    if schema is None:
        return f"cannot detect format: keys {found}; {_EXPECTED}"
    needs = "/".join(names[name] for name in _REQUIRED[schema])
    return f"format {schema!r} does not fit: keys {found}, it needs {needs}; {_EXPECTED}"


def to_turns(
    schema: str,
    row: Mapping[str, Any],
    names: Mapping[str, str],
    roles: Mapping[str, Role] = ROLES,
) -> tuple[Turn, ...]:
    """Normalise one row; raises RowError naming the offending field. `roles`: every role name
    read, ROLES plus any a LLaMA-Factory entry's tags give (e.g. "USER" -> user)."""
    if schema == "alpaca":
        turns = _alpaca(row, names)
    elif schema == "sharegpt":
        role, content = names.get("role", "from"), names.get("content", "value")
        lead = _system(row, names)
        turns = _conversation(
            row, names["conversations"], role_key=role, text_key=content, lead=lead, roles=roles
        )
    else:
        role, content = names.get("role", "role"), names.get("content", "content")
        turns = _conversation(
            row, names["messages"], role_key=role, text_key=content, lead=(), roles=roles
        )
    return _with_tools(turns, _tools(row, names["tools"]))


def as_row(value: object) -> dict[str, Any]:
    """A parsed JSON value as a row; only objects are rows."""
    if not isinstance(value, dict):
        raise RowError(f"expected a JSON object, got {type_name(value)}")
    return value


def type_name(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    return {str: "string", bool: "boolean", int: "number", float: "number", dict: "object"}.get(
        type(value), "array" if isinstance(value, (list, tuple)) else type(value).__name__
    )


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise RowError(f"expected a string, got {type_name(value)}", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # A JSON escape like "\ud800" decodes to a lone surrogate no tokenizer can encode.
        bad = value[error.start]
        raise RowError(f"invalid Unicode: lone surrogate U+{ord(bad):04X}", field) from None
    return value


def _required_text(row: Mapping[str, Any], key: str) -> str:
    if key not in row:
        raise RowError("missing", key)
    text = _text(row[key], key)
    if not text.strip():
        raise RowError("empty or whitespace-only", key)
    return text


def _optional_text(row: Mapping[str, Any], key: str) -> str:
    # Nullable Parquet/HF columns store an absent value as null, so null means "not given".
    value = row.get(key)
    return "" if value is None else _text(value, key)


def _system(row: Mapping[str, Any], names: Mapping[str, str]) -> tuple[Turn, ...]:
    system = _optional_text(row, names["system"])
    return (Turn("system", system),) if system.strip() else ()


def _tools(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value, ensure_ascii=False) if value else ""
    return "" if value is None else _text(value, key)


def _with_tools(turns: tuple[Turn, ...], tools: str) -> tuple[Turn, ...]:
    if not tools.strip():
        return turns
    if turns[0].role == "system":
        return (Turn("system", f"{turns[0].content}\n\n{tools}"), *turns[1:])
    return (Turn("system", tools), *turns)


def _history(row: Mapping[str, Any], key: str) -> tuple[Turn, ...]:
    pairs = row.get(key)
    if pairs is None:
        return ()
    if not isinstance(pairs, (list, tuple)):
        raise RowError(f"expected a list of [user, assistant] pairs, got {type_name(pairs)}", key)
    turns: list[Turn] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise RowError(
                f"expected a [user, assistant] pair, got {type_name(pair)}", f"{key}[{i}]"
            )
        turns.append(Turn("user", _text(pair[0], f"{key}[{i}][0]")))
        turns.append(Turn("assistant", _text(pair[1], f"{key}[{i}][1]")))
    return tuple(turns)


def _alpaca(row: Mapping[str, Any], names: Mapping[str, str]) -> tuple[Turn, ...]:
    instruction = _required_text(row, names["instruction"])
    extra = _optional_text(row, names["input"])
    output = _required_text(row, names["output"])
    user = f"{instruction}\n{extra}" if extra.strip() else instruction
    history = _history(row, names["history"])
    fields = (("instruction", instruction), ("input", extra))
    return (*_system(row, names), *history, Turn("user", user, fields), Turn("assistant", output))


def _conversation(
    row: Mapping[str, Any],
    key: str,
    *,
    role_key: str,
    text_key: str,
    lead: tuple[Turn, ...],
    roles: Mapping[str, Role],
) -> tuple[Turn, ...]:
    if key not in row:
        raise RowError("missing", key)
    items = row[key]
    if not isinstance(items, (list, tuple)):
        raise RowError(f"expected a list of turns, got {type_name(items)}", key)
    if not items:
        raise RowError("empty list of turns", key)
    turns = list(lead)
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise RowError(f"expected an object, got {type_name(item)}", where)
        turns.append(Turn(_role(item, role_key, where, roles), _content(item, text_key, where)))
    last = f"{key}[{len(items) - 1}]"
    if turns[-1].role != "assistant":
        raise RowError(f"last turn is {turns[-1].role!r}, expected the assistant's response", last)
    if not turns[-1].content.strip():
        raise RowError("empty or whitespace-only response", f"{last}.{text_key}")
    if not any(turn.role == "user" for turn in turns[:-1]):
        raise RowError("no user turn before the response", key)
    return tuple(turns)


def _role(item: Mapping[str, Any], role_key: str, where: str, roles: Mapping[str, Role]) -> Role:
    field = f"{where}.{role_key}"
    if role_key not in item:
        raise RowError("missing", field)
    name = _text(item[role_key], field)
    if name not in roles:
        raise RowError(f"unknown role {name!r}; known roles: {sorted(roles)}", field)
    return roles[name]


def _content(item: Mapping[str, Any], text_key: str, where: str) -> str:
    field = f"{where}.{text_key}"
    if text_key not in item:
        raise RowError("missing", field)
    value = item[text_key]
    if isinstance(value, (list, tuple)):
        return "".join(_part_text(part, f"{field}[{j}]") for j, part in enumerate(value))
    return _text(value, field)


def _part_text(part: object, field: str) -> str:
    if not isinstance(part, Mapping):
        raise RowError(f"expected a content part object, got {type_name(part)}", field)
    kind = part.get("type")
    if kind not in (None, "text"):
        # Dropping an image or audio part would score a different sample than the one kept.
        raise RowError(f"unsupported content part type {kind!r}; only text is read", field)
    for key in ("text", "value"):
        # Arrow structs give every part both keys, the unused one as null.
        if part.get(key) is not None:
            return _text(part[key], f"{field}.{key}")
    raise RowError("text part has no 'text' or 'value'", field)
