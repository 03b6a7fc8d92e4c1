"""The one exception the CLI turns into a one-line message (kept apart from ``main`` so that
``python -m kintsugi.cli.main`` and the console script share the same class)."""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""
