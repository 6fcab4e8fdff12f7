"""SC metadata store: SQLite persistence and watch semantics (full sync, then coalesced changes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fluvial.errors import InvalidConfig
from fluvial.sc.store import Change, LabelStore, ObjectCodec, SqliteBackend, open_backend

JSON = ObjectCodec(lambda o: json.dumps(o).encode(), lambda b: json.loads(b))


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    b = open_backend(None, tmp_path)
    b.put("Topic", "a", b"1")
    b.put("Topic", "b", b"2")
    b.put("SPU", "5001", b"s")
    b.put("Topic", "a", b"3")
    b.delete("Topic", "b")
    b.close()
    again = SqliteBackend(tmp_path / "metadata.db")
    assert again.load() == {"Topic": {"a": b"3"}, "SPU": {"5001": b"s"}}
    again.close()


def test_unknown_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig):
        open_backend("zookeeper://x", tmp_path)


@pytest.mark.asyncio
async def test_watch_full_sync_then_changes(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "m.db")
    store = LabelStore("Topic", backend, JSON)
    store.put("t1", {"name": "t1", "v": 1})
    w, epoch, snapshot = store.watch()
    assert snapshot == [{"name": "t1", "v": 1}] and epoch == 1
    store.put("t2", {"name": "t2", "v": 1})
    store.put("t2", {"name": "t2", "v": 2})          # coalesced: only the latest state is sent
    store.delete("t1")
    changes = await asyncio.wait_for(w.next_changes(), 1)
    assert sorted(changes, key=lambda c: c[1]["name"]) == [(Change.DELETE, {"name": "t1", "v": 1}),
                                                           (Change.UPDATE, {"name": "t2", "v": 2})]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(w.next_changes(), 0.05)   # nothing new: nothing sent
    store.unwatch(w)
    reloaded = LabelStore("Topic", backend, JSON)
    reloaded.load(backend.load()["Topic"])
    assert reloaded.objects == {"t2": {"name": "t2", "v": 2}}


def test_write_behind_batches_a_turn_and_a_required_write_wins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Bookkeeping writes of one event-loop turn go in one transaction; a client's (required) write of
    the same object is never overwritten by an older pending state; a refused batch stays pending."""
    import asyncio

    from fluvial.sc.store import LabelStore, ObjectCodec, SqliteBackend

    backend = SqliteBackend(tmp_path / "metadata.db")
    calls: list[int] = []
    real = backend.write_many

    def counting(ops):  # type: ignore[no-untyped-def]
        calls.append(len(ops))
        return real(ops)

    backend.write_many = counting  # type: ignore[method-assign]
    store = LabelStore("T", backend, ObjectCodec(lambda o: o.encode(), lambda b: b.decode()))

    async def main() -> None:
        for n in range(5):
            store.put(f"k{n}", f"v{n}")
        store.put("k0", "client", required=True)     # written at once, the pending "v0" dropped
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert calls == [4]                               # one transaction for the turn's bookkeeping
    assert backend.load()["T"] == {"k0": b"client", "k1": b"v1", "k2": b"v2", "k3": b"v3", "k4": b"v4"}
    backend.close()
