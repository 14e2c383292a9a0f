"""Terms counted in the online batch's words, shared by the Batch API run and the offline import."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TermCounts:
    """``complete``, ``partial`` and ``no_part`` (status ``failed``) terms, as result lines name them."""

    complete: int = 0
    partial: int = 0
    no_part: int = 0

    def count(self, status: str) -> None:
        """Count a term by its :func:`~voorbeelden.batch.runner.term_status`."""
        if status == "failed":
            self.no_part += 1
        else:
            setattr(self, status, getattr(self, status) + 1)

    @property
    def failed(self) -> int:
        """Terms not complete, as the online batch's summary counts them (``partial`` + ``no_part``)."""
        return self.partial + self.no_part
