"""The prompt formats of the methods' reference code (`--template reference`; docs/METHODS.md,
"Reference prompt formats"): each writes a request as plain text, the way the authors' scripts
write their strings.

- wici:   "{instruction}\\n{input}\\n" (the input line only where the input is not blank), the
          response right after it; a demo is its prompt and response, the next prompt right
          after. L(y) is the response alone.
- rico:   "### Instruction:\\n{instruction}\\n\\n### Input: {input}\\n\\n### Response:" (no Input
          block without an input); a demo is its prompt and response, then "\\n\\n\\n". An ICon
          assessment row's prompt is its own `inputs` text, verbatim.
- alpaca: the Stanford Alpaca prompt, preamble included, ending "### Response:", the response
          right after it; L(y) is the response after "### Response:" alone; a demo is its prompt
          and response and a blank line (Cherry's IFD; MIWV's paper; Nuggets and perplexity,
          whose code has no format of its own here).

The reference code reads Alpaca rows. A conversation row has no input: its instruction is the
text of its turns before the response, system prompt and earlier turns first, one per line. A
demo with no user turn is its text alone: ICon's random-text control, which stands for the
candidate's whole text, prompt format included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from iclselect.lm.requests import LogprobRequest
from iclselect.records import Sample, Turn

_PREAMBLE = "Below is an instruction that describes a task{}. Write a response that appropriately completes the request.\n\n"  # noqa: E501
_WITH_INPUT = ", paired with an input that provides further context"


def _wici(instruction: str, extra: str) -> str:
    return f"{instruction}\n{extra}\n" if extra.strip() else f"{instruction}\n"


def _alpaca(instruction: str, extra: str) -> str:
    if extra:
        return (
            _PREAMBLE.format(_WITH_INPUT)
            + f"### Instruction:\n{instruction}\n\n### Input:\n{extra}\n\n### Response:"
        )
    return _PREAMBLE.format("") + f"### Instruction:\n{instruction}\n\n### Response:"


def _rico(instruction: str, extra: str) -> str:
    block = f"### Input: {extra}\n\n" if extra else ""
    return f"### Instruction:\n{instruction}\n\n{block}### Response:"


@dataclass(frozen=True)
class Style:
    prompt: Callable[[str, str], str]  # (instruction, input) -> the text before the response
    bare: str  # the text before the response in L(y), the request with no prompt
    demo_gap: str  # between a demo's response and what follows it
    verbatim: str = ""  # a turn's source field written as the whole prompt where present
    # The code's caps on its separately tokenised separator, prompt and response (Cut.parts).
    part_lengths: tuple[int, int, int] = (0, 0, 0)


STYLES: dict[str, Style] = {
    "wici": Style(_wici, "", ""),
    # compute_context_ppl.py:40-43: prompt 1024 tokens, response 1024, separator 10.
    "rico": Style(_rico, "", "\n\n\n", verbatim="inputs", part_lengths=(10, 1024, 1024)),
    "alpaca": Style(_alpaca, "### Response:", "\n\n"),
}


def rendered(request: LogprobRequest, style: str) -> tuple[list[str], str]:
    """The demos' texts, each with the gap after it, and the text right before the response,
    as `style` writes them."""
    demos, gap, prompt = pieces(request, style)
    return [demo + gap for demo in demos], prompt


def pieces(request: LogprobRequest, style: str) -> tuple[list[str], str, str]:
    """The demos' texts, the gap after each, and the text right before the response."""
    chosen = STYLES[style]
    demos = [context_text(demo, style) for demo in request.demos]
    has_prompt = any(t.role == "user" for t in request.prompt)
    return demos, chosen.demo_gap, _prompt(request.prompt, chosen) if has_prompt else chosen.bare


def context_text(exchange: tuple[Turn, ...], style: str) -> str:
    """A whole exchange, its prompt and its response, as `style` writes it as a demo (the text
    ICon's control replaces); an exchange with no user turn is its text alone."""
    if not any(t.role == "user" for t in exchange):
        return "".join(t.content for t in exchange)
    return _prompt(exchange[:-1], STYLES[style]) + exchange[-1].content


def _prompt(turns: tuple[Turn, ...], style: Style) -> str:
    user = next(t for t in reversed(turns) if t.role == "user")
    if style.verbatim and (text := user.source(style.verbatim)) is not None:
        return text
    return style.prompt(*_fields(turns))


def _fields(turns: tuple[Turn, ...]) -> tuple[str, str]:
    """(instruction, input) of a prompt: the last user turn's Alpaca fields, its text where it
    has none; the turns before it go first, one per line."""
    last = max(i for i, t in enumerate(turns) if t.role == "user")
    user = turns[last]
    instruction = user.source("instruction")
    extra = user.source("input") or "" if instruction is not None else ""
    earlier = [t.content for t in turns[:last]]
    return "\n".join([*earlier, instruction if instruction is not None else user.content]), extra


def retrieval_text(sample: Sample) -> str:
    """The text a reference run finds neighbours and demos by: the instruction alone, without
    its input (wICI's code)."""
    return _fields(sample.prompt)[0]


def duplicate_text(sample: Sample) -> str:
    """The text a reference run judges near-duplicates by: instruction, input and response,
    a blank line between each (wICI's code)."""
    instruction, extra = _fields(sample.prompt)
    return f"{instruction}\n\n{extra}\n\n{sample.response}"
