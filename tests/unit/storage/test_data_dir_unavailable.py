"""An SPU whose `spu-logs-N` directory cannot be created starts anyway and reports it (issue #9 item 5):
no space → its data dir is FULL (and retried at every poll until it can be created); a persistent
error → FAILED. Old code: `StorageManager` called makedirs unguarded and the SPU crashed at start.
Faults through the file layer."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from fluvial.spu.server import SpuConfig, SpuServer
from fluvial.storage import DirState, FaultPlan, FaultyFileIO
from fluvial.storage.manager import StorageManager

HANG_GUARD_SECONDS = 30.0


@pytest.mark.parametrize(("err", "state"), [(errno.ENOSPC, DirState.FULL), (errno.EDQUOT, DirState.FULL),
                                            (errno.EROFS, DirState.FAILED), (errno.EACCES, DirState.FAILED)])
def test_spu_starts_and_reports_a_data_dir_it_cannot_create(tmp_path: Path, err: int, state: DirState) -> None:
    io = FaultyFileIO(FaultPlan(fail_makedirs=err))
    spu = SpuServer(SpuConfig(5001, str(tmp_path / "spu"), public_port=0, private_port=0, sc_port=1, io=io))
    try:
        assert spu.storage.guard.state is state
        assert spu.storage.base_dir_error is not None and spu.storage.base_dir_error.errno == err
        assert spu.storage.stored_replicas() == []
    finally:
        spu.storage.close()


def test_the_data_dir_is_created_once_space_returns(tmp_path: Path) -> None:
    io = FaultyFileIO(FaultPlan(fail_makedirs=errno.ENOSPC))
    m = StorageManager(tmp_path / "spu", 5001, io=io, poll_interval_seconds=0.05)
    try:
        assert m.guard.state is DirState.FULL
        io.plan = FaultPlan()
        deadline = time.monotonic() + HANG_GUARD_SECONDS
        while not (Path(m.base_dir).is_dir() and m.guard.state is DirState.OK) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Path(m.base_dir).is_dir() and m.guard.state is DirState.OK and m.base_dir_error is None
        r = m.open_replica("t", 0)
        assert r.state.name == "OK"
    finally:
        m.close()
