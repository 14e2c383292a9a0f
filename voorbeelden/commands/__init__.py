"""CLI subcommands; each module declares ``HELP``, ``add_arguments`` and ``run``. See ``voorbeelden.cli``."""
