"""What every method is given: the samples and their embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iclselect.embed.atlas import Atlas, atlas
from iclselect.errors import UsageError
from iclselect.records import Sample


@dataclass
class Pool:
    samples: list[Sample]
    # Unit-norm embeddings, one row per sample: of the instruction (+ input) alone, the text
    # neighbours and demos are retrieved by; and of instruction and response together, the text
    # near-duplicates and diversity are judged by. None when the method and selector need none.
    instruction_vectors: np.ndarray | None = None
    full_vectors: np.ndarray | None = None
    # `--template reference`: every method writes its requests in its reference code's format.
    reference: bool = False
    _atlas: Atlas | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def rows(self) -> list[int]:
        return [s.row for s in self.samples]

    def style(self, name: str) -> str:
        """The request style of reference format `name` (lm/reference.py) where this run
        uses the reference formats, else "" (the engine's template)."""
        return name if self.reference else ""

    def need_reference(self, method: str, **quirks: object) -> None:
        """Refuse a reference code's quirk (a method option) switched on in a run that does not
        write the reference formats: it applies to their text only."""
        on = [name for name, value in quirks.items() if value]
        if on and not self.reference:
            raise UsageError(
                f"{method}.{on[0]} reproduces the reference code's tokenisation: it needs "
                "--template reference"
            )

    def instructions(self) -> np.ndarray:
        if self.instruction_vectors is None:
            raise ValueError("this method needs instruction embeddings")
        return self.instruction_vectors

    def fulls(self) -> np.ndarray:
        if self.full_vectors is None:
            raise ValueError("this method needs instruction+response embeddings")
        return self.full_vectors

    def atlas(self) -> Atlas:
        """The pool's map (PCA + k-means of full_vectors), computed once: every method written
        from this pool (a compare) shares it."""
        if self._atlas is None:
            self._atlas = atlas(self.fulls())
        return self._atlas
