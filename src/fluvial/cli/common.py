"""What every client command of the CLI shares: which cluster to talk to, running an async client call
with errors turned into one line, output formats, and the units of `fluvio`'s flags.

    @app.command("list")
    def list_(cluster: ClusterOpt = None, profile: ProfileOpt = None, output: OutputOpt = "table") -> None:
        topics = with_admin(cluster, profile, lambda admin: admin.list_topics())
        emit(output, [to_doc(t) for t in topics], lambda: render_table(HEADER, rows(topics)), "No topics found")

Endpoint: `-c/--cluster HOST:PORT`, else `-P/--profile NAME`, else the current profile of the Fluvio
profile file (`$FLV_PROFILE_PATH`, else `~/.fluvio/config`), else 127.0.0.1:9003.

Errors, as `fluvio` v0.17.3 reports them (`crates/fluvio-cli/src/bin/main.rs:17-20`: `eprintln!("{e}")`,
exit 1): `run` / `errors_to_exit` turn every FluvialError (SC refusals, connection failures, timeouts,
profile problems), OSError and anything unexpected into ONE bare line `<message>` on stderr and exit 1;
never a traceback (set FLUVIAL_TRACEBACK=1 to see one). Usage errors (bad flags, missing arguments,
conflicting options) are clap's: `error: …` lines, the usage, exit 2 (`usage_error`, `ClapTyper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import math
import os
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fluvial import defaults as d
from fluvial.client import profile as profiles
from fluvial.client.admin import Admin
from fluvial.client.connect import DEFAULT_ENDPOINT, parse_endpoint
from fluvial.errors import AdminError, FluvialError, InvalidConfig

T = TypeVar("T")

CLI_TIMEOUT_SECONDS = d.CLI_CALL_TIMEOUT_SECONDS
EXIT_ERROR = 1
EXIT_USAGE = 2              # clap's exit code for a usage error
EXIT_INTERRUPTED = 130

# -------------------------------------------------------------------------------------------- consoles


def _stdout_console() -> Console:
    # Piped output is for scripts: never wrap or cut table rows at 80 columns.
    c = Console(highlight=False)
    return c if c.is_terminal else Console(highlight=False, width=100_000, no_color=True)


out = _stdout_console()
err = Console(stderr=True, soft_wrap=True, highlight=False)


def one_line(message: str) -> str:
    return " ".join(message.split())


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print MESSAGE (one bare line, as `fluvio` prints a runtime error) on stderr and exit with `code`."""
    sys.stderr.write(one_line(message) + "\n")
    sys.stderr.flush()
    raise typer.Exit(code)


class UsageProblem(Exception):
    """A usage error found after parsing (e.g. two options that conflict): printed as clap prints one,
    exit 2. `usage_error(ctx, text)` raises it with the command's usage attached."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


def usage_error(message: str) -> NoReturn:
    """Raise a clap-style usage error for the running command (exit 2)."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    raise UsageProblem(message, ctx.get_usage() if ctx is not None else None)


def conflict(first: str, second: str) -> NoReturn:
    """clap's text for two arguments that cannot go together (clap 4 `ErrorKind::ArgumentConflict`)."""
    usage_error(f"the argument '{first}' cannot be used with '{second}'")


def clap_usage_text(message: str, usage: str | None) -> str:
    """clap 4's layout of a usage error: `error: …`, a blank line, `Usage: …`, a blank line, the hint."""
    lines = [f"error: {message}", ""]
    if usage:
        lines += [usage.replace("Usage: ", "Usage: ", 1).rstrip(), ""]
    lines.append("For more information, try '--help'.")
    return "\n".join(lines) + "\n"


def _message(e: BaseException) -> str:
    if isinstance(e, AdminError):           # the Rust client's texts: "Topic not found", ...
        return e.fluvio_text
    text = str(e)
    if isinstance(e, FluvialError | ValueError | typer.BadParameter):      # bad input says what is wrong
        return text or type(e).__name__
    if isinstance(e, TimeoutError):
        return f"timed out{': ' + text if text else ''}"
    if isinstance(e, OSError):
        return text or type(e).__name__
    return f"unexpected {type(e).__name__}{': ' + text if text else ''}"


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Any error inside becomes one `error: …` line and exit code 1 (typer.Exit passes through)."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit, UsageProblem):
        raise
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as e:
        if os.environ.get("FLUVIAL_TRACEBACK"):
            raise
        fail(_message(e))


