"""SC metadata: a persistent backend (SQLite by default) and the in-memory view with epochs that Watch
streams read.

The backend stores opaque blobs per (label, name); the view keeps decoded objects. Every change bumps
the label's epoch and is handed to every open watcher of that label as a change (UPDATE or DELETE), so a
Watch stream sends one full sync and then only what changed.
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fluvial.errors import InvalidConfig

PRODUCER_ID_COUNTER = "producer_id"


class MetadataBackend(Protocol):
    def load(self) -> dict[str, dict[str, bytes]]: ...
    def put(self, label: str, name: str, blob: bytes) -> None: ...
    def delete(self, label: str, name: str) -> None: ...
    def increment(self, counter: str) -> int: ...
    def close(self) -> None: ...


class SqliteBackend:
    """`<data-dir>/metadata.db`: one row per object, written in a transaction per change (WAL,
    synchronous=FULL: a change the SC acknowledged survives a crash)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS objects (label TEXT NOT NULL, name TEXT NOT NULL, "
                         "blob BLOB NOT NULL, PRIMARY KEY (label, name))")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")

    def load(self) -> dict[str, dict[str, bytes]]:
        out: dict[str, dict[str, bytes]] = {}
        with self._lock:
            for label, name, blob in self._db.execute("SELECT label, name, blob FROM objects"):
                out.setdefault(label, {})[name] = bytes(blob)
        return out

    def put(self, label: str, name: str, blob: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO objects (label, name, blob) VALUES (?, ?, ?)",
                             (label, name, blob))

    def delete(self, label: str, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM objects WHERE label = ? AND name = ?", (label, name))

    def increment(self, counter: str) -> int:
        """The next value of a persistent counter (0 first), in one durable transaction: a value handed
        out is never handed out again, across restarts and crashes."""
        with self._lock:
            rows = self._db.execute("INSERT INTO counters (name, value) VALUES (?, 0) ON CONFLICT (name) "
                                    "DO UPDATE SET value = value + 1 RETURNING value", (counter,)).fetchall()
        return int(rows[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_backend(url: str | None, data_dir: str | Path) -> MetadataBackend:
    """`None`/`sqlite` → `<data-dir>/metadata.db`; other schemes are not built yet."""
    if url in (None, "", "sqlite") or (url or "").startswith("sqlite://"):
        path = Path(data_dir) / "metadata.db" if url in (None, "", "sqlite") else Path(url[len("sqlite://"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteBackend(path)
    raise InvalidConfig(f"unsupported metadata backend {url!r} (only the embedded sqlite store is available)")


class Change(enum.IntEnum):
    UPDATE = 0
    DELETE = 1


@dataclass(frozen=True)
class ObjectCodec:
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


class Watcher:
    """One open Watch stream: the changes not yet sent, coalesced per object."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[Change, Any]] = {}
        self._event = asyncio.Event()

    def push(self, change: Change, name: str, obj: Any) -> None:
        self._pending[name] = (change, obj)
        self._event.set()

    async def next_changes(self) -> list[tuple[Change, Any]]:
        """Wait for changes, then take all of them (the latest state of each object)."""
        await self._event.wait()
        self._event.clear()
        out = list(self._pending.values())
        self._pending.clear()
        return out


class LabelStore:
    """The live objects of one label (Topic, Partition, SPU)."""

    def __init__(self, label: str, backend: MetadataBackend, codec: ObjectCodec) -> None:
        self.label = label
        self._backend = backend
        self._codec = codec
        self.objects: dict[str, Any] = {}
        self.epoch = 0
        self._watchers: set[Watcher] = set()
        self.changed = asyncio.Event()     # any change: controllers waiting for a condition re-check

    def load(self, blobs: dict[str, bytes]) -> None:
        for name, blob in blobs.items():
            self.objects[name] = self._codec.decode(blob)
        self.epoch = 1

    def get(self, name: str) -> Any | None:
        return self.objects.get(name)

    def values(self) -> Iterable[Any]:
        return self.objects.values()

    def put(self, name: str, obj: Any, *, persist: bool = True) -> None:
        """Store (and persist) an object; every watcher hears of it."""
        if persist:
            self._backend.put(self.label, name, self._codec.encode(obj))
        self.objects[name] = obj
        self._notify(Change.UPDATE, name, obj)

    def delete(self, name: str) -> Any | None:
        obj = self.objects.pop(name, None)
        if obj is None:
            return None
        self._backend.delete(self.label, name)
        self._notify(Change.DELETE, name, obj)
        return obj

    def _notify(self, change: Change, name: str, obj: Any) -> None:
        self.epoch += 1
        for w in self._watchers:
            w.push(change, name, obj)
        self.changed.set()
        self.changed = asyncio.Event()

    def watch(self) -> tuple[Watcher, int, list[Any]]:
        """Open a watcher: (watcher, epoch, full snapshot); later changes arrive through the watcher."""
        w = Watcher()
        self._watchers.add(w)
        return w, self.epoch, list(self.objects.values())

    def unwatch(self, w: Watcher) -> None:
        self._watchers.discard(w)

    @property
    def watcher_count(self) -> int:
        """Open watchers (one per live Watch stream of this label): the `fluvial_sc_watchers` gauge."""
        return len(self._watchers)
