"""Key-shaped strings for the tests that check an API key never reaches output, logs or reports.

Built at run time with a fresh random part: the repository then holds nothing a secret scanner takes for a
key, and a hit in an output can only be this run's leak.
"""

from __future__ import annotations

import secrets


def fake_key(label: str) -> str:
    """``sk-test-<label>-<24 random hex>``: the shape the redaction step must recognise."""
    return "-".join(("sk", "test", label, secrets.token_hex(12)))