def _clap_message(e: Exception) -> str:
    """click's usage errors in clap 4's words where they differ."""
    from typer._click import exceptions as ce

    if isinstance(e, ce.NoSuchOption):
        return f"unexpected argument '{e.option_name}' found"
    if isinstance(e, ce.MissingParameter) and e.param is not None:
        hint = e.param.get_error_hint().strip("'")
        if getattr(e.param, "param_type_name", "") == "argument":
            return f"the following required arguments were not provided:\n  <{hint.strip('{}')}>"
        return f"the following required arguments were not provided:\n  {hint} <{(e.param.name or '').upper()}>"
    if isinstance(e, ce.BadParameter):
        hint = e.param.get_error_hint() if e.param is not None else (e.param_hint or "")
        hint = hint if isinstance(hint, str) else "/".join(hint)
        return f"invalid value for {hint}: {e.message}" if hint else f"invalid value: {e.message}"
    message = e.format_message() if isinstance(e, ce.ClickException) else str(e)
    if message.startswith("Got unexpected extra argument"):
        extra = message[message.find("(") + 1:message.rfind(")")]
        return f"unexpected argument '{extra}' found"
    return message


class ClapTyper(typer.Typer):
    """The root app: usage errors as clap prints them (`error: …`, the usage, a hint; exit 2) instead of
    typer's boxed panel; everything else as typer does."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from typer._click import exceptions as ce

        kwargs.setdefault("standalone_mode", False)
        try:
            rv = super().__call__(*args, **kwargs)
        except ce.NoArgsIsHelpError as e:       # clap's `arg_required_else_help`: the help, exit 2; but
            e.show()                            # `fluvio` alone prints its help and exits 0 (bin/main.rs:25-38)
            sys.exit(0 if e.ctx.parent is None else EXIT_USAGE)
        except ce.UsageError as e:
            usage = e.ctx.get_usage() if e.ctx is not None else None
            sys.stderr.write(clap_usage_text(_clap_message(e), usage))
            sys.exit(EXIT_USAGE)
        except UsageProblem as e:
            sys.stderr.write(clap_usage_text(str(e), e.usage))
            sys.exit(EXIT_USAGE)
        except ce.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except typer.Abort:
            sys.stderr.write("Aborted!\n")
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run an async client call to completion; errors become one line and a non-zero exit."""
    with errors_to_exit():
        return asyncio.run(coro)
    raise AssertionError("unreachable")  # pragma: no cover - errors_to_exit exits


# -------------------------------------------------------------------------------------------- endpoint

ClusterOpt = Annotated[str | None, typer.Option(
    "-c", "--cluster", metavar="HOST:PORT",
    help="Address of the SC (default: the current profile's, else 127.0.0.1:9003).")]
ProfileOpt = Annotated[str | None, typer.Option(
    "-P", "--profile", metavar="NAME", help="Use this profile of the Fluvio profile file.")]


# `fluvio -c HOST:PORT topic list`: fluvio's ClusterTarget sits before the subcommand
# (`crates/fluvio-cli/src/lib.rs:88-110`, `fluvio-extension-common/src/lib.rs:118-121` of v0.17.3); the
# root command stores it here and every subcommand uses it unless it names its own.
ROOT_TARGET: dict[str, str | None] = {"cluster": None, "profile": None}


def resolve_endpoint(cluster: str | None = None, profile: str | None = None,
                     profile_file: Path | None = None) -> tuple[str, int]:
    """The SC to talk to: explicit address, else the named profile, else the current profile, else the
    local default (a subcommand's own -c/-P first, then the root's)."""
    if not cluster and not profile:
        cluster, profile = ROOT_TARGET["cluster"], ROOT_TARGET["profile"]
    if cluster and profile:
        raise InvalidConfig("give either --cluster or --profile, not both")
    if cluster:
        return parse_endpoint(cluster)
    if profile:
        return parse_endpoint(profiles.profile_endpoint(profile, profile_file))
    return parse_endpoint(profiles.current_endpoint(profile_file) or DEFAULT_ENDPOINT)


