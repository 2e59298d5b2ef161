"""Typed errors. Bad input raises :class:`InvalidMessage`; the dead-letter policy routes it."""

from __future__ import annotations


class InvalidMessage(Exception):
    """An input message that cannot be processed. ``reason`` is a short stable code used as a metric
    label and in the dead-letter record; ``detail`` is the human explanation."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StateRefused(Exception):
    """A checkpoint in Redis that must not be loaded (bad HMAC, foreign format, wrong partition)."""


class Fenced(Exception):
    """A newer owner of the partition exists: this instance must not write its state."""


class FatalError(Exception):
    """An infrastructure error we cannot retry (e.g. a failed delivery): stop without checkpointing."""
