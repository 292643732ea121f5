"""What a logged-in account may do in its CLI sessions: the ``Session`` every SSH channel runs.

The account types are the array's (README "The Group Manager over SSH"): ``group-admin`` runs every
command, ``read-only`` shows everything. ``server`` makes the session when a channel opens, with the
account's type as it is then; ``channel`` runs it on the engine owner.

Rules of this module:

1. A read-only account's ``cli-settings`` commands run as any account's: they change only its own
   settings.
2. Its commands that act outside the catalog (``simulate``; ``member`` but ``show``) are refused
   before they run, whether typed whole or in a mode (``member select M``).
3. Any other command of it runs, and one that changed the catalog is rolled back and refused:
   ``Session`` runs each command in one catalog transaction, and the refusal is raised inside it.
   So it may show everything and change nothing else.
"""

from __future__ import annotations

from typing import Any

from ..cli.session import Session
from ..cli.words import CliError, match_keyword

__all__ = ["AccountSession"]


class AccountSession(Session):
    """A CLI session of a logged-in account. A read-only account may show everything and change only
    its own ``cli-settings``: a command of it that changes the catalog is rolled back and refused,
    and the commands that act outside the catalog (``simulate``; members but ``show``) are refused
    before they run."""

    def __init__(self, group: Any, account: str, interactive: bool, live: Any, read_only: bool) -> None:
        super().__init__(group, account, interactive, live)
        self.read_only = read_only
        self._settings_only = False

    def execute_words(self, tokens: list[str]) -> list[str]:
        if self.read_only and tokens:
            words = (self.modes[-1][0] if self.modes else []) + tokens
            try:
                noun = match_keyword(words[0], ["cli-settings", "simulate", "member", "show"])
            except CliError:
                noun = None
            self._settings_only = noun == "cli-settings"
            showing = match_keyword(words[-1], ["show"]) is not None if len(words) > 1 else False
            if noun == "simulate" or (noun == "member" and not showing):
                return [self._refusal()]
        return super().execute_words(tokens)

    def _run(self, command: Any) -> list[str]:
        if not self.read_only or self._settings_only:
            return super()._run(command)

        def guarded() -> list[str]:
            db = self.group.catalog.db
            before = db.total_changes
            lines = command()
            if db.total_changes != before:
                raise CliError(self._refusal()[len("% Error - ") :])
            return lines

        return super()._run(guarded)

    def _refusal(self) -> str:
        return f"% Error - Account {self.account} is read-only: it may show the group, not change it."
