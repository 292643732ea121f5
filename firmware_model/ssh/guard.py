"""Refused logins, and how long the next refusal waits (sans-IO: the caller passes the time).

Rules of this module:

1. Refusals are counted per (account, address) and per address. The n-th refusal in a row of a
   pair is answered after ``first * 2 ** (n - 1)`` seconds, at most ``most``; an address that is
   refused for many accounts counts as n = its refusals // ``spread`` if that is larger, so trying
   one password on many account names slows down too. An account is never slowed for everyone: a
   stranger's failures from elsewhere do not delay its owner (no lock-out from outside).
2. A login that succeeds clears its pair (not its address). Counts older than ``forget`` seconds
   since their last refusal are forgotten, and at most ``capacity`` entries are kept (the oldest go
   first), so a flood of addresses cannot grow the guard without bound.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["LoginGuard"]


class LoginGuard:
    def __init__(
        self, first: float = 0.5, most: float = 8.0, forget: float = 900.0, spread: int = 3, capacity: int = 10_000
    ) -> None:
        self.first, self.most, self.forget, self.spread, self.capacity = first, most, forget, spread, capacity
        #: key -> (refusals, time of the last one); a key is (account, address) or address.
        self._counts: OrderedDict[tuple[str, str] | str, tuple[int, float]] = OrderedDict()

    def refused(self, account: str, address: str, now: float) -> float:
        """Count a refusal; returns how long to wait before saying so (rule 1)."""
        pair = self._bump((account, address), now)
        by_address = self._bump(address, now)
        self._prune(now)
        return self._delay(max(pair, by_address // self.spread))

    def accepted(self, account: str, address: str) -> None:
        self._counts.pop((account, address), None)

    def refusals(self, account: str, address: str, now: float) -> int:
        """The refusals in a row of the pair that still count."""
        count, last = self._counts.get((account, address), (0, now))
        return count if now - last < self.forget else 0

    def _delay(self, n: int) -> float:
        return 0.0 if n <= 0 else min(self.most, self.first * 2 ** min(n - 1, 30))

    def _bump(self, key: tuple[str, str] | str, now: float) -> int:
        count, last = self._counts.pop(key, (0, now))
        if now - last >= self.forget:
            count = 0
        self._counts[key] = (count + 1, now)
        return count + 1

    def _prune(self, now: float) -> None:
        while self._counts:
            key, (_, last) = next(iter(self._counts.items()))
            if now - last < self.forget and len(self._counts) <= self.capacity:
                break
            del self._counts[key]
