"""Applying a large assignment (a 1,000-partition topic, an SPU back after an outage) gives the event loop a
turn per replica: opening replicas and starting leader epochs write and fsync files, and done in one go
they held the loop for seconds — the SC then missed heartbeats and marked the SPU offline (seen in the
1,000-partition benchmark on a quiet machine)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fluvial.protocol import internal as i
from fluvial.spu.replicas import ReplicaRegistry
from fluvial.storage.manager import StorageManager

SPU = 5001


@pytest.mark.asyncio
async def test_a_large_assignment_lets_heartbeats_run(tmp_path: Path) -> None:
    storage = StorageManager(str(tmp_path), SPU)
    registry = ReplicaRegistry(SPU, storage)
    assignments = [i.ReplicaAssignment("big", p, SPU, [SPU]) for p in range(60)]
    turns = 0
    done = asyncio.Event()

    async def heartbeat_like() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(heartbeat_like())
    await asyncio.sleep(0)
    before = turns
    await registry.apply_async(assignments, full=True)
    done.set()
    await ticker
    assert len(registry.replicas) == 60 and all(r.is_leader(SPU) for r in registry.replicas.values())
    assert turns - before >= 60                     # a turn for the loop after every replica opened
    # an unchanged assignment does no I/O and needs no turns; a changed epoch is applied everywhere
    await registry.apply_async(assignments, full=True)
    bumped = [i.ReplicaAssignment("big", p, SPU, [SPU], leader_epoch=1) for p in range(60)]
    await registry.apply_async(bumped, full=True)
    assert {r.assignment.leader_epoch for r in registry.replicas.values()} == {1}
    await registry.apply_async([], full=True)        # removed one by one too
    assert registry.replicas == {}
    storage.close()
