"""Bounded memory per term: the resident set size of a long batch, sampled as terms finish.

    result = measure_memory(n_terms=100_000, checkpoints=(10_000, 50_000, 100_000))
    result.growth_mb   # RSS at the last checkpoint minus RSS at the first (after warm-up)

A batch that keeps something per finished term (a list of wall times, every call record) grows without
bound; one that keeps only the work in progress levels off after warm-up. The batch runs against a
simulator process at no rate limit and a tiny ``time_scale``, so the client's own bookkeeping is what is
measured, in a fresh process of its own (:mod:`voorbeelden.experiments.isolated`), writing a real results file.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MemoryResult", "measure_memory", "plot_memory", "run_memory_job"]


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


async def run_memory_job(spec: dict[str, Any]) -> dict[str, Any]:
    """One batch of ``spec["n_terms"]`` terms against ``spec["base_url"]``; RSS at each checkpoint."""
    from voorbeelden.backend import PLACEHOLDER_KEY
    from voorbeelden.batch import generate_many
    from voorbeelden.begrippen import distinct_requests

    n = int(spec["n_terms"])
    marks = sorted({int(c) for c in spec["checkpoints"] if 0 < int(c) <= n})
    samples: list[tuple[int, float, float]] = []
    done = 0
    t0 = time.monotonic()

    def on_result(row: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        if marks and done == marks[0]:
            marks.pop(0)
            samples.append((done, _rss_mb(), time.monotonic() - t0))

    with tempfile.TemporaryDirectory(prefix="voorbeelden-mem-") as tmp:
        out = Path(tmp) / "out.jsonl"
        summary = await generate_many(
            distinct_requests(n),
            out=out,
            base_url=spec["base_url"],
            api_key=PLACEHOLDER_KEY,
            max_in_flight=int(spec.get("max_in_flight", 64)),
            progress=False,
            on_result=on_result,
        )
        size = out.stat().st_size
    return {
        "samples": samples,
        "wall_s": summary.wall_s,
        "ok": summary.ok,
        "failed": summary.failed,
        "calls": summary.gate.get("sent", 0),
        "line_bytes": size / max(1, summary.generated),
    }


@dataclass
class MemoryResult:
    """RSS (MiB) after each checkpoint's number of finished terms, and what it means."""

    n_terms: int
    samples: list[tuple[int, float, float]] = field(default_factory=list)  # (terms done, RSS MiB, seconds)
    wall_s: float = 0.0
    ok: int = 0
    failed: int = 0
    calls: int = 0
    line_bytes: float = 0.0
    peak_rss_mb: float | None = None
    time_scale: float = 0.0

    @property
    def growth_mb(self) -> float | None:
        """RSS at the last checkpoint minus RSS at the first (the first is the end of warm-up)."""
        return self.samples[-1][1] - self.samples[0][1] if len(self.samples) >= 2 else None

    @property
    def terms_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["growth_mb"] = self.growth_mb
        d["terms_per_s"] = self.terms_per_s
        return d

    def describe(self) -> str:
        first, last = self.samples[0], self.samples[-1]
        return (
            f"RSS {first[1]:.1f} MiB after {first[0]:,} terms, {last[1]:.1f} MiB after {last[0]:,} terms: "
            f"growth {self.growth_mb:+.1f} MiB ({self.ok:,} ok, {self.failed} failed, {self.calls:,} calls, "
            f"{self.terms_per_s:.0f} terms/s, {self.line_bytes:.0f} bytes per output line)"
        )


def measure_memory(
    n_terms: int = 100_000,
    checkpoints: tuple[int, ...] | list[int] = (10_000, 25_000, 50_000, 75_000, 100_000),
    *,
    time_scale: float = 0.001,
    profile: str = "uniform-2s",
    seed: int = 0,
    isolate: bool = True,
) -> MemoryResult:
    """Run the batch over ``n_terms`` against a fresh unlimited simulator process and sample its RSS."""
    from voorbeelden.experiments.isolated import run_job
    from voorbeelden.sim import SimConfig, running_simulator

    cfg = SimConfig(profile=profile, time_scale=time_scale, seed=seed)
    with running_simulator(cfg, process=True) as sim:
        raw = run_job(
            "memory",
            {"base_url": sim.base_url, "n_terms": n_terms, "checkpoints": list(checkpoints)},
            isolate=isolate,
            timeout_s=6 * 3600,
        )
    return MemoryResult(
        n_terms=n_terms,
        samples=[tuple(s) for s in raw["samples"]],  # type: ignore[misc]
        wall_s=raw["wall_s"],
        ok=raw["ok"],
        failed=raw["failed"],
        calls=raw["calls"],
        line_bytes=raw["line_bytes"],
        # VmHWM is a lower bound: the kernel does not raise it for pages later given back with madvise (as
        # malloc_trim does), so a sampled RSS can exceed it; the peak is the larger of the two.
        peak_rss_mb=max([raw["peak_rss_mb"], *(s[1] for s in raw["samples"])])
        if raw.get("peak_rss_mb")
        else None,
        time_scale=time_scale,
    )


def plot_memory(result: MemoryResult, path: str | Path | None = None) -> Any:
    """RSS against terms finished; a flat line after the first sample is the goal."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([s[0] for s in result.samples], [s[1] for s in result.samples], marker="o")
    ax.set_xlabel("terms finished")
    ax.set_ylabel("RSS (MiB)")
    growth = result.growth_mb
    ax.set_title(
        f"batch of {result.n_terms:,} terms: RSS growth after the first sample "
        + (f"{growth:+.1f} MiB" if growth is not None else "n/a"),
        fontsize=10,
    )
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
