"""The state file beside ``--out`` (``OUT.batches.json``): which lines went into which provider batch.

A provider batch runs for up to 24 hours, much longer than a terminal session: the batch ids must outlive
the process that created them, or a rerun would pay for the same lines again. So every step that creates
something at the provider is written down *before* it is made (an entry with a tag) and completed after
(the file and batch ids), each time atomically (a temporary file renamed over the old one, fsynced), so a
kill at any moment leaves the previous state or the next, never half of one. A batch created just before a
kill, whose id never reached the file, is found again by its tag in the batch's ``metadata``.

The file is only read and written by the process that holds ``--out``'s lock (the online batch's
:class:`~voorbeelden.batch.output.OutputLog`), so two runs never race on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TERMINAL", "BatchEntry", "BatchState", "downloads_dir", "state_path"]

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
VERSION = 1


def state_path(out: str | os.PathLike[str]) -> Path:
    p = Path(out)
    return p.with_name(p.name + ".batches.json")


def downloads_dir(out: str | os.PathLike[str]) -> Path:
    """Where the provider's output and error files are kept once downloaded (a rerun reads them again
    instead of downloading); removed when every term is in ``--out``."""
    p = Path(out)
    return p.with_name(p.name + ".batches.d")


@dataclass
class BatchEntry:
    """One provider batch: the lines it carries and how far it got. ``status`` is ``preparing`` until the
    provider has it, then the provider's own status."""

    tag: str
    custom_ids: list[str]
    round: int = 1
    created: float = field(default_factory=time.time)
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str = "preparing"
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    downloaded: bool = False
    ended: float | None = None
    note: str | None = None

    @property
    def live(self) -> bool:
        """Still running at the provider (or being created): its lines must not be sent again."""
        return self.status not in TERMINAL and self.status != "lost"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass
class BatchState:
    """Everything a rerun needs to resume: the batches, and where they live."""

    path: Path
    run_tag: str
    host: str
    embedded: bool  # the batches live in an embedded simulator, gone when its run ended
    model: str
    strategy: str
    entries: list[BatchEntry] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, *, host: str, embedded: bool, model: str, strategy: str) -> BatchState:
        """The state in ``path``, or a new one. A state of another endpoint, model or strategy is refused
        (ValueError naming the file): its batches cannot be polled here, and mixing answers of two models in
        one results file would be wrong."""
        if not path.exists():
            return cls(path, secrets.token_hex(6), host, embedded, model, strategy)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = [BatchEntry(**e) for e in data["entries"]]
            state = cls(
                path, data["run_tag"], data["host"], bool(data["embedded"]), data["model"], data["strategy"]
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"batch state file {path} cannot be read ({type(err).__name__}: {err}); it is not a state file "
                "of voorbeelden batch --via openai-batch, or it was edited. Move it away to start afresh (the "
                "batches it names keep running at the provider: cancel them there)"
            ) from None
        state.entries = entries
        for name, have, want in (("model", state.model, model), ("strategy", state.strategy, strategy)):
            if have != want:
                raise ValueError(
                    f"batch state file {path} is for {name} {have!r}, not {want!r}; rerun with --{name} {have} "
                    "to finish those batches, or choose another --out"
                )
        if state.host != host and not (state.embedded and embedded):
            raise ValueError(
                f"batch state file {path} names batches at {state.host}, not at {host}; rerun against that "
                "endpoint to finish them, or choose another --out"
            )
        state.host = host
        return state

    def save(self) -> None:
        """Write atomically: a temporary file in the same folder, fsynced, renamed over the old one."""
        data = {
            "version": VERSION,
            "run_tag": self.run_tag,
            "host": self.host,
            "embedded": self.embedded,
            "model": self.model,
            "strategy": self.strategy,
            "entries": [dataclasses.asdict(e) for e in self.entries],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def new_entry(self, custom_ids: list[str], round_: int) -> BatchEntry:
        entry = BatchEntry(tag=f"{self.run_tag}-{len(self.entries) + 1}", custom_ids=custom_ids, round=round_)
        self.entries.append(entry)
        return entry

    def live(self) -> list[BatchEntry]:
        return [e for e in self.entries if e.live]

    def describe(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for e in self.entries:
            by_status[e.status] = by_status.get(e.status, 0) + 1
        return {
            "state_file": str(self.path),
            "batches": len([e for e in self.entries if e.batch_id]),
            "by_status": by_status,
            "lines_sent": sum(len(e.custom_ids) for e in self.entries if e.batch_id),
        }
