"""`fluvial smartmodule create|list|delete|watch|test` (`fluvial sm` for short) and the SmartModule flags
of `consume` and `produce`: fluvio v0.17.3's flags and output (`crates/fluvio-cli/src/client/smartmodule/`,
`crates/fluvio-cli/src/client/consume/mod.rs:173-221`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from fluvial.cli.common import (
    ClusterOpt,
    OutputOpt,
    ProfileOpt,
    conflict,
    emit,
    errors_to_exit,
    fail,
    out,
    render_table,
    usage_error,
    with_admin,
)
from fluvial.client import smartmodules as smi
from fluvial.client.admin import Admin, SmartModuleInfo
from fluvial.errors import FluvialError
from fluvial.protocol import spu as sp
from fluvial.sc import topics as rules

app = typer.Typer(no_args_is_help=True, help="Create and manage SmartModules.")

# ----------------------------------------------------------------------- consume / produce flags

SmartModuleOpt = Annotated[str | None, typer.Option(
    "--smartmodule", "--sm", metavar="NAME", help="Name of the SmartModule (created with `smartmodule create`).")]
SmartModulePathOpt = Annotated[Path | None, typer.Option(
    "--smartmodule-path", "--sm_path", metavar="PATH", help="Path to a SmartModule's .wasm file (sent inline).")]
AggregateInitialOpt = Annotated[str | None, typer.Option(
    "--aggregate-initial", "--a-init", metavar="VALUE",
    help="Value to use as an initial accumulator for aggregate SmartModules.")]
ParamsOpt = Annotated[list[str] | None, typer.Option(
    "-e", "--params", metavar="KEY=VALUE", help="Extra input parameters passed to the SmartModule (repeatable).")]
TransformsOpt = Annotated[Path | None, typer.Option(
    "-t", "--transforms", "--transforms-file", metavar="PATH",
    help="Path to a file with a transformation specification (a chain of SmartModules).")]
TransformsLineOpt = Annotated[list[str] | None, typer.Option(
    "--transforms-line", "--transform", metavar="JSON",
    help="Transformation specification as a JSON string (repeatable: a chain).")]


def invocations(smartmodule: str | None, smartmodule_path: Path | None, aggregate_initial: str | None,
                params: Sequence[str] | None, transforms: Path | None,
                transforms_line: Sequence[str] | None) -> tuple[sp.SmartModuleInvocation, ...]:
    """The chain the flags ask for, with fluvio's conflicts between them (clap groups there)."""
    if smartmodule is not None and smartmodule_path is not None:
        conflict("--smartmodule <SMARTMODULE>", "--smartmodule-path <SMARTMODULE_PATH>")
    named = smartmodule is not None or smartmodule_path is not None
    if (aggregate_initial is not None or params) and not named:
        flag = "--aggregate-initial <AGGREGATE_INITIAL>" if aggregate_initial is not None else "--params <PARAMS>"
        usage_error(f"the following required arguments were not provided:\n  <--smartmodule <SMARTMODULE>|"
                    f"--smartmodule-path <SMARTMODULE_PATH>> (required by {flag})")
    if named and (transforms is not None or transforms_line):
        conflict("--transforms <TRANSFORMS>" if transforms is not None else "--transforms-line <TRANSFORMS_LINE>",
                 "--smartmodule <SMARTMODULE>" if smartmodule is not None else "--smartmodule-path <SMARTMODULE_PATH>")
    if transforms is not None and transforms_line:
        conflict("--transforms-line <TRANSFORMS_LINE>", "--transforms <TRANSFORMS>")
    initial = aggregate_initial.encode() if aggregate_initial is not None else None
    kv = smi.parse_params(params or [])
    if smartmodule is not None:
        return (smi.by_name(smartmodule, params=kv, aggregate_initial=initial),)
    if smartmodule_path is not None:
        return (smi.from_path(smartmodule_path, params=kv, aggregate_initial=initial),)
    if transforms_line:
        return tuple(smi.transforms_from_lines(transforms_line))
    if transforms is not None:
        return tuple(smi.transforms_from_file(transforms))
    return ()


