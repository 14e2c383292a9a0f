"""Keyed random draws: the same (seed, key, part, attempt) always gives the same numbers.

Pairing is the point. A sequential and a parallel trial that send the same ``x-sim-key`` must see the same
latency and the same fault for each part, whatever order or concurrency the calls arrive in, so a paired
comparison measures the strategy and not the dice. Python's ``hash()`` is salted per process, so the key
is hashed with BLAKE2b into a numpy ``Generator`` seed instead. Each purpose (latency, fault, content) gets
its own stream, so turning faults on does not shift the latencies.
"""

from __future__ import annotations

import hashlib

import numpy as np


def keyed_rng(seed: int, key: str, part: str, attempt: int, stream: str) -> np.random.Generator:
    material = f"{seed}\x1f{key}\x1f{part}\x1f{attempt}\x1f{stream}".encode()
    digest = hashlib.blake2b(material, digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))
