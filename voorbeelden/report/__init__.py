"""``voorbeelden report``: run the notebooks with papermill, assemble the summary and the HTML first page."""

from __future__ import annotations

from voorbeelden._lazy import by_module, lazy_exports

_EXPORTS = by_module(
    {
        "voorbeelden.report.environment": ("collect_environment",),
        "voorbeelden.report.runner": ("run_report",),
    }
)

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(globals(), _EXPORTS)
