"""The `norrvakt` command line: one module per command group, registered in :mod:`main`."""

from norrvakt.cli.main import main

__all__ = ["main"]
