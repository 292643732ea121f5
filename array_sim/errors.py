"""Errors of the engine's management operations.

Each message is written so that the Group Manager CLI can print it verbatim
after ``% Error - ``. Messages about missing objects keep the words
``does not exist`` that clients (Cinder, Proxmox) look for.
"""

from __future__ import annotations

__all__ = ["EngineError", "NotFound", "AlreadyExists", "InvalidRequest", "NoSpace", "GroupLocked"]


class EngineError(Exception):
    """A management request that was refused; nothing was changed."""


class NotFound(EngineError):
    """The named group object does not exist."""


class AlreadyExists(EngineError):
    """An object of that name already exists."""


class InvalidRequest(EngineError):
    """The request is impossible in the object's current state."""


class NoSpace(EngineError):
    """The pool has not enough free space for the request."""


class GroupLocked(EngineError):
    """Another process has the group open."""
