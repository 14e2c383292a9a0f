"""What a handle on a server this package started derives from its base URL.

Why one place: the simulator's handle and the local LLM server's handle are used interchangeably by the
benchmarks (``handle.root_url`` for admin or probe routes, ``handle.port`` for reports), so both must read
their one ``base_url`` (``http://host:port/v1``) the same way. Imports nothing: the simulator subprocess uses it.
"""

from __future__ import annotations


class ServerURL:
    """Mixin for a handle with a ``base_url`` ending in ``/v1``: the server's root URL and its port."""

    base_url: str

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])
