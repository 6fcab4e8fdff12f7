"""Hardening under load (issue #12), against real processes: what a user or an operator notices —
leaked watchers in the SC's metrics, a server that stays online, log lines counted in its output."""

from __future__ import annotations

import socket
from pathlib import Path

from fluvial import defaults as d
from fluvial.protocol import sc as scp
from fluvial.protocol.frame import RequestHeader, encode_request

from .procs import Sc, running, wait_until

WATCH_CONNECTIONS = 2000


def _watch_frame(label: str) -> bytes:
    body = scp.encode_typed(label, scp.WatchRequest(0, False), d.SC_OBJECT_VERSION)
    return encode_request(RequestHeader(scp.ScApiKey.WATCH, d.SC_OBJECT_VERSION, 1, "watch-test"), body)


def _watchers(sc: Sc) -> float:
    return sum(sc.metric("fluvial_sc_watchers", registry=label) for label in ("Topic", "Partition", "SPU"))


def test_watch_requests_closed_at_once_leave_no_watcher(tmp_path: Path) -> None:
    sc = Sc(tmp_path)
    frames = [_watch_frame(label) for label in ("Topic", "Partition", "SPU")]
    with running(sc):
        held = socket.create_connection(("127.0.0.1", sc.port))      # one stream that stays open: counted
        held.sendall(frames[0])
        wait_until(lambda: _watchers(sc) == 1, "the open Watch stream counted")
        for n in range(WATCH_CONNECTIONS):
            with socket.create_connection(("127.0.0.1", sc.port)) as s:
                s.sendall(frames[n % 3])        # request and FIN together: the stream task may never start
        for n in range(100):                    # and some that read their full sync first
            with socket.create_connection(("127.0.0.1", sc.port)) as s:
                s.sendall(frames[n % 3])
                assert s.recv(4)
        held.close()
        wait_until(lambda: _watchers(sc) == 0, "every watcher unregistered")
        with socket.create_connection(("127.0.0.1", sc.port)) as s:   # the SC still serves Watch
            s.sendall(frames[2])
            assert s.recv(4)
