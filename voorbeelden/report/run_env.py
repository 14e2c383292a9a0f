"""What a report run gives its notebook kernels besides parameters: a local model server and request overrides.

Two optional top-level blocks of a report's parameter file:

* ``local_llm:`` (or any notebook with ``backend: local``): the runner starts the real local server once
  (:func:`voorbeelden.local.running_local_llm`, fields of :class:`~voorbeelden.local.LocalLLMConfig`:
  ``engine`` (``llama-cpp-python``, the default, or ``llama-server``), ``slots`` (llama-server), ``threads``,
  ``interrupt_requests``, ``n_ctx``, ``model_path``) and announces it to the kernels in
  ``VOORBEELDEN_LOCAL_LLM_URL``/``_INFO``, so every notebook measures the same warm server and the report
  states what it was; ``OPENAI_MODEL`` is set to the served model's name. Notebooks that compare engines
  (08, and 06/07 with their own engine parameters) start their servers themselves, one at a time.
* ``generation:``: run-wide request overrides read by :mod:`voorbeelden.config` (``temperature``, ``seed``,
  ``max_tokens`` cap, ``call_timeout_s``), for notebooks that do not take them as parameters. On a real
  model, paired trials need temperature 0 and a seed to compare like with like.

The environment is restored and the server stopped when the run ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voorbeelden.backend import LOCAL_INFO_ENV, LOCAL_URL_ENV
from voorbeelden.config import CALL_TIMEOUT_ENV, MAX_TOKENS_ENV, SEED_ENV, TEMPERATURE_ENV


class GenerationOverrides(BaseModel):
    """The ``generation:`` block. Every field is optional; an unset one changes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    seed: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    call_timeout_s: float | None = Field(default=None, gt=0.0)

    def environ(self) -> dict[str, str]:
        pairs = {
            TEMPERATURE_ENV: self.temperature,
            SEED_ENV: self.seed,
            MAX_TOKENS_ENV: self.max_tokens,
            CALL_TIMEOUT_ENV: self.call_timeout_s,
        }
        return {k: str(v) for k, v in pairs.items() if v is not None}


def check_blocks(config: Mapping[str, Any]) -> list[str]:
    """Problems with the ``generation:`` and ``local_llm:`` blocks, as ``block: key: message`` lines."""
    from voorbeelden.local import LocalLLMConfig

    problems: list[str] = []
    try:
        GenerationOverrides.model_validate(config.get("generation") or {})
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            problems.append(f"generation: {key}: {err['msg']} (got {err.get('input')!r})")
    block = config.get("local_llm")
    if block is not None:
        if not isinstance(block, Mapping):
            problems.append("local_llm: must be a mapping of LocalLLMConfig fields")
        else:
            try:
                LocalLLMConfig(**dict(block))
            except (TypeError, ValueError) as exc:
                problems.append(f"local_llm: {exc}")
    return problems


def wants_local(config: Mapping[str, Any], plan: Mapping[str, Mapping[str, Any]]) -> bool:
    return config.get("local_llm") is not None or any(p.get("backend") == "local" for p in plan.values())


@contextlib.contextmanager
def _environ(changes: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def report_environment(
    config: Mapping[str, Any], plan: Mapping[str, Mapping[str, Any]]
) -> Iterator[dict[str, Any] | None]:
    """Start what the run asks for and set the kernels' environment; yields the local server's description
    (None when the run has no local server)."""
    overrides = GenerationOverrides.model_validate(config.get("generation") or {}).environ()
    if not wants_local(config, plan):
        with _environ(overrides):
            yield None
        return
    from voorbeelden.local import LocalLLMConfig, running_local_llm

    with running_local_llm(LocalLLMConfig(**dict(config.get("local_llm") or {}))) as llm:
        info = llm.describe()
        env = {
            **overrides,
            LOCAL_URL_ENV: llm.base_url,
            LOCAL_INFO_ENV: json.dumps(info),
            "OPENAI_MODEL": llm.model,
        }
        with _environ(env):
            yield info
