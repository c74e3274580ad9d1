"""The exception a command raises for input it cannot work with.

Library and stage code raise :class:`UsageError` (or a more specific exception) with a message
that names the file, row or key; only the command line (`use_repro.cli.main`) turns it into an
exit status (2) and a one-line message, so the same code called from Python raises instead of
ending the interpreter.
"""
from __future__ import annotations


class UsageError(ValueError):
    """Arguments or inputs a command cannot work with (a missing option, an unknown name, an
    empty folder); the message says which."""