# ------------------------------------------------------------------------------------- commands


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name of the SmartModule to create.")],
    wasm_file: Annotated[Path, typer.Option("--wasm-file", metavar="PATH",
                                            help="The path to a WASM binary to create the SmartModule from.")],
    package: Annotated[Path | None, typer.Option("--package", metavar="PATH", hidden=True,
                                                 help="The path to the SmartModule package (ignored, as by "
                                                      "fluvio 0.17.3).")] = None,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Create a new SmartModule with a given name."""
    problem = rules.name_problem(name)
    if problem is not None:
        fail(f"Invalid name for SmartModule {name}, {problem}")
    try:
        wasm = wasm_file.read_bytes()
    except OSError as e:
        fail(f"{e.strerror or e} (os error {e.errno})" if e.errno else str(e))
    with_admin(cluster, profile, lambda admin: admin.create_smartmodule(name, wasm))
    out.print(f'smartmodule "{name}" has been created.', markup=False)


def _size(n: int) -> str:
    """bytesize 1.x's Display (`ByteSize::b(n).to_string()`): decimal units, one decimal."""
    if n < 1000:
        return f"{n} B"
    units, value = "KMGTPE", float(n)
    i = -1
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.1f} {units[i]}B"


def _doc(items: Sequence[SmartModuleInfo]) -> list[dict[str, object]]:
    return [{"name": m.name, "spec": {"fqdn": m.fqdn, "summary": {"wasm_length": m.wasm_bytes}}, "status": {}}
            for m in items]


def _show(items: Sequence[SmartModuleInfo], output: str) -> None:
    emit(output, _doc(items), lambda: render_table(("SMARTMODULE", "SIZE"), [(m.fqdn, _size(m.wasm_bytes))
                                                                            for m in items]),
         "no smartmodules", empty=not items)


@app.command("list")
def list_(
    output: OutputOpt = "table",
    filter: Annotated[str | None, typer.Option("--filter", metavar="NAME",
                                               help="Only SmartModules matching NAME or group/name@version.")] = None,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """List all existing SmartModules."""
    items = with_admin(cluster, profile, lambda admin: admin.list_smartmodules([filter] if filter else None))
    _show(items, output)


@app.command("delete")
def delete(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="One or more SmartModules to delete.")],
    continue_on_error: Annotated[bool, typer.Option("-c", "--continue-on-error",
                                                    help="Continue deleting in case of an error.")] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", metavar="HOST:PORT",    # -c: continue, as in fluvio
                                                help="Address of the SC.")] = None,
    profile: ProfileOpt = None,
) -> None:
    """Delete one or more SmartModules with the given name(s)."""
    failed = with_admin(cluster, profile, lambda admin: _delete_all(admin, names, continue_on_error))
    if failed:
        fail("Failed deleting smart module(s). Check previous errors.")


async def _delete_all(admin: Admin, names: Sequence[str], continue_on_error: bool) -> bool:
    failed = False
    for name in names:
        try:
            await admin.delete_smartmodule(name)
        except FluvialError as e:
            if not continue_on_error:
                raise
            failed = True
            out.print(f'smart module "{name}" delete failed with: {e}', markup=False)
            continue
        out.print(f'smartmodule "{name}" deleted', markup=False)
    return failed


