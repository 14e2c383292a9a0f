"""CLI subcommands; each module exposes ``register(subparsers)``. See ``voorbeelden.cli``."""
