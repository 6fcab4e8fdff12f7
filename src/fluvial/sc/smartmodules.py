"""SmartModule objects on the SC: Create, Delete, List (with `summary`), and what SPUs get of them — a
stream of every Create/Delete after one full set, and one module on request (a consume that names a module
created a moment ago). Fluvio v0.17.3 semantics (`crates/fluvio-sc/src/services/public_api/smartmodule/`),
plus checks Fluvio lacks: Create refuses a payload that is not wasm (raw or gzip) before storing it."""

from __future__ import annotations

import logging

from fluvial import defaults as d
from fluvial.errors import ErrorCode, MetadataUnavailable
from fluvial.protocol import internal as i
from fluvial.protocol import sc as scp
from fluvial.protocol import smartmodule as sm
from fluvial.protocol.codec import WireError
from fluvial.sc import topics as rules
from fluvial.sc.store import Change, LabelStore

logger = logging.getLogger(__name__)


def _status(name: str, code: ErrorCode, message: str | None, *payload: object) -> scp.Status:
    return scp.Status(name, WireError.of(code, *payload), message)


class SmartModuleController:
    def __init__(self, store: LabelStore) -> None:
        self.store = store

    def objects(self) -> dict[str, sm.SmartModuleSpec]:
        return {m.name: m.spec for m in self.store.values()}

    def create(self, name: str, spec: sm.SmartModuleSpec, dry_run: bool) -> scp.Status:
        if spec.meta is not None and not (spec.meta.package.name and spec.meta.package.group):
            return _status(name, ErrorCode.SMART_MODULE_ERROR, "invalid SmartModule package")
        key = spec.store_id(name)
        problem = rules.name_problem(key) if spec.meta is None else None   # package ids hold dots (versions)
        if problem is not None:
            return _status(key, ErrorCode.SMART_MODULE_ERROR, f"Invalid SmartModule name: '{key}'. {problem}")
        try:
            sm.raw_wasm(spec.wasm.payload, d.SMARTMODULE_MAX_WASM_BYTES)
        except sm.PayloadError as e:
            return _status(key, ErrorCode.SMART_MODULE_INVALID, f"SmartModule is invalid: {e}", str(e), key)
        if dry_run:
            return _status(key, ErrorCode.NONE, None)
        stored = sm.SmartModuleSpec(spec.meta, None, spec.wasm)
        try:
            self.store.put(key, scp.SMARTMODULE.metadata(key, stored, sm.SmartModuleStatus()), required=True)
        except MetadataUnavailable as e:
            return _status(key, ErrorCode.SMART_MODULE_ERROR, str(e))
        logger.info("smartmodule_created name=%s wasm_bytes=%d", key, len(spec.wasm.payload))
        return _status(key, ErrorCode.NONE, None)

    def delete(self, name: str) -> scp.Status:
        found = sm.find(name, self.objects())
        key = found[0] if found is not None else sm.PackageKey.parse(name).store_id()
        if found is None:
            return _status(name, ErrorCode.SMART_MODULE_NOT_FOUND, "not found", name)
        try:
            self.store.delete(key, required=True)
        except MetadataUnavailable as e:
            return _status(name, ErrorCode.SMART_MODULE_ERROR, str(e))
        logger.info("smartmodule_deleted name=%s", key)
        return _status(name, ErrorCode.NONE, None)

    async def create_request(self, name: str, spec: sm.SmartModuleSpec, dry_run: bool) -> scp.Status:
        return self.create(name, spec, dry_run)

    def delete_request(self, name: str, force: bool) -> scp.Status:
        return self.delete(name)

    def listing(self, filters: list[str], summary: bool) -> list[object]:
        keys = [sm.PackageKey.parse(f) for f in filters]
        out = []
        for meta in sorted(self.store.values(), key=lambda m: m.name):
            if keys and not any(k.matches(meta.name, meta.spec) for k in keys):
                continue
            spec = meta.spec.summarized() if summary else meta.spec
            out.append(scp.SMARTMODULE.metadata(meta.name, spec, meta.status))
        return out

    # ------------------------------------------------------------------------------------------ SPUs

    def fetch(self, name: str) -> i.FetchSmartModuleResponse:
        found = sm.find(name, self.objects())
        return i.FetchSmartModuleResponse(None if found is None else i.SmartModuleChange(found[0], found[1]))

    @staticmethod
    def full_update(snapshot: list[object]) -> i.SmartModulesUpdate:
        return i.SmartModulesUpdate(True, [i.SmartModuleChange(m.name, m.spec) for m in snapshot])  # type: ignore[attr-defined]

    @staticmethod
    def changes_update(changes: list[tuple[Change, object]]) -> i.SmartModulesUpdate:
        return i.SmartModulesUpdate(False, [
            i.SmartModuleChange(m.name, None if kind is Change.DELETE else m.spec)   # type: ignore[attr-defined]
            for kind, m in changes])
