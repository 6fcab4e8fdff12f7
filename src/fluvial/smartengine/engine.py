"""SmartModules on wasmtime (reference fluvio-smartmodules.md §2, §7): compile once, instantiate per
stream, run with a CPU budget and a memory cap. No networking, no asyncio: callers run `Chain` methods in
worker threads, one call at a time per chain (a wasmtime Store is single-threaded).

* `SmartEngine` — one wasmtime Engine (epoch interruption on), the compile cache, the epoch ticker.
* `CompileCache` — sha256(wasm) → compiled Module, in memory (LRU) and serialized on disk, each file
  carrying the sha256 of its bytes: a file that does not verify or deserialize is recompiled and replaced.
* `Chain` — the instances of one stream's (or one produce request's) invocations in one Store, with
  Fluvio's semantics: kind from exports (filter → map → filter_map → array_map → aggregate), `init` with
  the params at build, aggregate accumulator kept for the chain's life, output of module i is module i+1's
  input (same base offset and timestamp), the first module error ends the pass, `look_back` once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import wasmtime

from fluvial import defaults as d
from fluvial.errors import (
    ProtocolError,
    SmartModuleChainInitError,
    SmartModuleFailed,
    SmartModuleInvalid,
    SmartModuleLookBackError,
    SmartModuleMemoryLimitExceeded,
)
from fluvial.observability.ratelimit import RateLimitedLog
from fluvial.protocol import smartmodule as sm
from fluvial.protocol import spu as sp
from fluvial.smartengine import abi

logger = logging.getLogger(__name__)
_wasi_log = RateLimitedLog(logging.getLogger("fluvial.smartengine.wasi"))

WASM_PAGE_BYTES = 65536
WASI_MODULE = "wasi_snapshot_preview1"
_CACHE_MAGIC = b"FLVSMC1\n"          # cache file: magic | sha256(serialized) | serialized
_I32 = wasmtime.ValType.i32()
_TRANSFORM_PARAMS = (_I32, _I32, _I32)


def unpack_wasm(payload: bytes, name: str | None = None, max_bytes: int = d.SMARTMODULE_MAX_WASM_BYTES) -> bytes:
    """The raw wasm of a payload: gzip (Fluvio's CLI, AdHoc) is gunzipped, raw wasm (the Python admin's
    create_smartmodule) is taken as is (`protocol.smartmodule.raw_wasm`). Anything else: 6002."""
    try:
        return sm.raw_wasm(payload, max_bytes)
    except sm.PayloadError as e:
        raise SmartModuleInvalid(str(e), name) from None


# ------------------------------------------------------------------------------------- compile cache


@dataclass
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    compiles: int = 0
    disk_rejected: int = 0


class CompileCache:
    def __init__(self, engine: wasmtime.Engine, directory: str | None,
                 max_modules: int = d.SMARTMODULE_CACHE_MODULES_MAX) -> None:
        self.engine = engine
        self.directory = directory
        self.max_modules = max_modules
        self._modules: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()
        if directory:
            os.makedirs(directory, exist_ok=True)

    def get(self, wasm: bytes) -> wasmtime.Module:
        """The compiled module (raises wasmtime.WasmtimeError when it does not compile)."""
        key = hashlib.sha256(wasm).hexdigest()
        with self._lock:
            module = self._modules.get(key)
            if module is not None:
                self._modules.move_to_end(key)
                self.stats.memory_hits += 1
                return module
        module = self._load(key)
        if module is None:
            started = time.monotonic()
            module = wasmtime.Module(self.engine, wasm)
            self.stats.compiles += 1
            logger.info("smartmodule_compiled key=%s wasm_bytes=%d ms=%.1f", key[:16], len(wasm),
                        (time.monotonic() - started) * 1000)
            self._store(key, module)
        with self._lock:
            self._modules[key] = module
            while len(self._modules) > self.max_modules:
                self._modules.popitem(last=False)
        return module

    def path(self, key: str) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, f"{key}.cwasm")

    def _load(self, key: str) -> wasmtime.Module | None:
        if not self.directory:
            return None
        try:
            with open(self.path(key), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            logger.warning("smartmodule_cache_unreadable key=%s error=%s", key, e)
            return None
        head = len(_CACHE_MAGIC) + 32
        body = data[head:]
        if data[:len(_CACHE_MAGIC)] != _CACHE_MAGIC or hashlib.sha256(body).digest() != data[len(_CACHE_MAGIC):head]:
            return self._reject(key, "checksum mismatch")
        try:
            module = wasmtime.Module.deserialize(self.engine, body)
        except wasmtime.WasmtimeError as e:   # another wasmtime version or engine config
            return self._reject(key, str(e).splitlines()[0] if str(e) else "does not deserialize")
        self.stats.disk_hits += 1
        logger.info("smartmodule_cache_disk_hit key=%s", key[:16])
        return module

    def _reject(self, key: str, why: str) -> None:
        self.stats.disk_rejected += 1
        logger.warning("smartmodule_cache_rejected key=%s reason=%s (recompiling)", key, why)
        with contextlib.suppress(OSError):
            os.unlink(self.path(key))
        return None

    def _store(self, key: str, module: wasmtime.Module) -> None:
        if not self.directory:
            return
        body = module.serialize()
        tmp = f"{self.path(key)}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(_CACHE_MAGIC + hashlib.sha256(body).digest() + body)
            os.replace(tmp, self.path(key))
        except OSError as e:     # a full disk costs a recompile later, nothing else
            logger.warning("smartmodule_cache_write_failed key=%s error=%s", key, e)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# ------------------------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class ModuleSpec:
    """One invocation, resolved: raw wasm, params (with look-back) and the aggregate's initial value."""

    wasm: bytes
    params: abi.Params = field(default_factory=lambda: abi.Params({}))
    initial_accumulator: bytes = b""
    name: str = "adhoc"


