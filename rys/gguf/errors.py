"""Errors of GGUF surgery: each says what is wrong and what to do."""

from __future__ import annotations

from rys.errors import RysError


class SurgeryError(RysError):
    pass


class CorruptGGUF(SurgeryError):
    """The input is not a GGUF llama.cpp could load (bad magic, truncated, inconsistent)."""


class UnsupportedPath(SurgeryError):
    """No metadata can make this path right for this architecture (forcing records the reason)."""


class NoSpace(SurgeryError):
    """The destination filesystem (or the layer store's size limit) has no room for the output."""
