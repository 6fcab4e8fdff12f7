"""SC metadata: a persistent backend (SQLite by default) and the in-memory view with epochs that Watch
streams read.

The backend stores opaque blobs per (label, name); the view keeps decoded objects. Every change bumps
the label's epoch and is handed to every open watcher of that label as a change (UPDATE or DELETE), so a
Watch stream sends one full sync and then only what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fluvial.errors import InvalidConfig, MetadataUnavailable

logger = logging.getLogger("fluvial.sc.store")

PRODUCER_ID_COUNTER = "producer_id"


class MetadataBackend(Protocol):
    def load(self) -> dict[str, dict[str, bytes]]: ...
    def put(self, label: str, name: str, blob: bytes) -> None: ...
    def delete(self, label: str, name: str) -> None: ...
    def increment(self, counter: str) -> int: ...
    def close(self) -> None: ...


def _unavailable(path: str, e: Exception) -> MetadataUnavailable:
    return MetadataUnavailable(f"the SC cannot write its metadata ({path}): {e}; it is kept in memory and "
                               f"written when the store accepts writes again")


class SqliteBackend:
    """`<data-dir>/metadata.db`: one row per object, written in a transaction per change (WAL,
    synchronous=FULL: a change the SC acknowledged survives a crash). A failed write (disk full, I/O error)
    raises `MetadataUnavailable`."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS objects (label TEXT NOT NULL, name TEXT NOT NULL, "
                         "blob BLOB NOT NULL, PRIMARY KEY (label, name))")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self.behind = WriteBehind(self)      # shared by every label's store over this backend
        self.health = self.behind.health

    def load(self) -> dict[str, dict[str, bytes]]:
        out: dict[str, dict[str, bytes]] = {}
        with self._lock:
            for label, name, blob in self._db.execute("SELECT label, name, blob FROM objects"):
                out.setdefault(label, {})[name] = bytes(blob)
        return out

    def put(self, label: str, name: str, blob: bytes) -> None:
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO objects (label, name, blob) VALUES (?, ?, ?)",
                                 (label, name, blob))
        except (sqlite3.Error, OSError) as e:
            raise _unavailable(self.path, e) from e

    def delete(self, label: str, name: str) -> None:
        try:
            with self._lock:
                self._db.execute("DELETE FROM objects WHERE label = ? AND name = ?", (label, name))
        except (sqlite3.Error, OSError) as e:
            raise _unavailable(self.path, e) from e

    def write_many(self, ops: list[tuple[str, str, bytes | None]]) -> None:
        """Puts (blob) and deletes (None) in one transaction: one fsync for all of them."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for label, name, blob in ops:
                        if blob is None:
                            self._db.execute("DELETE FROM objects WHERE label = ? AND name = ?", (label, name))
                        else:
                            self._db.execute("INSERT OR REPLACE INTO objects (label, name, blob) VALUES (?, ?, ?)",
                                             (label, name, blob))
                    self._db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OSError) as e:
            raise _unavailable(self.path, e) from e

    def increment(self, counter: str) -> int:
        """The next value of a persistent counter (0 first), in one durable transaction: a value handed
        out is never handed out again, across restarts and crashes."""
        try:
            with self._lock:
                rows = self._db.execute("INSERT INTO counters (name, value) VALUES (?, 0) ON CONFLICT (name) "
                                        "DO UPDATE SET value = value + 1 RETURNING value", (counter,)).fetchall()
        except (sqlite3.Error, OSError) as e:
            raise _unavailable(self.path, e) from e
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


class WriteBehind:
    """The SC's own bookkeeping (liveness, statuses, elections, placement) is written behind: memory first,
    then every write of one event-loop turn in one transaction (one fsync, not one per object). A write
    the store refuses stays pending and is retried (`flush`) until it is taken; the latest state of each
    object wins."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.health = WriteHealth()
        self.pending: dict[tuple[str, str], bytes | None] = {}
        self._scheduled = False

    def add(self, label: str, name: str, blob: bytes | None) -> None:
        self.pending.pop((label, name), None)          # keep the order of the latest writes
        self.pending[(label, name)] = blob
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()                                # no event loop (tools, tests): at once
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> bool:
        """Write what is pending; True when nothing is left."""
        self._scheduled = False
        if not self.pending:
            return True
        ops = [(label, name, blob) for (label, name), blob in self.pending.items()]
        try:
            if hasattr(self.backend, "write_many"):
                self.backend.write_many(ops)
            else:
                for label, name, blob in ops:
                    (self.backend.delete(label, name) if blob is None else self.backend.put(label, name, blob))
        except MetadataUnavailable as e:
            self.health.failed(e)
            return False
        for label, name, blob in ops:                  # unless written again meanwhile
            if (label, name) in self.pending and self.pending[(label, name)] is blob:
                del self.pending[(label, name)]
        if not self.pending:
            self.health.recovered()
        return not self.pending


class WriteHealth:
    """Whether the metadata store takes writes: logged once when it stops and once when it is back."""

    def __init__(self) -> None:
        self.error: str | None = None

    def failed(self, e: Exception) -> None:
        if self.error is None:
            logger.error("metadata_write_failed error=%s (liveness and elections go on in memory)", e)
        self.error = str(e)

    def recovered(self) -> None:
        if self.error is not None:
            logger.warning("metadata_write_recovered")
        self.error = None


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
        behind = getattr(backend, "behind", None)
        self.behind: WriteBehind = behind if behind is not None else WriteBehind(backend)
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

    def put(self, name: str, obj: Any, *, persist: bool = True, required: bool = False) -> None:
        """Store (and persist) an object; every watcher hears of it.

        `required` (a change a client asked for): written first, `MetadataUnavailable` and no change at all
        when the store refuses. Otherwise (the SC's own bookkeeping: liveness, elections, statuses) memory
        wins: the object is kept and written behind (`WriteBehind`) until the store takes it."""
        if persist and required:
            self._backend.put(self.label, name, self._codec.encode(obj))
            self.behind.pending.pop((self.label, name), None)     # an older state must not overwrite it
        self.objects[name] = obj
        if persist and not required:
            self._write_later(name, obj)
        self._notify(Change.UPDATE, name, obj)

    def delete(self, name: str, *, required: bool = False) -> Any | None:
        obj = self.objects.get(name)
        if obj is None:
            return None
        if required:
            self._backend.delete(self.label, name)
            self.behind.pending.pop((self.label, name), None)
        del self.objects[name]
        if not required:
            self._write_later(name, None)
        self._notify(Change.DELETE, name, obj)
        return obj

    def _write_later(self, name: str, obj: Any | None) -> None:
        self.behind.add(self.label, name, None if obj is None else self._codec.encode(obj))

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