class SmartEngine:
    """One per process. Thread-safe: chains may be built and run from any worker thread."""

    def __init__(self, cache_dir: str | None = None, *,
                 call_budget_seconds: float = d.SMARTMODULE_CALL_BUDGET_SECONDS,
                 memory_max_bytes: int = d.SMARTMODULE_MEMORY_MAX_BYTES,
                 tick_seconds: float = d.SMARTMODULE_EPOCH_TICK_SECONDS) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.cache = CompileCache(self.engine, cache_dir)
        self.call_budget_seconds = call_budget_seconds
        self.memory_max_bytes = memory_max_bytes
        self.tick_seconds = tick_seconds
        self.budget_ticks = max(1, round(call_budget_seconds / tick_seconds))
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="smartengine-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.engine.increment_epoch()

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=1)

    def compile(self, wasm: bytes) -> wasmtime.Module:
        return self.cache.get(wasm)

    def build_chain(self, specs: Sequence[ModuleSpec], version: int = d.SMARTMODULE_API_VERSION_DEFAULT) -> Chain:
        """Compile (cached), instantiate in one Store and `init` each module, in order. Raises
        SmartModuleChainInitError (6005) or SmartModuleMemoryLimitExceeded (6008)."""
        chain = Chain(self, version)
        try:
            for spec in specs:
                chain.add(spec)
        except BaseException:
            chain.close()
            raise
        return chain


# -------------------------------------------------------------------------------------------- chain


class _Failure(Exception):
    """A call that did not return normally: a trap, the CPU budget, the memory cap, a host error."""

    def __init__(self, text: str, memory_bytes: int = 0) -> None:
        super().__init__(text)
        self.text = text
        self.memory_bytes = memory_bytes


@dataclass
class _Instance:
    name: str
    kind: str
    instance: wasmtime.Instance
    memory: wasmtime.Memory
    alloc: wasmtime.Func
    dealloc: wasmtime.Func | None
    transform: wasmtime.Func
    look_back: wasmtime.Func | None
    lookback: sp.Lookback | None
    version: int
    accumulator: bytes = b""
    legacy_checked: bool = False