@app.command("watch")
def watch(
    output: OutputOpt = "table",
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Watch for changes to SmartModules: the list again after each change (until interrupted)."""

    async def follow(admin: Admin) -> None:
        async for _epoch, _changes, _all in admin.watch_smartmodules():
            sys.stdout.write("\n")
            _show(await admin.list_smartmodules(), output)
            sys.stdout.flush()

    with_admin(cluster, profile, follow)


@app.command("test")
def test(
    wasm_file: Annotated[Path | None, typer.Option("--wasm-file", metavar="PATH",
                                                   help="fluvial: a local .wasm file to test (as `smdk test`).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Provide test input with this flag.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the test input from the StdIn (one line).")] = False,
    file: Annotated[Path | None, typer.Option("--file", metavar="PATH",
                                              help="Path to test file. Default: Read file line by line.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Read the file as single record.")] = False,
    key: Annotated[str | None, typer.Option("--key", help="Key to use with the test record(s).")] = None,
    key_value: Annotated[bool, typer.Option("-k", "--key-value",
                                            help='Print records in "[key] value" format, with "[null]" for no key.')]
    = False,
    params: ParamsOpt = None,
    transforms: TransformsOpt = None,
    transforms_line: TransformsLineOpt = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Verbose output.")] = False,
    record: Annotated[list[str] | None, typer.Option(
        "-r", "--record", help="Records which act as existing in the topic before the SmartModule starts "
        "processing (for look_back; repeatable).")] = None,
    lookback_last: Annotated[int | None, typer.Option(
        "-l", "--lookback-last", metavar="N", help="Sets the lookback parameter to the last N records.")] = None,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Test a SmartModule on given input, locally: a .wasm file, or the chain of a transforms spec (its
    modules fetched from the cluster). Prints each output record."""
    from fluvial.errors import SmartModuleRuntimeError
    from fluvial.smartengine import ModuleSpec, Params, run_records, unpack_wasm

    inputs = [text is not None, stdin, file is not None]
    if sum(inputs) > 1:
        usage_error("the arguments --text, --stdin and --file cannot be used together")
    if not any(inputs):
        usage_error("No valid input provided: one of --text, --stdin or --file is required")
    if raw and file is None:
        usage_error("the following required arguments were not provided:\n  --file <FILE> (required by --raw)")
    if wasm_file is None and transforms is None and not transforms_line:
        usage_error("one of --wasm-file, --transforms or --transforms-line is required")
    lookback = sp.Lookback(lookback_last, None) if lookback_last is not None else None
    with errors_to_exit():
        if wasm_file is not None:
            if transforms is not None or transforms_line:
                conflict("--wasm-file <WASM_FILE>", "--transforms <TRANSFORMS>")
            specs = [ModuleSpec(unpack_wasm(wasm_file.read_bytes(), wasm_file.name),
                                Params(smi.parse_params(params or []), lookback), name=wasm_file.name)]
        else:
            if params:
                conflict("--params <PARAMS>", "--transforms <TRANSFORMS>")
            chain = smi.transforms_from_lines(transforms_line) if transforms_line else \
                smi.transforms_from_file(transforms)  # type: ignore[arg-type]
            names = [c.wasm.name for c in chain]  # type: ignore[union-attr]
            wasms = with_admin(cluster, profile, lambda admin: _fetch_all(admin, names))
            specs = [ModuleSpec(w, Params(c.params.inner, lookback or c.params.lookback), name=n)
                     for w, c, n in zip(wasms, chain, names, strict=True)]
        k = key.encode() if key is not None else None
        if text is not None:
            values = [text.encode()]
        elif stdin:
            values = [sys.stdin.buffer.readline().rstrip(b"\n")]
        elif raw:
            values = [file.read_bytes()]  # type: ignore[union-attr]
        else:
            values = file.read_bytes().splitlines()  # type: ignore[union-attr]
        history = [(None, r.encode()) for r in (record or [])]
        if lookback_last is not None:
            history = history[len(history) - lookback_last:] if lookback_last else []
        output = run_records(specs, [(k, v) for v in values], look_back=history)
        if verbose:
            out.print(f"{len(output.successes)} records outputted", markup=False)
        for r in output.successes:
            value = r.value.decode("utf-8", errors="replace")
            if key_value:
                shown = "null" if r.key is None else r.key.decode("utf-8", errors="replace")
                sys.stdout.write(f"[{shown}] {value}\n")
            else:
                sys.stdout.write(value + "\n")
        if output.error is not None:
            e = output.error
            raise SmartModuleRuntimeError(e.hint, e.offset, e.kind, e.record_key, e.record_value)


async def _fetch_all(admin: Admin, names: Sequence[str]) -> list[bytes]:
    from fluvial.errors import SmartModuleNotFound

    out = []
    for n in names:
        try:
            out.append(await admin.smartmodule_wasm(n))
        except SmartModuleNotFound:
            fail(f"smartmodule {n} not found")        # fluvio-cli-common/src/smartmodule.rs: build_chain
    return out
