"""Calibrate a simulator profile from measured call records, so the simulator can predict a real backend.

From the :class:`~voorbeelden.types.CallRecord` rows of any backend (trials JSONL, a report's
``results.jsonl``) this fits, per part, the three things the simulator draws: time to first token, output
tokens and tokens per second; and the server's effective concurrency. Model and method:

* **Service time** of one call = TTFT(part) + tokens_out / tokens_per_s. Only calls that ran *alone* (no
  other call of their generation overlapped them, e.g. every call of a sequential run) are used for it, so
  queueing at the server does not inflate the fit. A least-squares fit of latency on the prompt tokens and
  the output tokens (shared coefficients: one prompt reader, one decoder) gives each part's TTFT (fixed part
  + its prompt) and the token rate; when streamed calls measured their TTFT, that is used instead.
  Spreads are log-normal sigmas: of the output tokens per part, and of the residuals (given to the token
  rate, the part of a call that varies most).
* **Effective concurrency** from the generations whose calls overlapped (parallel, bounded, ...): their calls
  are replayed, with their observed start times and fitted service times (each slot count with the scale
  factor, 0.5x-2x, that suits it best), on a first-come-first-served server with 1, 2, ... slots; the slot
  count whose end times match the observed ones best is that
  generation's estimate (the fewest slots within 5% of the best match: more would change nothing measurable),
  and the (lower) median over generations is the capacity. When fewer than a fifth of the overlapping calls took
  noticeably longer than their service time (1.25x), nothing queued: no limit was observed (``None``). The mean number of
  requests in service (fitted service time / time the calls took) is reported beside it.

What it cannot see: queueing *between* generations (trials run one generation at a time, so none), and a
server that slows each request down as it serves more at once (then the fitted concurrency is the
throughput-equivalent number of slots).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voorbeelden.sim.calibrate_batching import BatchingFit, fit_batching
from voorbeelden.sim.calibrate_capacity import Concurrency, _concurrency, fifo_ends
from voorbeelden.sim.calibrate_records import GEN_KEYS, mark_solo, merge_resamples

__all__ = ["Calibration", "CalibrationError", "Concurrency", "calibrate", "calibrate_files", "fifo_ends"]
from voorbeelden.sim.profiles import LogNormal, PartProfile, Profile
from voorbeelden.types import ALL_PARTS

PROFILE_FORMAT = "voorbeelden-profile/1"
PARTS = tuple(p.value for p in ALL_PARTS)
# Extra calls a profile can carry beside the six parts (the combined strategy's one call for all six).
EXTRA_LABELS = ("combined",)
DEFAULT_TTFT_SIGMA = 0.1  # not identifiable without streamed calls; a small spread, stated in the fit


class CalibrationError(ValueError):
    """The records cannot support a fit (none usable, a part missing); the message says which."""


@dataclass(frozen=True)
class PartFit:
    """The fitted distributions of one part, and what they rest on."""

    part: str
    n: int
    n_solo: int
    ttft: LogNormal
    tokens: LogNormal
    tokens_per_s: LogNormal
    ttft_source: str  # "streamed" (measured TTFT) or "regression" (intercept of latency on tokens)

    def profile(self) -> PartProfile:
        return PartProfile(self.ttft, self.tokens, self.tokens_per_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_solo": self.n_solo,
            "ttft_source": self.ttft_source,
            "ttft_median_s": self.ttft.median,
            "tokens_median": self.tokens.median,
            "tokens_per_s_median": self.tokens_per_s.median,
        }


@dataclass(frozen=True)
class Calibration:
    """A fitted profile, the concurrency and the fit's diagnostics; :meth:`to_dict` is the profile file."""

    name: str
    source: str
    parts: dict[str, PartFit]
    extra: dict[str, PartFit]
    generic: PartFit
    concurrency: Concurrency
    seconds_per_token: float
    residual_sigma: float
    n_records: int
    notes: list[str] = field(default_factory=list)
    batching_fit: BatchingFit | None = None

    @property
    def capacity(self) -> int | None:
        """Calls served at once without slowing each other; None when a batching curve (whose max_batch
        limits the server) was fitted, or when no limit was observed."""
        if self.batching_fit is not None and self.batching_fit.batching is not None:
            return None
        return self.concurrency.capacity

    def profile(self) -> Profile:
        return Profile(
            name=self.name,
            description=f"calibrated from {self.n_records} call records ({self.source})",
            source=self.source,
            parts={p: f.profile() for p, f in self.parts.items()},
            generic=self.generic.profile(),
            extra={p: f.profile() for p, f in self.extra.items()},
            batching=None if self.batching_fit is None else self.batching_fit.batching,
        )

    def to_dict(self) -> dict[str, Any]:
        data = profile_to_dict(self.profile())
        data["capacity"] = self.capacity
        data["fit"] = {
            "n_records": self.n_records,
            "seconds_per_token": self.seconds_per_token,
            "residual_sigma": self.residual_sigma,
            "concurrency": self.concurrency.to_dict(),
            "batching": None if self.batching_fit is None else self.batching_fit.to_dict(),
            "parts": {p: f.to_dict() for p, f in {**self.parts, **self.extra}.items()},
            "notes": list(self.notes),
        }
        return data

    def table(self) -> pd.DataFrame:
        """One row per fitted part: what the simulator will draw (medians) and how many records back it."""
        rows = []
        for p, f in {**self.parts, **self.extra}.items():
            rows.append(
                {
                    "part": p,
                    "records": f.n,
                    "solo": f.n_solo,
                    "ttft_s": f.ttft.median,
                    "ttft_source": f.ttft_source,
                    "tokens": f.tokens.median,
                    "tokens_sigma": f.tokens.sigma,
                    "tokens_per_s": f.tokens_per_s.median,
                    "service_s": f.ttft.median + f.tokens.median / f.tokens_per_s.median,
                }
            )
        return pd.DataFrame(rows)


