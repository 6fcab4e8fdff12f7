"""The SPU's copy of the SC's SmartModule objects: the SC pushes every Create/Delete (internal stream
3003); a name the SPU does not hold yet (a consume started right after Create returned, before the push
arrived) is asked of the SC once (3004) before the consumer gets 6001."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fluvial.protocol import internal as i
from fluvial.protocol import smartmodule as sm

# A fetcher asks the SC for one module by name: (store key, spec), or None when the SC has none.
Fetcher = Callable[[str], Awaitable[i.SmartModuleChange | None]]


class SmartModuleStore:
    def __init__(self, fetch: Fetcher | None = None) -> None:
        self._specs: dict[str, sm.SmartModuleSpec] = {}
        self.fetch = fetch

    def apply(self, update: i.SmartModulesUpdate) -> None:
        """One message of the SC's stream: the full set (replaces everything) or changes."""
        if update.full:
            self._specs.clear()
        for change in update.changes:
            if change.spec is None:
                self._specs.pop(change.name, None)
            else:
                self._specs[change.name] = change.spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    async def lookup(self, name: str) -> bytes | None:
        """The payload (gzip or raw wasm, as stored) of the module `name` (exact or `group/name@version`)."""
        found = sm.find(name, self._specs)
        if found is None and self.fetch is not None:
            change = await self.fetch(name)
            if change is not None and change.spec is not None:
                self._specs[change.name] = change.spec
                found = change.name, change.spec
        return None if found is None else found[1].wasm.payload
