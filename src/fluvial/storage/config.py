"""Per-replica storage configuration and the flush policy."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from fluvial import defaults as d
from fluvial.errors import InvalidConfig


class FlushKind(enum.Enum):
    OS = "os"                         # write(2) per batch: survives a process crash; background fsync
    FSYNC_EVERY_BATCH = "fsync-every-batch"
    FSYNC_INTERVAL = "fsync-interval"


@dataclass(frozen=True)
class FlushPolicy:
    kind: FlushKind = FlushKind.OS
    interval_seconds: float = d.BACKGROUND_FSYNC_INTERVAL_SECONDS

    @classmethod
    def parse(cls, text: str) -> FlushPolicy:
        """`os`, `fsync-every-batch` or `fsync-interval:MS`."""
        text = text.strip()
        if text == FlushKind.OS.value:
            return cls(FlushKind.OS)
        if text == FlushKind.FSYNC_EVERY_BATCH.value:
            return cls(FlushKind.FSYNC_EVERY_BATCH)
        prefix = FlushKind.FSYNC_INTERVAL.value + ":"
        if text.startswith(prefix):
            try:
                ms = int(text[len(prefix):])
            except ValueError:
                ms = -1
            if ms <= 0:
                raise InvalidConfig(f"flush policy {text!r}: the interval must be a positive number of ms")
            return cls(FlushKind.FSYNC_INTERVAL, ms / 1000.0)
        raise InvalidConfig(f"unknown flush policy {text!r}: use os, fsync-every-batch or fsync-interval:MS")

    def __str__(self) -> str:
        if self.kind is FlushKind.FSYNC_INTERVAL:
            return f"{self.kind.value}:{round(self.interval_seconds * 1000)}"
        return self.kind.value


@dataclass(frozen=True)
class ReplicaConfig:
    segment_max_bytes: int = d.SEGMENT_MAX_BYTES
    index_max_interval_bytes: int = d.INDEX_MAX_INTERVAL_BYTES
    batch_max_bytes: int = d.BATCH_MAX_BYTES
    max_partition_bytes: int = d.MAX_PARTITION_SIZE_BYTES
    retention_seconds: float = d.RETENTION_SECONDS
    flush: FlushPolicy = field(default_factory=FlushPolicy)

    def __post_init__(self) -> None:
        if self.segment_max_bytes < d.SEGMENT_MIN_BYTES:
            raise InvalidConfig(f"segment size {self.segment_max_bytes} is below {d.SEGMENT_MIN_BYTES} bytes")
        if self.segment_max_bytes >= 2**32:
            raise InvalidConfig("segment size must fit the index's u32 positions (< 4 GiB)")
        if self.index_max_interval_bytes <= 0:
            raise InvalidConfig("index interval must be positive")
        if self.batch_max_bytes <= 0:
            raise InvalidConfig("batch size limit must be positive")
        if self.max_partition_bytes < d.PARTITION_MIN_BYTES:
            raise InvalidConfig(f"max partition size {self.max_partition_bytes} is below {d.PARTITION_MIN_BYTES} bytes")
        if self.retention_seconds < 0:
            raise InvalidConfig("retention must not be negative")

    @property
    def batch_limit(self) -> tuple[int, str]:
        """The binding per-batch limit and its name."""
        if self.segment_max_bytes <= self.batch_max_bytes:
            return self.segment_max_bytes, "segment size"
        return self.batch_max_bytes, "max batch size"
