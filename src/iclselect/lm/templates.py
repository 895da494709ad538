"""Prompt templates: turn a LogprobRequest into token ids with an exact target span.

Three renderings (`--template`):

- chat:   the model's own chat template. Demos are earlier user/assistant exchanges.
- alpaca: "### Instruction:\\n{user}\\n\\n### Response:\\n{assistant}" (the ICon/RICo format);
          demos are whole exchanges separated from what follows by "\\n\\n\\n".
- plain:  "{user}\\n{assistant}" (the wICI reference code's format); demos separated by "\\n\\n".
- reference: each method's own reference-code format (lm/reference.py), named by the request's
          `style`; a request without one is written in the Stanford Alpaca format. Its sequences
          start as the tokenizer starts a text (BOS where it adds one), the start token below
          only where nothing else would precede the response.

The target is tokenised on its own and appended, so its span is known by token count, never by
searching text. Message contents are tokenised as data: text such as "<|im_start|>" inside a user
message stays plain text and cannot open a turn. Only template markup may produce special tokens.

Every target token is scored, the first included, so the context is never empty. The unconditioned
context of IFD's L(y) is the template's response header alone ("<|im_start|>assistant\\n" for
ChatML models, "### Response:\\n" for alpaca), after the BOS token where the chat template starts
every conversation with one. alpaca and plain sequences start with the tokenizer's BOS token, or
its EOS token where it has no BOS (GPT-2 style), which is the token the first response token of
plain's unconditioned L(y) is conditioned on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from iclselect.errors import UsageError
from iclselect.lm import reference
from iclselect.lm.requests import Cut, LogprobRequest
from iclselect.records import Turn

TEMPLATES = ("chat", "alpaca", "plain", "reference")

# Sentinels stand in for message contents while the chat template renders, so the markup the
# template writes can be told apart from the contents it wraps.
_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True)
class Encoded:
    context_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    # Leading context tokens that render only the system turn and the demos: every request with
    # the same demos starts with exactly these tokens, so the engine can compute them once.
    prefix_len: int = 0
    # Context tokens up to the end of the last message text (0: none, as in the bare response
    # header of L(y)); what follows is template markup.
    text_end: int = 0
    # The window a reference code's own truncation left (Cut.max_length): the engine takes it
    # in place of --max-length. 0: --max-length.
    max_length: int = 0


@dataclass(frozen=True)
class _Piece:
    text: str
    is_markup: bool
    in_prefix: bool = False


class Template:
    """Renders and tokenises requests for one tokenizer in one of TEMPLATES."""

    def __init__(self, name: str, tokenizer: Any) -> None:
        if name not in TEMPLATES:
            raise UsageError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATES)}")
        if name == "chat" and not getattr(tokenizer, "chat_template", None):
            raise UsageError(
                "the model's tokenizer has no chat template; use --template alpaca or plain"
            )
        self.name = name
        self.tokenizer = tokenizer
        start = tokenizer.bos_token_id
        self.start_id: int = start if start is not None else tokenizer.eos_token_id
        self._tokenize = lru_cache(maxsize=65536)(self._tokenize_uncached)
        self._chat_layout = lru_cache(maxsize=256)(self._chat_layout_uncached)
        self._code_tokenize = lru_cache(maxsize=65536)(self._code_tokenize_uncached)
        self._lead = _leading_bos(tokenizer) if name == "chat" else ""
        self._response_header = _response_header(tokenizer) if name == "chat" else ""
        self._added = _added_lead(tokenizer)

    @property
    def fingerprint(self) -> str:
        """Identifies everything that changes token ids: template name and chat template text."""
        chat = getattr(self.tokenizer, "chat_template", None) or ""
        vocab = f"{type(self.tokenizer).__name__}:{len(self.tokenizer)}"
        # A BOS before L(y)'s bare header changed those answers: such templates get a new print.
        lead = "\0bos-header" if self._lead else ""
        digest = hashlib.sha256(f"{self.name}\0{chat}\0{vocab}{lead}".encode()).hexdigest()
        return f"{self.name}-{digest[:12]}"

    def encode(self, request: LogprobRequest) -> Encoded:
        style = request.style or ("alpaca" if self.name == "reference" else "")
        if style:
            return self._encode_text(request, style)
        pieces = self._render_context(request)
        context: list[int] = [] if self.name == "chat" else [self.start_id]
        prefix_len = text_end = 0
        for piece in pieces:
            context.extend(self._tokenize(piece.text, piece.is_markup))
            if piece.in_prefix:
                prefix_len = len(context)
            if not piece.is_markup:
                text_end = len(context)
        if not context:
            context = [self.start_id]
        target = self._tokenize(request.target, False)
        return Encoded(tuple(context), target, prefix_len, text_end)

    def _encode_text(self, request: LogprobRequest, style: str) -> Encoded:
        """A reference-style request: what the tokenizer itself puts first (BOS where it adds
        one, as the reference code's tokenizer calls do), each demo's text, the prompt's text,
        all tokenised as data; every demo together is the shared prefix. Where nothing would
        precede the response (wICI's L(y)), the start token does, so that every response
        token is scored. The request's Cut swaps any of these rules for its code's."""
        if request.cut.joint:
            return self._encode_joint(request, style)
        if request.cut.parts:
            return self._encode_parts(request, style)
        demos, prompt = reference.rendered(request, style)
        context = list(self._added)
        for demo in demos:
            context.extend(self._tokenize(demo, False))
        prefix_len = len(context) if demos else 0
        text_end = len(context) if demos else 0
        context.extend(self._tokenize(prompt, False))
        if any(t.role == "user" for t in request.prompt):
            text_end = len(context)
        target = list(self._tokenize(request.target, False))
        return self._scored(context, target, request.cut, prefix_len, text_end)

    def _encode_joint(self, request: LogprobRequest, style: str) -> Encoded:
        """Cut.joint: the whole text tokenised at once, as the tokenizer tokenises a text; the
        response starts after as many tokens as the text before it has on its own (Cherry's
        data_analysis.py:63-64, wICI's ICL-influence-new.py:61-71)."""
        demos, prompt = reference.rendered(request, style)
        before = "".join(demos) + prompt
        ids = self._code_ids(before + request.target, 0)
        split = len(self._code_ids(before, 0))
        shared = self._code_ids("".join(demos), 0) if demos else ()
        prefix_len = next(
            (k for k, (a, b) in enumerate(zip(shared, ids, strict=False)) if a != b), len(shared)
        )
        context = list(ids[:split])
        return self._scored(context, list(ids[split:]), request.cut, prefix_len, len(context))

    def _encode_parts(self, request: LogprobRequest, style: str) -> Encoded:
        """Cut.parts: each demo, separator and prompt and the response tokenised on its own as
        the tokenizer tokenises a text, each cut at its cap where the Cut has a max_length, and
        every part after the first without its first token (RICo's compute_context_ppl.py:45,
        compute_assessment_ppl.py:59)."""
        cut = request.cut
        demos, gap, prompt = reference.pieces(request, style)
        caps = reference.STYLES[style].part_lengths if cut.max_length else (0, 0, 0)
        parts = [
            (piece, cap)
            for demo in demos
            for piece, cap in ((demo, cut.max_length), (gap, caps[0]))
        ]
        parts.append((prompt, caps[1]))
        context: list[int] = []
        prefix_len = 0
        for k, (text, cap) in enumerate(parts):
            context.extend(self._code_ids(text, cap)[1 if k else 0 :])
            if k == 0 and demos:
                prefix_len = len(context)
        target = list(self._code_ids(request.target, caps[2])[1:])
        window = cut.max_length and len(context) + len(target)
        return self._scored(
            context, target, replace(cut, max_length=window), prefix_len, len(context)
        )

    def _scored(
        self, context: list[int], target: list[int], cut: Cut, prefix_len: int, text_end: int
    ) -> Encoded:
        """The sequence as `cut` scores it: the start token before an empty context (with
        `bare`, the first response token is the context instead), the first `skip` response
        tokens moved into the context, and the code's truncation from the right, which the
        engine then takes as the window (a response cut away whole leaves nothing to score:
        the code's NaN)."""
        if not context:
            if cut.bare and target:
                context, target = target[:1], target[1:]
            else:
                context = [self.start_id]
        skip = min(cut.skip, len(target))
        context, target = context + target[:skip], target[skip:]
        window = 0
        if cut.max_length:
            target = target[: max(0, cut.max_length - len(context))]
            context = context[: cut.max_length]
            window = len(context) + len(target)
        return Encoded(tuple(context), tuple(target), prefix_len, text_end, window)

    def _code_ids(self, text: str, cap: int) -> tuple[int, ...]:
        """`text` as the reference code's `tokenizer(text, truncation=True, max_length=cap)`
        gives it: the tokenizer's own special tokens, special-token text read as such, cut on
        the right (cap 0: whole)."""
        return self._code_tokenize(text, cap)

    def _tokenize_uncached(self, text: str, is_markup: bool) -> tuple[int, ...]:
        ids = self.tokenizer(
            text, add_special_tokens=False, split_special_tokens=not is_markup
        ).input_ids
        return tuple(ids)

    def _code_tokenize_uncached(self, text: str, cap: int) -> tuple[int, ...]:
        if cap:
            return tuple(self.tokenizer(text, truncation=True, max_length=cap).input_ids)
        return tuple(self.tokenizer(text).input_ids)

    def _render_context(self, request: LogprobRequest) -> list[_Piece]:
        system = [t for t in request.prompt if t.role == "system"]
        turns = [t for demo in request.demos for t in demo if t.role != "system"]
        turns += [t for t in request.prompt if t.role != "system"]
        if self.name != "chat":
            return self._render_text(system, request, turns)
        if not system and not turns:
            return [_Piece(self._lead + self._response_header, True)]
        n_demo_turns = len(turns) - sum(1 for t in request.prompt if t.role != "system")
        shared = len(system) + n_demo_turns if request.demos else 0
        return self._render_messages(system + turns, shared)

    def _render_messages(self, messages: list[Turn], shared: int) -> list[_Piece]:
        """Chat-template pieces; the first `shared` messages (system, demos) form the prefix,
        which ends with the last of their contents, before any markup that follows it."""
        parts, tail = self._chat_layout(tuple(t.role for t in messages))
        pieces: list[_Piece] = []
        for markup, index in parts:
            in_prefix = index < shared
            if markup:
                pieces.append(_Piece(markup, True, in_prefix))
            pieces.append(_Piece(messages[index].content, False, in_prefix))
        if tail:
            pieces.append(_Piece(tail, True))
        return pieces

    def _chat_layout_uncached(
        self, roles: tuple[str, ...]
    ) -> tuple[tuple[tuple[str, int], ...], str]:
        """The chat template's markup around messages of these roles: (markup before, message
        index) per message, then the markup after the last. It depends on the roles alone
        (contents are placeholders), so it is rendered once per role sequence."""
        rendered = self.tokenizer.apply_chat_template(
            [{"role": role, "content": _SENTINEL.format(i)} for i, role in enumerate(roles)],
            tokenize=False,
            add_generation_prompt=True,
        )
        parts = []
        position = 0
        for match in _SENTINEL_RE.finditer(rendered):
            parts.append((rendered[position : match.start()], int(match.group(1))))
            position = match.end()
        return tuple(parts), rendered[position:]

    def _render_text(
        self, system: list[Turn], request: LogprobRequest, turns: list[Turn]
    ) -> list[_Piece]:
        user_tag, reply_tag, demo_gap = (
            ("### Instruction:\n", "\n\n### Response:\n", "\n\n\n")
            if self.name == "alpaca"
            else ("", "\n", "\n\n")
        )
        shared = bool(request.demos)
        pieces = [
            p
            for t in system
            for p in (_Piece(t.content, False, shared), _Piece("\n\n", True, shared))
        ]
        n_demo_turns = len(turns) - sum(1 for t in request.prompt if t.role != "system")
        for i, turn in enumerate(turns):
            in_prefix = i < n_demo_turns
            if turn.role == "user":
                pieces += [
                    _Piece(user_tag, True, in_prefix),
                    _Piece(turn.content, False, in_prefix),
                ]
                pieces.append(_Piece(reply_tag, True, in_prefix))
            else:
                pieces.append(_Piece(turn.content, False, in_prefix))
                gap = demo_gap if i == n_demo_turns - 1 else "\n\n"
                pieces.append(_Piece(gap, True))
        if not request.prompt or request.prompt[-1].role != "user":
            pieces.append(_Piece(reply_tag.lstrip("\n"), True))
        return [p for p in pieces if p.text]


def _leading_bos(tokenizer: Any) -> str:
    """The BOS token a chat template writes before every conversation (Llama 3, Mistral, Gemma),
    else "". L(y)'s bare response header keeps it: the model never saw a sequence without it.
    Only a template that names bos_token counts: ChatML's turns open with "<|im_start|>", which
    some tokenizers also call their BOS."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or "bos_token" not in (tokenizer.chat_template or ""):
        return ""
    probe = [{"role": "user", "content": "x"}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    return bos if rendered.startswith(bos) else ""


def _added_lead(tokenizer: Any) -> tuple[int, ...]:
    """The special tokens the tokenizer puts before a text by default (Llama's BOS; none for
    GPT-2-style tokenizers such as SmolLM2's)."""
    plain = tokenizer("x", add_special_tokens=False).input_ids
    added = tokenizer("x").input_ids
    for start in range(len(added) - len(plain) + 1):
        if added[start : start + len(plain)] == plain:
            return tuple(added[:start])
    return ()


def _response_header(tokenizer: Any) -> str:
    """What the chat template writes between a user turn and the assistant's reply text."""
    probe = [{"role": "user", "content": "x"}]
    with_header = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    without = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=False)
    return with_header[len(without) :]