def with_admin(cluster: str | None, profile: str | None, call: Callable[[Admin], Awaitable[T]],
               *, timeout: float = CLI_TIMEOUT_SECONDS) -> T:
    """Connect an Admin to the resolved SC, run `call(admin)`, close; errors -> one line, exit 1."""

    async def main() -> T:
        host, port = resolve_endpoint(cluster, profile)
        async with await Admin.connect(host, port, timeout=timeout) as admin:
            return await call(admin)

    return run(main())


def with_client(cluster: str | None, profile: str | None, call: Callable[[Any], Awaitable[T]],
                *, timeout: float = CLI_TIMEOUT_SECONDS) -> T:
    """Connect a `Fluvial` client (metadata and SPUs) to the resolved SC, run `call(client)`, close;
    errors -> one line, exit 1."""
    from fluvial.client.connect import Fluvial

    async def main() -> T:
        host, port = resolve_endpoint(cluster, profile)
        client = await Fluvial.connect(f"{host}:{port}", client_id="fluvial-cli", timeout=timeout)
        try:
            return await call(client)
        finally:
            await client.close()

    return run(main())


# ---------------------------------------------------------------------------------------------- output


OUTPUT_FORMATS: tuple[str, ...] = ("table", "json", "yaml")


def _check_output(value: str) -> str:
    if value not in OUTPUT_FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    return value


def choice(names: Sequence[str], what: str, *, fold_case: bool = True) -> Callable[[str | None], str | None]:
    """A typer callback: a value outside `names` is a usage error (exit 2), as clap's value parsers."""

    def check(value: str | None) -> str | None:
        if value is not None and (value.lower() if fold_case else value) not in names:
            raise typer.BadParameter(f"invalid {what} '{value}': one of {', '.join(names)}")
        return value

    return check


OutputOpt = Annotated[str, typer.Option(
    "-O", "--output", metavar="|".join(OUTPUT_FORMATS), callback=_check_output,
    help=f"Output format: {', '.join(OUTPUT_FORMATS)}.")]


def label(value: enum.Enum) -> str:
    """An enum member as a lower-case label for JSON (`OUT_OF_STORAGE` -> "out_of_storage")."""
    return value.name.lower()


def to_doc(value: Any) -> Any:
    """A typed result as plain JSON data: dataclass fields and properties-free, enums as labels, tuples
    as lists, dict keys as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_doc(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return label(value)
    if isinstance(value, list | tuple):
        return [to_doc(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_doc(v) for k, v in value.items()}
    return value


def dumps_json(doc: Any) -> str:
    return json.dumps(doc, indent=2)


def render_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A borderless table, like `fluvio`'s (comfy-table preset NOTHING)."""
    table = Table(*header, box=None, show_edge=False, pad_edge=False, header_style="bold",
                  padding=(0, 2, 0, 0))
    for row in rows:
        table.add_row(*(Text(str(c)) for c in row))
    return table


def emit(fmt: str, doc: Any, table: Callable[[], Table | str], empty_message: str | None = None,
         *, empty: bool = False) -> None:
    """Print `doc` as JSON/YAML, or the table (or `empty_message` when `empty`) for humans."""
    if fmt == "json":
        sys.stdout.write(dumps_json(doc) + "\n")
    elif fmt == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    elif empty and empty_message is not None:
        out.print(empty_message, markup=False)
    else:
        t = table()
        with out.capture() as captured:
            out.print(t, markup=False) if isinstance(t, str) else out.print(t)
        # rich pads every cell, the last one too: drop the trailing blanks
        sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def emit_objects(fmt: str, label: str, objects: Sequence[Any], table: Callable[[], Table | str],
                 empty_message: str) -> None:
    """A list of SC objects as `fluvio` prints one: JSON/YAML of `Metadata<S>` in fluvio's serde shape
    (`serde_shape`), or the table; `empty_message` alone when there are none, whatever the format (as
    `fluvio`'s `format_response_output` does)."""
    from fluvial.cli import serde_shape

    if not objects:
        out.print(empty_message, markup=False)
    elif fmt in ("json", "yaml"):
        sys.stdout.write(serde_shape.dumps([serde_shape.metadata_doc(label, m) for m in objects], fmt) + "\n")
    else:
        emit("table", None, table)


