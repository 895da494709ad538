"""How counts are written in what iclselect prints: "1 row", "2 rows"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, the noun in the plural (its `plural`, else noun + "s") unless n is 1."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