class Chain:
    """The modules of one stream, sharing a Store. Not thread-safe: one call at a time."""

    def __init__(self, engine: SmartEngine, version: int) -> None:
        self.engine = engine
        self.version = version
        self.store = wasmtime.Store(engine.engine)
        self.store.set_limits(memory_size=engine.memory_max_bytes)
        self.store.set_epoch_deadline(engine.budget_ticks)
        self.instances: list[_Instance] = []
        self._out: tuple[int, int] | None = None
        self._wasi = False
        self.calls = 0

    # ---------------------------------------------------------------------------------- building

    def add(self, spec: ModuleSpec) -> None:
        try:
            module = self.engine.compile(spec.wasm)
        except wasmtime.WasmtimeError as e:
            raise SmartModuleChainInitError(_first_line(e)) from None
        self._check_initial_memory(module)
        kind = next((k for k in abi.TRANSFORM_EXPORTS if _has_func(module, k)), None)
        if kind is None:
            raise SmartModuleChainInitError("No valid smartmodule found")
        for export in (kind, abi.INIT_EXPORT, abi.LOOK_BACK_EXPORT):
            if _has_func(module, export) and not _is_transform_type(module, export):
                raise SmartModuleChainInitError(f"failed to get typed function `{export}`: type mismatch with "
                                                "parameters (i32, i32, i32) -> i32")
        linker = wasmtime.Linker(self.engine.engine)
        linker.define_func("env", "copy_records", wasmtime.FuncType([_I32, _I32], []), self._copy_records)
        if any(i.module == WASI_MODULE for i in module.imports):
            linker.define_wasi()
            if not self._wasi:
                self.store.set_wasi(_wasi_config(spec.name))
                self._wasi = True
        try:
            instance = linker.instantiate(self.store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
            self._raise_build_failure(f"Failed to instantiate: {_first_line(e)}", None)
        exports = instance.exports(self.store)
        memory, alloc = exports.get("memory"), exports.get("alloc")
        if not isinstance(memory, wasmtime.Memory) or not isinstance(alloc, wasmtime.Func):
            raise SmartModuleChainInitError("Failed to instantiate: the module exports no `memory` or no `alloc`")
        dealloc = exports.get("dealloc")
        look_back = exports.get(abi.LOOK_BACK_EXPORT)
        one = _Instance(spec.name, kind, instance, memory, alloc,
                        dealloc if isinstance(dealloc, wasmtime.Func) else None, exports[kind],
                        look_back if isinstance(look_back, wasmtime.Func) else None, spec.params.lookback,
                        self.version, accumulator=spec.initial_accumulator if kind == "aggregate" else b"")
        init = exports.get(abi.INIT_EXPORT)
        if isinstance(init, wasmtime.Func):
            self._init(one, init, spec.params)
        self.instances.append(one)

    def _check_initial_memory(self, module: wasmtime.Module) -> None:
        for item in [*module.exports, *module.imports]:
            if isinstance(item.type, wasmtime.MemoryType):
                requested = item.type.limits.min * WASM_PAGE_BYTES
                if requested > self.engine.memory_max_bytes:
                    raise SmartModuleMemoryLimitExceeded(requested, self.engine.memory_max_bytes)

    def _init(self, one: _Instance, init: wasmtime.Func, params: abi.Params) -> None:
        try:
            rc, out = self._call(one, init, abi.encode_init_input(params, one.version))
        except _Failure as f:
            self._raise_build_failure(f.text, f.memory_bytes)
        if rc >= 0:
            return
        if rc == abi.STATUS_INIT_ERROR and out is not None:
            try:
                hint = abi.decode_init_error(out)
            except ProtocolError as e:
                raise SmartModuleChainInitError(str(e)) from None
            raise SmartModuleChainInitError(f"{hint}\n\nSmartModule Init Error: \n")
        raise SmartModuleChainInitError(abi.status_text(abi.INIT_STATUS, rc))

    def _raise_build_failure(self, text: str, memory_bytes: int | None) -> None:
        if memory_bytes is not None and self._near_cap(memory_bytes):
            raise SmartModuleMemoryLimitExceeded(memory_bytes + WASM_PAGE_BYTES, self.engine.memory_max_bytes)
        raise SmartModuleChainInitError(text)

    def _near_cap(self, memory_bytes: int) -> bool:
        cap = self.engine.memory_max_bytes
        return memory_bytes > cap - max(cap // 8, 2 * d.MIB)

    # ------------------------------------------------------------------------------------ calling

    def _copy_records(self, ptr: int, length: int) -> None:
        self._out = (ptr, length)

    def _call(self, one: _Instance, func: wasmtime.Func, data: bytes) -> tuple[int, bytes | None]:
        """alloc + write + call(ptr, len, version) + read the copy_records bytes + dealloc them."""
        self._out = None
        store = self.store
        try:
            store.set_epoch_deadline(self.engine.budget_ticks)
            ptr = one.alloc(store, len(data))
            one.memory.write(store, data, ptr)
            store.set_epoch_deadline(self.engine.budget_ticks)
            rc = func(store, ptr, len(data), one.version)
            self.calls += 1
            out = None
            if self._out is not None:
                optr, olen = self._out
                out = bytes(one.memory.read(store, optr, optr + olen)) if olen > 0 else b""
                if one.dealloc is not None and olen > 0:   # Fluvio leaks these (§2.6)
                    store.set_epoch_deadline(self.engine.budget_ticks)
                    one.dealloc(store, optr, olen)
            return rc, out
        except wasmtime.Trap as e:
            raise self._failure(one, e) from None
        except (wasmtime.WasmtimeError, IndexError, ValueError) as e:
            raise _Failure(f"{one.name}: {_first_line(e)}", self._memory_bytes(one)) from None

    def _failure(self, one: _Instance, trap: wasmtime.Trap) -> _Failure:
        used = self._memory_bytes(one)
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            return _Failure(f"{one.name}: exceeded its CPU budget of {self.engine.call_budget_seconds:g} s "
                            "per call (interrupted)", used)
        if self._near_cap(used):
            return _Failure(f"{one.name}: reached the memory limit of {self.engine.memory_max_bytes} bytes "
                            f"({used} in use): {_first_line(trap)}", used)
        return _Failure(f"{one.name}: {_first_line(trap)}", used)

    def _memory_bytes(self, one: _Instance) -> int:
        try:
            return one.memory.data_len(self.store)
        except wasmtime.WasmtimeError:
            return 0

    # ---------------------------------------------------------------------------------- processing

    def process(self, raw_records: bytes, base_offset: int, base_timestamp: int) -> abi.ModuleOutput:
        """One stored batch's records section through every module. Raises SmartModuleFailed (the
        stream's end: `Other("SmartModule err …")`) on a trap, a negative status or a bad output."""
        if not self.instances:
            return abi.ModuleOutput(raw=bytes(raw_records))
        raw = raw_records
        output = abi.ModuleOutput([])
        for i, one in enumerate(self.instances):
            output = self._transform(one, raw, base_offset, base_timestamp)
            if output.error is not None or i == len(self.instances) - 1:
                return output
            raw = output.raw
        return output

    def _transform(self, one: _Instance, raw: bytes, base_offset: int, base_timestamp: int) -> abi.ModuleOutput:
        aggregate = one.kind == "aggregate"

        def encode(version: int) -> bytes:
            if aggregate:
                return abi.encode_aggregate_input(raw, base_offset, base_timestamp, version, one.accumulator)
            return abi.encode_input(raw, base_offset, base_timestamp, version)

        try:
            rc, out = self._call(one, one.transform, encode(one.version))
            if (rc == abi.STATUS_DECODING_BASE_INPUT and one.version >= abi.TIMESTAMP_LAYOUT_VERSION
                    and not one.legacy_checked):
                # a module built before fluvio 0.10.14 knows only the layout without base_timestamp (§2.7)
                one.legacy_checked = True
                legacy = abi.LEGACY_LAYOUT_VERSION
                saved, one.version = one.version, legacy
                rc, out = self._call(one, one.transform, encode(legacy))
                if rc < 0:
                    one.version = saved
                else:
                    logger.debug("smartmodule_legacy_layout module=%s version=%d", one.name, legacy)
        except _Failure as f:
            raise SmartModuleFailed(f.text) from None
        one.legacy_checked = True
        if rc < 0:
            raise SmartModuleFailed(f"{one.name}: {abi.status_text(abi.TRANSFORM_STATUS, rc)}")
        try:
            output = abi.decode_output(out or b"", one.version, aggregate)
        except ProtocolError as e:
            raise SmartModuleFailed(f"{one.name}: cannot decode its output: {e}") from None
        if aggregate and output.accumulator is not None:
            one.accumulator = output.accumulator
        return output

    # ---------------------------------------------------------------------------------- look_back

    def look_backs(self) -> list[sp.Lookback]:
        """The look-back of each module that has both a `look_back` export and a lookback param."""
        return [one.lookback for one in self.instances if one.look_back is not None and one.lookback is not None]

    def look_back(self, read: Callable[[sp.Lookback], bytes]) -> None:
        """Once, before the stream starts: each such module gets `read(lookback)` (a records section whose
        offset_delta/timestamp_delta are absolute: base 0) through `look_back`. Raises
        SmartModuleLookBackError (6007)."""
        for one in self.instances:
            if one.look_back is None or one.lookback is None:
                continue
            raw = read(one.lookback)
            try:
                rc, out = self._call(one, one.look_back, abi.encode_input(raw, 0, 0, one.version))
            except _Failure as f:
                raise SmartModuleLookBackError(f.text) from None
            if rc >= 0:
                continue
            if rc == abi.STATUS_LOOK_BACK_PROPAGATED and out is not None:
                try:
                    raise SmartModuleLookBackError(str(abi.decode_look_back_error(out)))
                except ProtocolError as e:
                    raise SmartModuleLookBackError(str(e)) from None
            raise SmartModuleLookBackError(abi.status_text(abi.LOOK_BACK_STATUS, rc))

    def memory_bytes(self) -> list[int]:
        return [self._memory_bytes(one) for one in self.instances]

    def close(self) -> None:
        self.instances.clear()


def _has_func(module: wasmtime.Module, name: str) -> bool:
    return any(e.name == name and isinstance(e.type, wasmtime.FuncType) for e in module.exports)


def _is_transform_type(module: wasmtime.Module, name: str) -> bool:
    for e in module.exports:
        if e.name == name and isinstance(e.type, wasmtime.FuncType):
            return tuple(e.type.params) == _TRANSFORM_PARAMS and list(e.type.results) == [_I32]
    return False


def _first_line(e: BaseException) -> str:
    """The cause of a wasmtime error in one line: its "Caused by" line when there is one (a trap's first
    line is "error while executing at wasm backtrace:")."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    if "Caused by:" in lines:
        after = [re.sub(r"^\d+:\s*", "", line) for line in lines[lines.index("Caused by:") + 1:]]
        if after:
            cause = after[-1]
            return cause if lines[0].startswith("error while executing") else f"{lines[0]}: {cause}"
    return lines[0]


def _wasi_config(name: str) -> wasmtime.WasiConfig:
    """WASI preview1 without files, env or args; stdout/stderr go to the SPU's log."""
    cfg = wasmtime.WasiConfig()

    def sink(stream: str) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:   # rate-limited per module: a module printing per record is bounded
            for line in bytes(data).decode("utf-8", errors="replace").splitlines():
                _wasi_log.info(f"wasi:{name}:{stream}", "smartmodule_output module=%s stream=%s line=%s", name,
                               stream, line)
        return write

    cfg.stdout_custom = sink("stdout")
    cfg.stderr_custom = sink("stderr")
    return cfg


def run_records(specs: Sequence[ModuleSpec], records: Sequence[tuple[bytes | None, bytes]], *,
                look_back: Sequence[tuple[bytes | None, bytes]] = (), version: int = d.SMARTMODULE_API_VERSION_DEFAULT,
                base_offset: int = 0, timestamp_ms: int = -1, engine: SmartEngine | None = None) -> abi.ModuleOutput:
    """Run a chain once, locally, on `records` (key, value) as one batch — what `smartmodule test` needs:
    build (init with the params), look_back over `look_back` when a module asks for it, process. Raises the
    same typed errors as the SPU (6002 from `unpack_wasm`, 6005/6008 while building, 6007, and
    SmartModuleFailed); a record the module rejects is `output.error`, after `output.successes`."""
    own = engine is None
    eng = engine or SmartEngine()
    try:
        chain = eng.build_chain(specs, version)
        try:
            if chain.look_backs():
                lb = abi.encode_records([abi.SmRecord(v, k, i) for i, (k, v) in enumerate(look_back)])
                chain.look_back(lambda _lookback: lb)
            raw = abi.encode_records([abi.SmRecord(v, k, i) for i, (k, v) in enumerate(records)])
            return chain.process(raw, base_offset, timestamp_ms)
        finally:
            chain.close()
    finally:
        if own:
            eng.close()
