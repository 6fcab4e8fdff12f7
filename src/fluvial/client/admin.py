"""Admin calls against the SC public API. Every call has a timeout."""

from __future__ import annotations

from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp
from fluvial.transport.client import ClientConnection


@dataclass(frozen=True)
class SpuInfo:
    id: int
    online: bool
    address: str
    leads: int = 0


async def list_objects(host: str, port: int, label: str, *, system: bool = False,
                       timeout: float = 10.0) -> list[object]:
    conn = await ClientConnection.connect(host, port, timeout=timeout)
    try:
        body = scp.encode_typed(label, scp.ListRequest([], False, system), d.SC_OBJECT_VERSION)
        r = await conn.request(scp.ScApiKey.LIST, d.SC_OBJECT_VERSION, body, timeout=timeout)
        _label, resp = scp.decode_typed_response(scp.ScApiKey.LIST, r.take(r.remaining()), d.SC_OBJECT_VERSION)
        return list(resp.objects)
    finally:
        await conn.close()


def _address(spec: md.SpuSpec) -> str:
    ingress = spec.public_endpoint.ingress
    host = (ingress[0].hostname or ingress[0].ip or "") if ingress else ""
    return f"{host}:{spec.public_endpoint.port}"


async def list_spus(host: str, port: int, *, timeout: float = 10.0) -> list[SpuInfo]:
    spus = await list_objects(host, port, "SPU", timeout=timeout)
    return [SpuInfo(m.spec.id, m.status.resolution is md.SpuResolution.ONLINE, _address(m.spec))
            for m in spus]


async def cluster_status(host: str, port: int, *, timeout: float = 10.0) -> list[SpuInfo]:
    spus = await list_objects(host, port, "SPU", timeout=timeout)
    parts = [*await list_objects(host, port, "Partition", timeout=timeout),
             *await list_objects(host, port, "Partition", system=True, timeout=timeout)]
    leads: dict[int, int] = {}
    for p in parts:
        leads[p.spec.leader] = leads.get(p.spec.leader, 0) + 1
    return sorted((SpuInfo(m.spec.id, m.status.resolution is md.SpuResolution.ONLINE, _address(m.spec),
                           leads.get(m.spec.id, 0)) for m in spus), key=lambda s: s.id)