# ---------------------------------------------------------------------------------------------- units

_SIZE_UNITS = {
    "b": 1,
    "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mi": 2**20, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "ti": 2**40, "tib": 2**40,
    "p": 10**15, "pb": 10**15, "pi": 2**50, "pib": 2**50,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes from `fluvio`'s size syntax (the `bytesize` crate): `2048`, `2 Ki`, `10 MiB`, `1GB`, `1.5mb`.
    K/M/G/T/P(B) are powers of 1000, Ki/Mi/Gi/Ti/Pi(B) powers of 1024; case-insensitive."""
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else ""
    if m is None or (unit not in _SIZE_UNITS and unit != ""):
        raise InvalidConfig(f"invalid size {text!r}: expected a number with an optional unit "
                            f"(B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)")
    return int(float(m.group(1)) * _SIZE_UNITS.get(unit, 1))


_SECONDS_PER = {
    "nanos": 1e-9, "nsec": 1e-9, "ns": 1e-9,
    "usec": 1e-6, "us": 1e-6,
    "millis": 1e-3, "msec": 1e-3, "ms": 1e-3,
    "seconds": 1, "second": 1, "sec": 1, "secs": 1, "s": 1,
    "minutes": 60, "minute": 60, "min": 60, "mins": 60, "m": 60,
    "hours": 3600, "hour": 3600, "hr": 3600, "hrs": 3600, "h": 3600,
    "days": 86400, "day": 86400, "d": 86400,
    "weeks": 604800, "week": 604800, "w": 604800,
    "months": 2_630_016, "month": 2_630_016, "M": 2_630_016,
    "years": 31_557_600, "year": 31_557_600, "y": 31_557_600,
}
_DURATION_ITEM = re.compile(r"\s*(\d+)\s*([A-Za-z]+)")


def parse_duration(text: str) -> int:
    """Whole seconds from `fluvio`'s duration syntax (the `humantime` crate): `1h`, `7d`, `2d 10s`,
    `7 days`, `90min`, `1M` (month), `1y`; rounded down to seconds as `--retention-time` is."""
    return math.floor(parse_seconds(text))


def parse_seconds(text: str) -> float:
    """Seconds, with fractions, from the same syntax (`150ms`, `1s 500ms`): `--linger`, `--delivery-timeout`."""
    pos, total, items = 0, 0.0, 0
    while pos < len(text.rstrip()):
        m = _DURATION_ITEM.match(text, pos)
        if m is None:
            raise InvalidConfig(f"invalid duration {text!r}: expected e.g. 1h, 7d, '2d 10s' (a number needs a unit)")
        unit = m.group(2)
        seconds = _SECONDS_PER.get(unit)          # case-sensitive, as humantime: M is a month, m a minute
        if seconds is None:
            raise InvalidConfig(f"invalid duration {text!r}: unknown time unit {unit!r}")
        total += int(m.group(1)) * seconds
        items += 1
        pos = m.end()
    if items == 0:
        raise InvalidConfig(f"invalid duration {text!r}: expected e.g. 1h, 7d, '2d 10s'")
    return total


def format_duration(seconds: int) -> str:
    """`humantime::format_duration` of whole seconds: 604800 -> "7days", 5400 -> "1h 30m"."""
    if seconds <= 0:
        return "0s"
    years, rest = divmod(seconds, 31_557_600)
    months, rest = divmod(rest, 2_630_016)
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}{'s' if n > 1 else ''}" for n, unit in ((years, "year"), (months, "month"), (days, "day"))
             if n]
    parts += [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return " ".join(parts)


def format_bytes(n: int) -> str:
    """`bytesize::ByteSize` 1.3's display: "512 B", "1.5 KB", "10.0 MB" (powers of 1000)."""
    if n < 1000:
        return f"{n} B"
    exp = min(max(int(math.log(n) / math.log(1000)), 1), 6)
    return f"{n / 1000**exp:.1f} {'KMGTPE'[exp - 1]}B"
