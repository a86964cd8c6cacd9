"""Neuroanatomy of a model through layer paths: ablation, circuits, logit lens, hidden states, map."""

from rys.errors import RysError


class NeuroError(RysError):
    """An analysis that cannot run as asked (bad options, a prompt without an answer token, ...)."""
