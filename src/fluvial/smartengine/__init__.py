"""SmartModules: WebAssembly filter/map/filter_map/array_map/aggregate on wasmtime, with a CPU budget per
call, a memory cap per instance and a compile cache (DESIGN.md §3: no networking; the SPU calls it off the
event loop). See docs/smartmodules.md."""

from fluvial.protocol.smartmodule import gzip_wasm
from fluvial.smartengine.abi import ModuleOutput, Params, SmRecord, TransformError
from fluvial.smartengine.batching import Carry, InputBatch, Step, input_batches, run_batches
from fluvial.smartengine.engine import Chain, CompileCache, ModuleSpec, SmartEngine, run_records, unpack_wasm

__all__ = ["Carry", "Chain", "CompileCache", "InputBatch", "ModuleOutput", "ModuleSpec", "Params", "SmRecord",
           "SmartEngine", "Step", "TransformError", "gzip_wasm", "input_batches", "run_batches", "run_records",
           "unpack_wasm"]
