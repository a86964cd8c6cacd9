"""One error family for everything a user can get wrong.

Every RysError carries a one-line message saying what is wrong and a hint saying what to do; the CLI
prints both and exits with status 2 instead of a traceback.
"""

from __future__ import annotations


class RysError(Exception):
    """A problem the user can fix. `hint` says how."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class ModelNotFound(RysError):
    pass


class NotGGUF(RysError):
    pass


class ServerNotFound(RysError):
    pass


class BuildFailed(RysError):
    pass
