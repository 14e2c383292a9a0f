"""Benchmark harness: paired trials, statistics, plots and the report runner.

Notebooks stay thin: they validate their parameters (:func:`validate_params`), open a backend
(:func:`open_backend`), run trials (:func:`run_trials`), summarise them (``stats``) and draw them (``plots``).
Heavy modules are imported lazily, so ``import voorbeelden.bench`` is cheap.
"""

from __future__ import annotations

from voorbeelden._lazy import by_module, lazy_exports

_EXPORTS = by_module(
    {
        "voorbeelden.bench.data": ("load_begrippen",),
        "voorbeelden.bench.params": ("validate_params",),
        "voorbeelden.backend": ("Backend", "open_backend", "resolve_backend"),
        "voorbeelden.bench.trials": ("run_trials", "load_results", "TrialResults"),
        "voorbeelden.bench.environment": ("collect_environment",),
        "voorbeelden.bench.report": ("run_report",),
    }
)

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(globals(), _EXPORTS)
