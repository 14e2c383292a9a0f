"""Benchmark harness: paired trials, statistics, plots and the report runner.

Notebooks stay thin: they validate their parameters (:func:`validate_params`), open a backend
(:func:`open_backend`), run trials (:func:`run_trials`), summarise them (``stats``) and draw them (``plots``).
Heavy modules are imported lazily, so ``import voorbeelden.bench`` is cheap.
"""

from __future__ import annotations

from voorbeelden._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "load_begrippen": "voorbeelden.bench.data",
    "validate_params": "voorbeelden.bench.params",
    "Backend": "voorbeelden.backend",
    "open_backend": "voorbeelden.backend",
    "resolve_backend": "voorbeelden.backend",
    "run_trials": "voorbeelden.bench.trials",
    "load_results": "voorbeelden.bench.trials",
    "TrialResults": "voorbeelden.bench.trials",
    "collect_environment": "voorbeelden.bench.environment",
    "run_report": "voorbeelden.bench.report",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(globals(), _EXPORTS)
