"""The experiments the notebooks call: one module and one parameter model per experiment.

Notebooks stay thin: they validate their parameters (:func:`validate_params`), open a backend
(:func:`~voorbeelden.backend.open_backend`), run trials (:func:`run_trials`), summarise them (``stats``) and
draw them (``plots``). Heavy modules are imported lazily, so ``import voorbeelden.experiments`` is cheap.
"""

from __future__ import annotations

from voorbeelden._lazy import by_module, lazy_exports

_EXPORTS = by_module(
    {
        "voorbeelden.begrippen": ("load_begrippen",),
        "voorbeelden.experiments.params": ("validate_params",),
        "voorbeelden.experiments.trials": ("run_trials", "load_results", "TrialResults"),
    }
)

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(globals(), _EXPORTS)
