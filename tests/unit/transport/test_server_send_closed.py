"""A handler answering on a connection its peer already closed gets a ConnectionError (which the server
loop handles), never uvloop's RuntimeError that escaped the handler (found by `make soak-load`)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from fluvial.transport import server as srv


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_send_after_the_peer_closed_is_a_connection_error(loop_factory: object) -> None:
    async def main() -> None:
        got: asyncio.Future[srv.Connection] = asyncio.get_running_loop().create_future()

        async def accept(conn: srv.Connection) -> None:
            got.set_result(conn)

        server = await srv.start(srv.Service("test", {}, on_connect=accept), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _r, w = await asyncio.open_connection("127.0.0.1", port)
        conn = await got
        w.close()
        await w.wait_closed()
        conn.transport.close()                # what the server does when it notices the peer left
        with pytest.raises(ConnectionError):
            await conn.send(1, b"late answer")
        with pytest.raises(ConnectionError):
            await conn.send_with_file(1, b"head", 0, 0, 0)
        server.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:  # type: ignore[arg-type]
        runner.run(main())
