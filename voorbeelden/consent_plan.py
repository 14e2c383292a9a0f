"""What ``voorbeelden report`` would send to a remote endpoint, counted from its parameter file before any
notebook runs, so the consent question (:mod:`voorbeelden.consent`) can state calls, tokens and cost.

Counting follows the experiments: notebook 01 runs sequential and parallel on ``warmup + trials *
n_begrippen`` requests each, notebook 05 every strategy on as many, notebook 02 is skipped on a real endpoint,
03 only reads files, and a notebook without a ``backend`` parameter (04) always uses the simulator. Calls per
generation: 6, ``split`` 4 + the items of its split parts, ``combined`` 1 (fallback calls only when it fails).
Retries, hedged backups and fallbacks come on top; the plan says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voorbeelden.backend import resolve_backend
from voorbeelden.consent import Plan, is_remote
from voorbeelden.tokens import estimate_prompt_tokens


def per_generation(strategy: str) -> tuple[int, int, int]:
    """(calls, input tokens, output-token cap) of one generation with ``strategy``, from the real prompts and
    the strategy's planned calls (:meth:`~voorbeelden.strategies.registry.StrategyInfo.call_plan`)."""
    from voorbeelden.begrippen import load_begrippen
    from voorbeelden.config import GeneratorConfig
    from voorbeelden.prompts import build_combined_messages, build_messages
    from voorbeelden.strategies.registry import COMBINED_LABEL, info
    from voorbeelden.types import ALL_PARTS, Part

    cfg = GeneratorConfig()
    request = load_begrippen(1)[0]
    counts = {p: cfg.settings(p).count for p in ALL_PARTS}

    calls = tokens_in = tokens_out = 0
    for label, n in info(strategy).call_plan(counts).items():
        if label == COMBINED_LABEL:
            messages = build_combined_messages(request, counts)
            cap = sum(cfg.settings(p).max_tokens for p in ALL_PARTS)
        else:
            s = cfg.settings(Part(label))
            messages, cap = build_messages(request, Part(label), s), s.max_tokens
        calls += n
        tokens_in += n * estimate_prompt_tokens(messages)
        tokens_out += n * cap
    return calls, tokens_in, tokens_out


def _strategies(name: str, params: Mapping[str, Any]) -> list[str] | None:
    if name.startswith("01_"):
        return ["sequential", "parallel"]
    if name.startswith("05_"):
        value = params.get("strategies") or []
        return [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if name.startswith(("02_", "03_")):
        return []  # 02 skips a real endpoint; 03 reads what the others wrote
    return None  # unknown: cannot count


def report_plan(
    parameters: Mapping[str, Mapping[str, Any]],
    notebooks_dir: Path,
    action: str,
    environ: Mapping[str, str] | None = None,
) -> Plan | None:
    """The :class:`Plan` of a report run against a remote endpoint, or None when every notebook that would
    run uses the simulator or a local endpoint (nothing to consent to). ``parameters`` is what
    :func:`voorbeelden.report.runner.plan_parameters` gives each notebook (its defaults fill the rest)."""
    from voorbeelden.config import default_model
    from voorbeelden.experiments.params import declared_defaults

    env = os.environ if environ is None else environ
    calls = tokens_in = tokens_out = 0
    details: list[str] = []
    remote = None
    for name, given in parameters.items():
        declared = quietly(declared_defaults, notebooks_dir / name)
        if "backend" not in declared:
            continue  # e.g. 04: always the embedded simulator
        params = {**declared, **given}
        spec = resolve_backend(str(params.get("backend") or "auto"), dict(env))
        if spec.kind != "real" or not is_remote(spec.base_url):
            continue
        remote = remote or spec
        strategies = _strategies(name, params)
        if strategies is None:
            details.append(f"{name}: uses this endpoint; its number of calls is not known in advance")
            continue
        if not strategies:
            continue
        gens = int(params.get("warmup") or 0) + int(params.get("trials") or 1) * int(
            params.get("n_begrippen") or 1
        )
        nb_calls = 0
        for strategy in strategies:
            c, ti, to = per_generation(strategy)
            nb_calls += gens * c
            tokens_in += gens * ti
            tokens_out += gens * to
        calls += nb_calls
        details.append(
            f"{name}: {gens} generations per strategy x {len(strategies)} strategies = about {nb_calls:,} calls"
        )
    if remote is None:
        return None
    details.append("retries, hedged backups and combined's fallback calls come on top")
    return Plan(
        action=action,
        host=remote.host or "?",
        chosen_by=remote.source,
        calls=calls,
        tokens_in=tokens_in,
        tokens_out_max=tokens_out,
        model=env.get("OPENAI_MODEL") or default_model(),
        details=tuple(details),
    )


def quietly(fn: Any, *args: Any) -> Any:
    """Call ``fn`` with papermill's parse warnings silenced: they belong to the run itself, not to this
    look-ahead (the report prints them when it runs the notebook)."""
    import logging

    logger = logging.getLogger("papermill")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return fn(*args)
    finally:
        logger.setLevel(level)
