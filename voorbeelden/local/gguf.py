"""Read the few GGUF header fields the launcher needs (the model's trained context), without llama.cpp.

Why a reader of our own: the context length must be checked *before* a server starts (llama.cpp accepted
``--n-ctx 99999999999``, wrapped it and allocated 23 GB), the check must work for both engines, and neither
llama-cpp-python nor the ``gguf`` package is needed to parse a header: GGUF is a short binary header of typed
key/value pairs (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md). Reading stops as soon as the
wanted keys are found, so the tokenizer's large arrays later in the header are never decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"GGUF"
# value type -> struct format of a scalar (8 = string and 9 = array are handled apart)
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
MAX_KEYS = 100_000  # a real header has a few dozen; more means a corrupt or hostile file


class GGUFError(ValueError):
    """The file is not a GGUF model, or its header is cut short or malformed."""


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("the GGUF header ends early")
    return data


def _unpack(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]


def _string(f: BinaryIO) -> str:
    n = _unpack(f, "<Q")
    if n > 1 << 24:
        raise GGUFError(f"a GGUF string of {n} bytes")
    return _read(f, n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, vtype: int) -> Any:
    """A scalar or a string; an array is skipped (None): the tokenizer's are large and never needed here."""
    if vtype in _SCALARS:
        return _unpack(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(f)
    if vtype == _ARRAY:
        itype, count = _unpack(f, "<I"), _unpack(f, "<Q")
        if itype in _SCALARS:
            f.seek(struct.calcsize(_SCALARS[itype]) * count, 1)
        elif itype == _STRING:
            for _ in range(count):
                f.seek(_unpack(f, "<Q"), 1)
        else:
            for _ in range(count):
                _value(f, itype)
        return None
    raise GGUFError(f"unknown GGUF value type {vtype}")


def read_metadata(path: str | Path, until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """The header's scalar and string key/value pairs (arrays are left out); reading stops early once
    ``until(pairs so far)`` is true."""
    out: dict[str, Any] = {}
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise GGUFError(f"{path} is not a GGUF model file (it does not start with GGUF)")
        version = _unpack(f, "<I")
        if version < 2:
            raise GGUFError(f"{path}: GGUF version {version} is not supported")
        _unpack(f, "<Q")  # tensor count
        n_kv = _unpack(f, "<Q")
        if n_kv > MAX_KEYS:
            raise GGUFError(f"{path}: {n_kv} header keys")
        for _ in range(n_kv):
            key = _string(f)
            value = _value(f, _unpack(f, "<I"))
            if value is not None:
                out[key] = value
                if until is not None and until(out):
                    break
    return out


def trained_context(path: str | Path) -> int:
    """``<architecture>.context_length``: the longest context the model was trained for.

    Raises :class:`GGUFError` when the header does not say (then no bound can be checked honestly)."""

    def found(meta: dict[str, Any]) -> bool:
        return f"{meta.get('general.architecture')}.context_length" in meta

    meta = read_metadata(path, until=found)
    arch = meta.get("general.architecture")
    key = f"{arch}.context_length"
    value = meta.get(key)
    if not arch or not isinstance(value, int) or value <= 0:
        raise GGUFError(f"{path}: the GGUF header has no general.architecture with a {key}")
    return value
