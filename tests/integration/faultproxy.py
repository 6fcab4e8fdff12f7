"""A TCP proxy for fault injection between fluvial's client and a real SPU: it forwards frames both ways
and can lose the answer to a produce request (the request reached the SPU and was written; the client
never hears back), which is exactly the case an idempotent producer must survive."""

from __future__ import annotations

import asyncio
import contextlib
import struct

from fluvial.protocol.spu import SpuApiKey

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhi")          # api key, version, correlation id


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = await reader.readexactly(4)
    return size + await reader.readexactly(_SIZE.unpack(size)[0])


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.lose_produce_answers = 0          # how many produce answers to lose (each closes the connection)
        self.lost = 0
        self.produce_requests = 0
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        sreader, swriter = await asyncio.open_connection(*self.target)
        produce_ids: set[int] = set()

        async def upstream() -> None:
            while True:
                frame = await _read_frame(creader)
                api_key, _version, correlation = _HEADER.unpack_from(frame, 4)
                if api_key == SpuApiKey.PRODUCE:
                    produce_ids.add(correlation)
                    self.produce_requests += 1
                swriter.write(frame)
                await swriter.drain()

        async def downstream() -> None:
            while True:
                frame = await _read_frame(sreader)
                (correlation,) = struct.unpack_from(">i", frame, 4)
                if correlation in produce_ids and self.lose_produce_answers > 0:
                    self.lose_produce_answers -= 1
                    self.lost += 1
                    return                           # the answer is lost with the connection
                cwriter.write(frame)
                await cwriter.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (cwriter, swriter):
            w.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