# ---- profile files ----------------------------------------------------------------------------------------


def _ln(d: LogNormal) -> dict[str, float]:
    return {"median": float(d.median), "sigma": float(d.sigma)}


def _pp(p: PartProfile) -> dict[str, Any]:
    return {"ttft_s": _ln(p.ttft_s), "tokens": _ln(p.tokens), "tokens_per_s": _ln(p.tokens_per_s)}


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    data = {
        "format": PROFILE_FORMAT,
        "name": profile.name,
        "description": profile.description,
        "source": profile.source,
        "parts": {name: _pp(pp) for name, pp in profile.parts.items()},
        "generic": _pp(profile.generic),
        "extra": {name: _pp(pp) for name, pp in profile.extra.items()},
    }
    if profile.batching is not None:
        data["batching"] = profile.batching.to_dict()
    return data


def write_profile(calibration: Calibration, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(calibration.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ---- reading records --------------------------------------------------------------------------------------


def read_records(paths: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """Call records from JSONL files: generation rows with a ``records`` list (trials, reports) or one record
    per line. Warm-up generations are dropped. Raises :class:`CalibrationError` for a missing file or a line
    that is not JSON (a torn last line of a killed run is skipped)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise CalibrationError(f"{path} does not exist")
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines):
                    continue
                raise CalibrationError(f"{path}:{i} is not a JSON line") from None
            if not isinstance(row, dict):
                raise CalibrationError(f"{path}:{i} is not a JSON object")
            rows.extend(_expand(row))
    return pd.DataFrame(rows)


def _expand(row: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    if isinstance(row.get("records"), list):
        if row.get("warmup"):
            return []
        carry = {k: row.get(k) for k in GEN_KEYS if k in row}
        return [{**carry, **rec} for rec in row["records"] if isinstance(rec, dict)]
    if "part" in row and "latency_s" in row:
        return [] if row.get("warmup") else [dict(row)]
    return []


# ---- fitting ----------------------------------------------------------------------------------------------


def _robust_sigma(values: Iterable[float]) -> float:
    """Sigma of log values by the median absolute deviation (1.4826 x MAD): one odd call does not widen it."""
    x = np.log(np.asarray([v for v in values if v > 0], dtype=float))
    if x.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


TIMED_STATUSES = ("ok", "parse_error")


def _usable(records: pd.DataFrame) -> pd.DataFrame:
    if records.empty:
        return records
    df = records.copy()
    for col, default in (("hedge", False), ("cached", False), ("ttft_s", np.nan), ("strategy", "")):
        if col not in df:
            df[col] = default
    # A parse_error is a whole answer the server produced (a small model echoing its instruction): its
    # timing is the server's like any other; only the content was unusable.
    df = df[df["status"].isin(TIMED_STATUSES) & ~df["hedge"].fillna(False).astype(bool)]
    df = df[~df["cached"].fillna(False).astype(bool)]
    df = df[pd.to_numeric(df["tokens_out"], errors="coerce").fillna(0) > 0]
    df = df[pd.to_numeric(df["latency_s"], errors="coerce").fillna(0) > 0]
    df["tokens_out"] = df["tokens_out"].astype(float)
    df["latency_s"] = df["latency_s"].astype(float)
    df["ttft_s"] = pd.to_numeric(df["ttft_s"], errors="coerce")
    return df


@dataclass(frozen=True)
class ServiceFit:
    """latency = base_s + s_per_prompt_token x tokens_in + s_per_token x tokens_out (least squares)."""

    base_s: float
    s_per_prompt_token: float
    s_per_token: float
    residual_sigma: float

    def ttft(self, tokens_in: float) -> float:
        return max(0.001, self.base_s + self.s_per_prompt_token * tokens_in)


def _fit_service(df: pd.DataFrame) -> ServiceFit:
    """One decoder, one prompt reader: the time to first token grows with the prompt (``tokens_in``), the rest
    with the output (``tokens_out``). Shared coefficients, so the slope is learnt from the spread between
    parts (tens to thousands of tokens), not from the little spread within one. A coefficient that comes out
    negative (too little spread to tell) is dropped and the rest refitted."""
    y = df["latency_s"].to_numpy(float)
    cols = {
        "base": np.ones(len(df)),
        "in": pd.to_numeric(df.get("tokens_in"), errors="coerce").fillna(0).to_numpy(float)
        if "tokens_in" in df
        else np.zeros(len(df)),
        "out": df["tokens_out"].to_numpy(float),
    }
    use = [k for k in ("base", "in", "out") if cols[k].any()]
    coef: dict[str, float] = {}
    while use:
        x = np.column_stack([cols[k] for k in use])
        sol, *_ = np.linalg.lstsq(x, y, rcond=None)
        coef = dict(zip(use, map(float, sol), strict=True))
        negative = [k for k in use if coef[k] < 0 and k != "out"]
        if not negative:
            break
        use.remove(negative[0])
    slope = coef.get("out", 0.0)
    if not math.isfinite(slope) or slope <= 0:  # no usable spread at all: seconds per token, no fixed part
        coef = {"out": float(np.median(y / cols["out"]))}
        slope = coef["out"]
    fit = ServiceFit(coef.get("base", 0.0), coef.get("in", 0.0), slope, 0.0)
    pred = np.array([fit.ttft(t) for t in cols["in"]]) + slope * cols["out"]
    resid = np.log(y) - np.log(np.maximum(pred, 1e-6))
    sigma = float(1.4826 * np.median(np.abs(resid - np.median(resid)))) if len(resid) > 1 else 0.0
    return dataclasses.replace(fit, residual_sigma=sigma)


def usable_records(records: pd.DataFrame) -> pd.DataFrame:
    """The records a fit can use, marked ``solo``/``in_flight``; a :class:`CalibrationError` says why there
    are none."""
    if records is None or records.empty or "part" not in records:
        raise CalibrationError("no call records found (expected trials/report JSONL with 'records')")
    need = {"status", "latency_s", "tokens_out", "t_start", "t_end"} - set(records.columns)
    if need:
        raise CalibrationError(f"the records lack {sorted(need)}; they do not come from voorbeelden")
    # Overlap is judged among all of a generation's calls (failed ones occupied the server too).
    marked = mark_solo(
        merge_resamples(
            records.assign(t_start=records["t_start"].astype(float), t_end=records["t_end"].astype(float))
        )
    )
    df = _usable(marked)
    if df.empty:
        raise CalibrationError(
            "no usable call records: none is a whole answer with output tokens (status ok or parse_error, "
            "tokens_out > 0, not a hedge)"
        )
    return df


def _labels(df: pd.DataFrame) -> list[str]:
    """The parts (and extra calls) the records hold, in profile order; every one of the six must be there."""
    labels = [p for p in (*PARTS, *EXTRA_LABELS) if (df["part"] == p).any()]
    missing = [p for p in PARTS if p not in labels]
    if missing:
        raise CalibrationError(f"no usable records for part(s) {', '.join(missing)}: cannot fit them")
    return labels


def _service_rows(df: pd.DataFrame, labels: Sequence[str], notes: list[str]) -> pd.DataFrame:
    """The calls that ran alone, plus the overlapping ones of a part that never ran alone (said in ``notes``)."""
    solo = df[df["solo"]]
    if solo["part"].nunique() >= len(labels):
        return solo
    notes.append("some parts never ran alone; their service time is fitted on overlapping calls")
    return pd.concat([solo, df[~df["solo"] & ~df["part"].isin(solo["part"].unique())]])


def _fit_part(label: str, rows: pd.DataFrame, srows: pd.DataFrame, service_fit: ServiceFit) -> PartFit:
    """One part's fit from its ``rows`` (all usable) and ``srows`` (those its service time rests on)."""
    streamed = srows[srows["ttft_s"].notna() & (srows["ttft_s"] > 0)]
    if len(streamed):
        ttft = LogNormal(float(streamed["ttft_s"].median()), _robust_sigma(streamed["ttft_s"]))
        src = "streamed"
    else:
        tokens_in = (
            pd.to_numeric(rows.get("tokens_in"), errors="coerce").median() if "tokens_in" in rows else 0
        )
        ttft = LogNormal(
            service_fit.ttft(0.0 if tokens_in != tokens_in else float(tokens_in)), DEFAULT_TTFT_SIGMA
        )
        src = "regression"
    return PartFit(
        part=label,
        n=len(rows),
        n_solo=int(rows["solo"].sum()),
        ttft=ttft,
        tokens=LogNormal(float(rows["tokens_out"].median()), _robust_sigma(rows["tokens_out"])),
        tokens_per_s=LogNormal(1.0 / service_fit.s_per_token, service_fit.residual_sigma),
        ttft_source=src,
    )


def _generic_fit(df: pd.DataFrame, part_fits: Mapping[str, PartFit], service_fit: ServiceFit) -> PartFit:
    """The pooled fit of the six parts, for a call the profile does not name."""
    all_rows = df[df["part"].isin(PARTS)]
    return PartFit(
        part="generic",
        n=len(all_rows),
        n_solo=int(all_rows["solo"].sum()),
        ttft=LogNormal(float(np.median([f.ttft.median for f in part_fits.values()])), DEFAULT_TTFT_SIGMA),
        tokens=LogNormal(float(all_rows["tokens_out"].median()), _robust_sigma(all_rows["tokens_out"])),
        tokens_per_s=LogNormal(1.0 / service_fit.s_per_token, service_fit.residual_sigma),
        ttft_source="pooled",
    )


def calibrate(
    records: pd.DataFrame, *, name: str = "calibrated", source: str = "call records"
) -> Calibration:
    """Fit a :class:`Calibration` from call-record rows (see the module docstring for the method)."""
    df = usable_records(records)
    notes: list[str] = []
    labels = _labels(df)
    df = df[df["part"].isin(labels)]
    fit_on = _service_rows(df, labels, notes)
    service_fit = _fit_service(fit_on)
    fits = {
        label: _fit_part(label, df[df["part"] == label], fit_on[fit_on["part"] == label], service_fit)
        for label in labels
    }
    if "resampled" in df and df["resampled"].fillna(0).sum():
        notes.append(
            f"{int(df['resampled'].fillna(0).sum())} unusable answer(s) were asked again: each part is fitted as "
            "one call with the work of its attempts (the simulator does not make unusable answers)"
        )
    if not any(f.ttft_source == "streamed" for f in fits.values()):
        notes.append(
            f"no streamed calls: TTFT is the fitted fixed time plus prompt reading (sigma "
            f"{DEFAULT_TTFT_SIGMA} assumed)"
        )
    service = {label: fits[label].ttft.median for label in labels}
    concurrency = _concurrency(df, service, service_fit.s_per_token)
    batching = fit_batching(df, service, service_fit.s_per_token)
    if concurrency.n_generations == 0:
        notes.append("no generation ran calls concurrently: the server's concurrency is not observed (None)")
    elif batching.batching is not None:
        notes.append(
            f"concurrent calls slowed each other: batching curve fitted (max batch {batching.max_batch}, "
            f"per-stream speed {batching.batching.rate(batching.max_batch):.2f}x at {batching.max_batch} "
            f"streams); it replaces the slot count"
        )
        if batching.max_batch == batching.most_in_flight:
            notes.append(
                f"no call queued up to {batching.max_batch} streams: beyond that the profile queues (not observed)"
            )
    part_fits = {p: fits[p] for p in PARTS}
    return Calibration(
        name=name,
        source=source,
        parts=part_fits,
        extra={p: fits[p] for p in labels if p in EXTRA_LABELS},
        generic=_generic_fit(df, part_fits, service_fit),
        concurrency=concurrency,
        seconds_per_token=service_fit.s_per_token,
        residual_sigma=service_fit.residual_sigma,
        n_records=len(df),
        notes=notes,
        batching_fit=batching,
    )


def calibrate_files(paths: str | Path | Sequence[str | Path], *, name: str | None = None) -> Calibration:
    """:func:`calibrate` over JSONL files (warm-up generations excluded)."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    source = ", ".join(Path(p).name for p in paths)
    return calibrate(read_records(paths), name=name or f"calibrated-{Path(paths[0]).stem}", source=source)
