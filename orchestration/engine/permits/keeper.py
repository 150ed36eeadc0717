"""A live step keeps its permits: a daemon thread in each worker process renews the leases its
steps hold every third of the lease time, so only a dead process's leases run out."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: ``renew(leases_key, holders)``: push those leases a lease time from now.
Renew = Callable[[str, list[str]], int]


class LeaseKeeper:
    """The leases this process holds, renewed in the background while they are held."""

    def __init__(self, renew: Renew, every: float) -> None:
        self._renew = renew
        self._every = every
        self._held: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._pid = 0
        self._wake = threading.Event()

    def hold(self, leases_key: str, holder: str) -> None:
        with self._lock:
            self._held[(leases_key, holder)] = self._held.get((leases_key, holder), 0) + 1
            if self._pid != os.getpid():  # first lease of this process (a forked pool child too)
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="campaignflow-leases", daemon=True).start()

    def drop(self, leases_key: str, holder: str) -> None:
        with self._lock:
            left = self._held.get((leases_key, holder), 0) - 1
            if left > 0:
                self._held[(leases_key, holder)] = left
            else:
                self._held.pop((leases_key, holder), None)

    def held(self) -> dict[str, list[str]]:
        with self._lock:
            by_key: dict[str, list[str]] = {}
            for key, holder in self._held:
                by_key.setdefault(key, []).append(holder)
            return by_key

    def _loop(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._wake.wait(self._every)
            for key, holders in self.held().items():
                try:
                    self._renew(key, holders)
                except Exception as exc:  # Redis away: the next round tries again
                    log.warning("could not renew %d limit lease(s): %s", len(holders), exc)
