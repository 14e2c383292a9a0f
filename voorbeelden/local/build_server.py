"""Build llama.cpp's own ``llama-server`` from the source the pinned llama-cpp-python sdist vendors.

``make install-local`` runs ``python -m voorbeelden.local.build_server``. Why from the sdist: it is the exact
llama.cpp that llama-cpp-python 0.3.36 was built from (one model format, one tokenizer, the same GGUF), it
is already fetched by pip for the ``local`` extra, and the build needs no network after that (no curl, no
OpenSSL, no web UI). Only the ``llama-server`` target is built.

The binary is cached per llama-cpp-python version under the user's cache folder
(``$XDG_CACHE_HOME/voorbeelden/llama-server/<version>/``), so a second install, or a fresh clone on the same
machine, copies it in an instant; the copy lands beside the venv's python (``.venv/bin/llama-server``),
where :func:`voorbeelden.local.engines.find_llama_server` looks for it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
BINARY = "llama-server"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)


def cache_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Where the built binary is kept between installs (one folder per pinned version)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "voorbeelden" / "llama-server" / version


def _log(msg: str) -> None:
    print(f"build llama-server: {msg}", file=sys.stderr, flush=True)


def _fetch_sdist(into: Path, version: str) -> Path:
    """The sdist from pip (its HTTP cache answers when the ``local`` extra was installed already)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*cmd, f"llama-cpp-python=={version}", "-d", str(into)], check=True)
    found = sorted(into.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        raise SystemExit(f"build llama-server: pip did not fetch the llama-cpp-python {version} sdist")
    return found[0]


def _extract_vendor(sdist: Path, into: Path) -> Path:
    """Only ``vendor/llama.cpp`` is needed; the filter refuses links and paths that leave ``into``."""
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
        tar.extractall(into, members=members, filter="data")
    roots = list(into.glob("*/vendor/llama.cpp"))
    if not roots:
        raise SystemExit(f"build llama-server: {sdist.name} holds no vendor/llama.cpp")
    return roots[0]


def build(version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int | None = None) -> Path:
    """Build into the cache (when absent) and return the cached binary."""
    target = cache_dir(version) / BINARY
    if target.is_file() and os.access(target, os.X_OK):
        return target
    if not shutil.which("cmake"):
        raise SystemExit("build llama-server: cmake is needed (apt-get install cmake, or pip install cmake)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as tmp:
        work = Path(tmp)
        src = _extract_vendor(_fetch_sdist(work, version), work / "src")
        out = work / "build"
        _log(f"configuring {src} (only the {BINARY} target; a few minutes on 2 cores)")
        subprocess.run(
            ["cmake", "-S", str(src), "-B", str(out), *CMAKE_FLAGS], check=True, stdout=subprocess.DEVNULL
        )
        n = str(jobs or os.cpu_count() or 2)
        subprocess.run(
            ["cmake", "--build", str(out), "--target", BINARY, "-j", n], check=True, stdout=subprocess.DEVNULL
        )
        built = out / "bin" / BINARY
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.replace(target)  # atomic: a killed build never leaves a half-written binary in the cache
    _log(f"built in {time.monotonic() - started:.0f} s, cached at {target}")
    return target


def install(bin_dir: Path, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Build (or take from the cache) and copy beside ``bin_dir``'s python."""
    cached = build(version)
    dest = bin_dir / BINARY
    shutil.copy2(cached, dest)
    _log(f"installed {dest}")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    parser.add_argument("--version", default=LLAMA_CPP_PYTHON_VERSION)
    args = parser.parse_args(argv)
    install(args.bin_dir, args.version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
