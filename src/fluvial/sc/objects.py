"""SC objects that are only stored and watched, never placed (`TableFormat`; the shape a second such type
takes too): Create answers `<kind> '<name>' already defined` with the type's AlreadyExists code, Delete
answers `not found` with its NotFound code, as the reference SC does
(`crates/fluvio-sc/src/services/public_api/tableformat/{create,delete}.rs` of v0.17.3)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fluvial.errors import ErrorCode, MetadataUnavailable
from fluvial.protocol import sc as scp
from fluvial.sc.store import LabelStore
from fluvial.sc.topic_controller import status_of

logger = logging.getLogger("fluvial.sc.server")


@dataclass(frozen=True)
class StoredKind:
    """One stored-only object type: its wire type, how its messages name it, and its error codes."""

    obj: scp.ObjectType
    word: str                       # "tableformat"
    exists: ErrorCode
    not_found: ErrorCode
    error: ErrorCode


TABLE_FORMAT = StoredKind(scp.TABLE_FORMAT, "tableformat", ErrorCode.TABLE_FORMAT_ALREADY_EXISTS,
                          ErrorCode.TABLE_FORMAT_NOT_FOUND, ErrorCode.TABLE_FORMAT_ERROR)


class StoredObjects:
    """Create and Delete of one stored-only type over its LabelStore (List and Watch read the store)."""

    def __init__(self, kind: StoredKind, store: LabelStore) -> None:
        self.kind = kind
        self.store = store

    async def create_request(self, name: str, spec: Any, dry_run: bool) -> scp.Status:
        if self.store.get(name) is not None:
            return status_of(name, self.kind.exists, f"{self.kind.word} '{name}' already defined")
        if dry_run:
            return status_of(name, ErrorCode.NONE, None)
        obj = self.kind.obj
        try:
            self.store.put(name, obj.metadata(name, spec, obj.status()), required=True)
        except MetadataUnavailable as e:
            return status_of(name, self.kind.error, str(e))
        logger.info("%s_created name=%s", self.kind.word, name)
        return status_of(name, ErrorCode.NONE, None)

    def delete_request(self, name: str, force: bool) -> scp.Status:
        if self.store.get(name) is None:
            return status_of(name, self.kind.not_found, "not found")
        try:
            self.store.delete(name, required=True)
        except MetadataUnavailable as e:
            return status_of(name, self.kind.error, str(e))
        logger.info("%s_deleted name=%s", self.kind.word, name)
        return status_of(name, ErrorCode.NONE, None)


__all__ = ["TABLE_FORMAT", "StoredKind", "StoredObjects"]
