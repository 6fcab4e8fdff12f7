"""SC wire vectors shared by the SC protocol tests: the captured hex quoted in `fluvio-wire.md` §8-§9 and
one decoder/encoder per (api key, direction), so every body of the SC public port goes through the same
code the SC and the client use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluvial.protocol import frame, sc
from fluvial.protocol.codec import decode, encode

SC_GOLDEN_INDICES = (0, 1, 2, 3, 4, 10, 11, 12)
TOPIC = "probe-topic"                      # the topic of golden_vectors.json (11 bytes)
TOPIC_HEX = TOPIC.encode().hex()
TOPIC8 = "my-topic"                        # an 8-byte name for the §9.3 push (`0008 <topic>`)
TOPIC8_HEX = TOPIC8.encode().hex()
TYPED_RESPONSE_KEYS = (sc.ScApiKey.LIST, sc.ScApiKey.WATCH)


def _hex(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", ""))


@dataclass(frozen=True)
class DocVector:
    """A body quoted in fluvio-wire.md (topic names filled in)."""

    name: str
    api_key: int
    direction: str         # "request" or "response"
    body: bytes
    version: int = 19


DOC_VECTORS = (
    # §9.3: Topic change push of a 3-partition topic (Watch response).
    DocVector("topic-change-push", sc.ScApiKey.WATCH, "response", _hex(
        "0005 546f706963 00000055",
        "0000000000000002 00000001",
        "00 0008", TOPIC8_HEX,
        "01 00000003 00000001 00",
        "00 00 04 00 00",
        "04",
        "0003 00000000 00000001 00001389",
        "     00000001 00000001 00001389",
        "     00000002 00000001 00001389",
        "0000 0000",
        "00000000",
    )),
    # §8.2: create_topic("late-topic") with the default spec.
    DocVector("create-late-topic", sc.ScApiKey.CREATE, "request", _hex(
        "0005 546f706963 0000001d",
        "000a 6c6174652d746f706963 00 00",
        "01 00000001 00000001 01",
        "00 00 04 00 00",
    )),
    # §8.2: with_partitions(3).with_retention_time(3600).with_segment_size("10M").
    DocVector("create-retention-segment", sc.ScApiKey.CREATE, "request", _hex(
        "0005 546f706963 00000029",
        "000b", TOPIC_HEX, "00 00",
        "01 00000003 00000001 01 | 01 00 00000e10 | 01 01 00989680 00 | 04 00 00".replace("|", ""),
    )),
    # §8.7: Status OK and "Topic already exists".
    DocVector("status-ok", sc.ScApiKey.CREATE, "response", _hex("000b", TOPIC_HEX, "0000 00")),
    DocVector("status-already-exists", sc.ScApiKey.CREATE, "response", _hex(
        "000b", TOPIC_HEX, "07d2 01 0014", b"Topic already exists".hex(),
    )),
    # §8.3, §8.4, §8.5: Delete, List (Topic and Partition), Watch (SPU, Partition, Topic).
    DocVector("delete-topic", sc.ScApiKey.DELETE, "request", _hex("0005 546f706963 0000000e 000b", TOPIC_HEX, "00")),
    DocVector("list-topic", sc.ScApiKey.LIST, "request", _hex("0005 546f706963 00000006 00000000 00 00")),
    DocVector("list-partition", sc.ScApiKey.LIST, "request",
              _hex("0009", b"Partition".hex(), "00000006 00000000 00 00")),
    DocVector("watch-spu", sc.ScApiKey.WATCH, "request", _hex("0003 535055 00000009 0000000000000000 00")),
    DocVector("watch-partition", sc.ScApiKey.WATCH, "request",
              _hex("0009", b"Partition".hex(), "00000009 0000000000000000 00")),
    DocVector("watch-topic", sc.ScApiKey.WATCH, "request", _hex("0005 546f706963 00000009 0000000000000000 00")),
    # §9.2: the SPU full sync the client accepted.
    DocVector("spu-full-sync", sc.ScApiKey.WATCH, "response", _hex(
        "0003 535055 00000040",
        "0000000000000001 00000000 00000001",
        "0004 35303031",
        "00001389 00",
        "2332 00000001 01 0009 3132372e302e302e31 00 00",
        "232e 0009 3132372e302e302e31 00",
        "00 00",
        "00",
    )),
)

# §9.5: one Partition entry (a `Metadata<PartitionSpec>` on its own).
PARTITION_ENTRY = _hex(
    "000d", TOPIC_HEX, "2d30",
    "00001389 00000001 00001389",
    "00 00 04 00 00 00",
    "01",
    "00001389 0000000000000000 0000000000000000",
    "00000000 00000000",
    "0000000000000000 00 0000000000000000",
)


# -------------------------------------------------------------------------------- per-key codecs


def decode_request_body(api_key: int, body: bytes, version: int) -> tuple[str | None, Any]:
    if api_key == frame.API_VERSIONS_KEY:
        return None, decode(frame.ApiVersionsRequest, body, version)
    return sc.decode_typed_request(api_key, body, version)


def encode_request_body(label: str | None, msg: Any, version: int) -> bytes:
    if label is None:
        return encode(msg, version)
    return sc.encode_typed(label, msg, version)


def decode_response_body(api_key: int, body: bytes, version: int) -> tuple[str | None, Any]:
    if api_key == frame.API_VERSIONS_KEY:
        return None, decode(frame.ApiVersionsResponse, body, version)
    if api_key in TYPED_RESPONSE_KEYS:
        return sc.decode_typed_response(api_key, body, version)
    return None, decode(sc.Status, body, version)


def encode_response_body(label: str | None, msg: Any, version: int) -> bytes:
    return encode_request_body(label, msg, version)


def decode_body(api_key: int, direction: str, body: bytes, version: int) -> tuple[str | None, Any]:
    decoder = decode_request_body if direction == "request" else decode_response_body
    return decoder(api_key, body, version)


def golden_bodies(golden: list[dict]) -> list[tuple[str, int, str, bytes, int]]:
    """(id, api key, direction, body, version) of every SC golden body and every DocVector."""
    out = []
    for i in SC_GOLDEN_INDICES:
        e = golden[i]
        frame_bytes = bytes.fromhex(e["response_frame_hex"])
        out.append((f"golden{i}-request", e["api_key"], "request", bytes.fromhex(e["request_body_hex"]),
                    e["api_version"]))
        out.append((f"golden{i}-response", e["api_key"], "response", frame_bytes[8:], e["api_version"]))
    out += [(v.name, v.api_key, v.direction, v.body, v.version) for v in DOC_VECTORS]
    return out
