"""voorbeelden-lab: generate Dutch voorbeelden for a term with an LLM, and measure call strategies honestly.

The public API is re-exported here; implementation modules are imported lazily so that ``import voorbeelden``
stays cheap (the CLI and the simulator process do not pay for pandas or matplotlib).
"""

from __future__ import annotations

from voorbeelden._lazy import lazy_dir, lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # types
    "Part": "voorbeelden.types",
    "ALL_PARTS": "voorbeelden.types",
    "Request": "voorbeelden.types",
    "InvalidRequest": "voorbeelden.types",
    "CallRecord": "voorbeelden.types",
    "Generation": "voorbeelden.types",
    # generator
    "generate": "voorbeelden.generator",
    "generate_sync": "voorbeelden.generator",
    "GeneratorConfig": "voorbeelden.config",
    "PartSettings": "voorbeelden.config",
    "get_strategy": "voorbeelden.strategies.registry",
    "LatencyHistory": "voorbeelden.strategies.context",
    # batch
    "generate_many": "voorbeelden.batch",
    "generate_many_sync": "voorbeelden.batch",
    # simulator
    "running_simulator": "voorbeelden.sim",
    "SimConfig": "voorbeelden.sim",
    "PROFILES": "voorbeelden.sim",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


__getattr__ = lazy_exports(globals(), _EXPORTS)
__dir__ = lazy_dir(globals(), _EXPORTS)
