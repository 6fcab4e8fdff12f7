"""The SPU's copy of the SC's SmartModule objects: the SC pushes every Create/Delete; a name the SPU does
not hold yet (a consume started right after Create returned) is asked of the SC once before 6001."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# A fetcher asks the SC for one module by name: its stored payload (gzip or raw wasm), or None.
Fetcher = Callable[[str], Awaitable[bytes | None]]


class SmartModuleStore:
    def __init__(self, fetch: Fetcher | None = None) -> None:
        self._payloads: dict[str, bytes] = {}
        self.fetch = fetch

    def put(self, name: str, payload: bytes) -> None:
        self._payloads[name] = payload

    def remove(self, name: str) -> None:
        self._payloads.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._payloads)

    async def lookup(self, name: str) -> bytes | None:
        """The payload (gzip or raw wasm, as stored) of the module called `name`, or None."""
        payload = self._payloads.get(name)
        if payload is None and self.fetch is not None:
            payload = await self.fetch(name)
            if payload is not None:
                self._payloads[name] = payload
        return payload
