"""The SC's `SmartModule` object (`reference/fluvio-smartmodules.md` §5.1) and its names. Pure.

A SmartModule is stored under a key: its package's `name-group-version` when the spec carries package
metadata, else the name given to Create. Consumers name it exactly or as `group/name@version`
(`SmartModulePackageKey` of `crates/fluvio-controlplane-metadata/src/smartmodule/package.rs@v0.17.3`).

The payload is the wasm as the creator sent it: Fluvio's CLI gzips it, the official Python admin sends it
raw; both are accepted (`payload_kind`), and `raw_wasm` gives the module itself.
"""

from __future__ import annotations

import enum
import gzip
import zlib
from dataclasses import dataclass

from fluvial.protocol.codec import BOOL, BYTES, STRING, UINT32, IntEnum8, Map16, Option, Struct, message, wire

GZIP_MAGIC = b"\x1f\x8b"
WASM_MAGIC = b"\x00asm"
SMARTMODULE_VISIBILITY_VERSION = 19


class SmartModuleVisibility(enum.IntEnum):
    PRIVATE = 0
    PUBLIC = 1


class WasmFormat(enum.IntEnum):
    BINARY = 0
    TEXT = 1


@message
@dataclass
class SmartModulePackage:
    name: str = wire(STRING)
    group: str = wire(STRING)
    version: str = wire(STRING, default="0.1.0")          # semver, as text
    api_version: str = wire(STRING, default="0.1.0")
    description: str | None = wire(Option(STRING))
    license: str | None = wire(Option(STRING))
    visibility: SmartModuleVisibility = wire(IntEnum8(SmartModuleVisibility), min_version=SMARTMODULE_VISIBILITY_VERSION,
                                             default=SmartModuleVisibility.PRIVATE)
    repository: str | None = wire(Option(STRING))

    def store_id(self) -> str:
        return f"{self.name}-{self.group}-{self.version}"

    def fqdn(self) -> str:
        return f"{self.group}/{self.name}@{self.version}"


@message
@dataclass
class SmartModuleParam:
    description: str | None = wire(Option(STRING))
    optional: bool = wire(BOOL)


@message
@dataclass
class SmartModuleMetadata:
    package: SmartModulePackage = wire(Struct(SmartModulePackage))
    params: dict[str, SmartModuleParam] = wire(Map16(STRING, Struct(SmartModuleParam)))


@message
@dataclass
class SmartModuleWasmSummary:
    wasm_length: int = wire(UINT32)


@message
@dataclass
class SmartModuleWasm:
    format: WasmFormat = wire(IntEnum8(WasmFormat), default=WasmFormat.BINARY)
    payload: bytes = wire(BYTES)


@message
@dataclass
class SmartModuleSpec:
    """The V2 layout (object version >= 10; fluvial serves 11..19)."""

    meta: SmartModuleMetadata | None = wire(Option(Struct(SmartModuleMetadata)))
    summary: SmartModuleWasmSummary | None = wire(Option(Struct(SmartModuleWasmSummary)))
    wasm: SmartModuleWasm = wire(Struct(SmartModuleWasm))

    def store_id(self, create_name: str) -> str:
        return self.meta.package.store_id() if self.meta is not None else create_name

    def summarized(self) -> SmartModuleSpec:
        """What List with `summary` returns: the metadata and the payload's length, no payload."""
        return SmartModuleSpec(self.meta, SmartModuleWasmSummary(len(self.wasm.payload)), SmartModuleWasm())


@message
@dataclass
class SmartModuleStatus:
    """A unit struct upstream: encodes to nothing."""


# ------------------------------------------------------------------------------------------ names


@dataclass(frozen=True)
class PackageKey:
    """A name as a consumer or `delete` gives it: `name`, `group/name` or `group/name@version`."""

    name: str
    group: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> PackageKey:
        group, sep, rest = text.partition("/")
        if not sep:
            return cls(text)
        name, at, version = rest.partition("@")
        return cls(name, group, version if at else None)

    def store_id(self) -> str:
        return self.name + (f"-{self.group}" if self.group else "") + (f"-{self.version}" if self.version else "")

    def matches(self, key: str, spec: SmartModuleSpec) -> bool:
        """Upstream's `is_match`: by package when the object has one, else by its key."""
        if spec.meta is None:
            return self.name == key
        pkg = spec.meta.package
        if self.version is not None and pkg.version != self.version:
            return False
        if self.group is not None and pkg.group != self.group:
            return False
        return self.name == pkg.name


def find(name: str, objects: dict[str, SmartModuleSpec]) -> tuple[str, SmartModuleSpec] | None:
    """The stored object `name` refers to: the exact key first, then a package match."""
    if name in objects:
        return name, objects[name]
    key = PackageKey.parse(name)
    for store_key in sorted(objects):
        if key.matches(store_key, objects[store_key]):
            return store_key, objects[store_key]
    return None


# ---------------------------------------------------------------------------------------- payload


class PayloadError(ValueError):
    pass


def payload_kind(payload: bytes) -> str:
    """'gzip' or 'wasm'; PayloadError for anything else."""
    if payload[:2] == GZIP_MAGIC:
        return "gzip"
    if payload[:4] == WASM_MAGIC:
        return "wasm"
    raise PayloadError("not a WebAssembly module (no \\0asm magic) nor a gzip of one")


def raw_wasm(payload: bytes, max_bytes: int) -> bytes:
    """The module itself from a stored or inline payload; PayloadError when it is not one (or too big)."""
    if payload_kind(payload) == "wasm":
        raw = payload
    else:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = d.decompress(payload, max_bytes + 1)
        except zlib.error as e:
            raise PayloadError(f"invalid gzip: {e}") from None
        if not d.eof and len(raw) <= max_bytes:
            raise PayloadError("invalid gzip: truncated stream")
        if raw[:4] != WASM_MAGIC:
            raise PayloadError("the gzip does not hold a WebAssembly module")
    if len(raw) > max_bytes:
        raise PayloadError(f"the module is larger than {max_bytes} bytes")
    return raw


def gzip_wasm(raw: bytes) -> bytes:
    """The payload form Fluvio's CLI sends (and fluvial's CLI too)."""
    return gzip.compress(raw, mtime=0)
