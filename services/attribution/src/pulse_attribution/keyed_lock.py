"""Mutual exclusion per key, taken for many keys at once (credit versioning per conversion).

A credit version is ``latest + 1``, read and then written: two computations of one
conversion must not overlap, or both would write the same version with different touches
(readers would take the union of the two as "the latest version"). Computations of
different conversions may overlap freely, so the attribution service holds one key per
conversion instead of one lock for everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection


class KeyedLock:
    """Keys held by at most one holder at a time.

    :meth:`hold_free` never waits while its caller holds keys: it takes every free key
    of the request at once (possibly a subset) and the caller comes back for the rest
    after releasing them. So no two holders can wait for each other (no deadlock whatever
    the order of keys), and a batch is not held up by one busy key: its other keys are
    processed meanwhile. A caller must not ask again while it holds keys.

    Only keys being held are stored, and only tasks waiting are listed: nothing is kept
    for a key once it is released, however many keys have been seen.
    """

    def __init__(self) -> None:
        self._held: set[str] = set()
        #: Waiting tasks' futures and the keys each wants (woken when one of them frees).
        self._waiters: dict[asyncio.Future[None], frozenset[str]] = {}

    @property
    def held(self) -> frozenset[str]:
        """The keys held now."""
        return frozenset(self._held)

    @property
    def waiting(self) -> int:
        """How many callers wait for keys."""
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def hold_free(self, keys: Collection[str]) -> AsyncIterator[frozenset[str]]:
        """Waits until one of ``keys`` is free, holds every free one of them and yields
        those (the others are the caller's to ask for again); releases them on exit."""
        taken = await self._take_free(frozenset(keys))
        try:
            yield taken
        finally:
            # Synchronous release: a cancellation cannot leave keys held.
            self._release(taken)

    async def _take_free(self, wanted: frozenset[str]) -> frozenset[str]:
        if not wanted:
            return wanted
        while True:
            free = wanted - self._held
            if free:
                self._held |= free
                return free
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters[waiter] = wanted
            try:
                await waiter
            finally:
                del self._waiters[waiter]

    def _release(self, keys: frozenset[str]) -> None:
        if not keys:
            return
        self._held -= keys
        for waiter, wanted in self._waiters.items():
            if not waiter.done() and not wanted.isdisjoint(keys):
                waiter.set_result(None)
