"""One error table for all of fluvial.

* `ErrorCode` is Fluvio's wire error table (`reference/fluvio-wire.md` §12): tag, name, and the text the
  Rust client shows.
* Every failure fluvial raises derives from `FluvialError` and carries its data as attributes; each class
  names the `ErrorCode` a client receives for it.
* `RETRY_POLICY` says, per code, whether a client should retry and whether it must refresh metadata first.
"""

from __future__ import annotations

import enum
import errno as errno_mod
from dataclasses import dataclass


class ErrorCode(enum.IntEnum):
    """Fluvio `ErrorCode` tags (i16 on the wire)."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    OTHER = 2
    NOT_LEADER_FOR_PARTITION = 6
    REQUEST_TIMED_OUT = 7
    MESSAGE_TOO_LARGE = 10
    PERMISSION_DENIED = 13
    STORAGE_ERROR = 56
    INVALID_CREATE_REQUEST = 60
    INVALID_DELETE_REQUEST = 61
    OFFSET_EVICTED = 71
    PARTITION_FULL = 72
    PARTITION_SHORT_CIRCUITED = 73
    SPU_ERROR = 1000
    SPU_REGISTRATION_FAILED = 1001
    SPU_OFFLINE = 1002
    SPU_NOT_FOUND = 1003
    SPU_ALREADY_EXISTS = 1004
    TOPIC_ERROR = 2000
    TOPIC_NOT_FOUND = 2001
    TOPIC_ALREADY_EXISTS = 2002
    TOPIC_PENDING_INITIALIZATION = 2003
    TOPIC_INVALID_CONFIGURATION = 2004
    TOPIC_NOT_PROVISIONED = 2005
    TOPIC_INVALID_NAME = 2006
    TOPIC_DELETED = 2007
    TOPIC_INVALID_REPLICA_TYPE = 2008
    PARTITION_PENDING_INITIALIZATION = 3000
    PARTITION_NOT_LEADER = 3001
    FETCH_SESSION_NOT_FOUND = 3002
    OFFSET_FLUSH_REQUEST_ERROR = 3003
    OFFSET_MANAGEMENT_DISABLED = 3004
    MAX_RETRY_REACHED = 3005
    MANAGED_CONNECTOR_ERROR = 5000
    MANAGED_CONNECTOR_NOT_FOUND = 5001
    MANAGED_CONNECTOR_ALREADY_EXISTS = 5002
    SMART_MODULE_ERROR = 6000
    SMART_MODULE_NOT_FOUND = 6001
    SMART_MODULE_INVALID = 6002
    SMART_MODULE_INVALID_EXPORTS = 6003
    SMART_MODULE_RUNTIME_ERROR = 6004
    SMART_MODULE_CHAIN_INIT_ERROR = 6005
    SMART_MODULE_INIT_ERROR = 6006
    SMART_MODULE_LOOK_BACK_ERROR = 6007
    SMART_MODULE_MEMORY_LIMIT_EXCEEDED = 6008
    TABLE_FORMAT_ERROR = 7000
    TABLE_FORMAT_NOT_FOUND = 7001
    TABLE_FORMAT_ALREADY_EXISTS = 7002
    DERIVED_STREAM_OBJECT_ERROR = 8000
    DERIVED_STREAM_NOT_FOUND = 8001
    DERIVED_STREAM_JOIN_FETCH_ERROR = 8002
    DERIVED_STREAM_INVALID = 8003
    COMPRESSION_ERROR = 9000
    DEDUPLICATION_SMART_MODULE_NOT_LOADED = 10000
    DEDUPLICATION_SMART_MODULE_NAME_INVALID = 10001
    MIRROR_NOT_FOUND = 11001
    MIRROR_ALREADY_EXISTS = 11002
    MIRROR_PRODUCE_FROM_HOME = 11003
    MIRROR_DELETE_FROM_REMOTE = 11004
    MIRROR_INVALID_TYPE = 11005
    MIRROR_PRODUCE_FROM_REMOTE_NOT_ALLOWED = 11006
    SYSTEM_SPEC_DELETION_ATTEMPT = 12001
    SYSTEM_SPEC_UPDATING_ATTEMPT = 12002


@dataclass(frozen=True)
class RetryRule:
    """How a client treats an error code: retry it? refresh metadata before retrying? Or (persistent
    errors of one replica) only continue if metadata shows a new leader — never wait them out."""

    retriable: bool
    refresh_metadata: bool
    new_leader_only: bool = False


_FATAL = RetryRule(retriable=False, refresh_metadata=False)

# The one retry table (DESIGN.md §5). Codes not listed are fatal.
RETRY_POLICY: dict[ErrorCode, RetryRule] = {
    ErrorCode.NOT_LEADER_FOR_PARTITION: RetryRule(True, True),
    ErrorCode.PARTITION_NOT_LEADER: RetryRule(True, True),
    ErrorCode.SPU_OFFLINE: RetryRule(True, True),
    ErrorCode.SPU_NOT_FOUND: RetryRule(True, True),
    ErrorCode.PARTITION_FULL: RetryRule(True, True),
    ErrorCode.PARTITION_SHORT_CIRCUITED: RetryRule(True, True),
    # 56: a FAILED replica or corrupt data does not heal by waiting: refresh metadata once, continue on a
    # new leader if there is one, else fail at once (with the replica-health API's cause).
    ErrorCode.STORAGE_ERROR: RetryRule(False, True, new_leader_only=True),
    ErrorCode.REQUEST_TIMED_OUT: RetryRule(True, False),
    ErrorCode.TOPIC_PENDING_INITIALIZATION: RetryRule(True, True),
    ErrorCode.PARTITION_PENDING_INITIALIZATION: RetryRule(True, True),
    ErrorCode.TOPIC_NOT_PROVISIONED: RetryRule(True, True),
}


# fluvial answers some transient conditions with `Other` (2) and a text, because the official client fails
# a whole response on a code it does not know (DESIGN.md §5): fluvial's client retries them by the text.
NOT_ENOUGH_REPLICAS_TEXT = "not enough in-sync replicas"
RETRY_BY_TEXT: dict[tuple[ErrorCode, str], RetryRule] = {
    (ErrorCode.OTHER, NOT_ENOUGH_REPLICAS_TEXT): RetryRule(True, True),   # an ISR shrink or an election
}


def retry_rule(code: ErrorCode | int, message: str = "") -> RetryRule:
    """The retry rule for a wire code (and, for `Other`, its text); unknown and unlisted codes are fatal."""
    try:
        code = ErrorCode(code)
    except ValueError:
        return _FATAL
    for (c, prefix), rule in RETRY_BY_TEXT.items():
        if c is code and message.startswith(prefix):
            return rule
    return RETRY_POLICY.get(code, _FATAL)


class ErrnoClass(enum.Enum):
    """What an OS error while writing means for a replica (DESIGN.md §4)."""

    SPACE = "space"              # transient: no space; FULL until space returns; 72
    TRANSIENT = "transient"      # transient: nothing is wrong with the disk; no state change; retried
    PERSISTENT = "persistent"    # the disk or the file is broken: FAILED; 56


# The one errno table. Anything not listed is persistent; a failed fsync is always persistent (its dirty
# pages may be gone, so it is never retried), whatever its errno.
ERRNO_CLASSES: dict[int, ErrnoClass] = {
    errno_mod.ENOSPC: ErrnoClass.SPACE,
    errno_mod.EDQUOT: ErrnoClass.SPACE,
    errno_mod.EMFILE: ErrnoClass.TRANSIENT,     # this process is out of file descriptors
    errno_mod.ENFILE: ErrnoClass.TRANSIENT,     # the system is out of file descriptors
    errno_mod.ENOMEM: ErrnoClass.TRANSIENT,     # the kernel could not allocate memory now
    errno_mod.EAGAIN: ErrnoClass.TRANSIENT,     # try again (== EWOULDBLOCK)
    errno_mod.EINTR: ErrnoClass.TRANSIENT,      # interrupted (Python retries it; listed for completeness)
}


def errno_class(number: int | None, during: str = "write") -> ErrnoClass:
    """Pure: the class of an OS error raised while doing `during` (fsync: always persistent)."""
    if during == "fsync":
        return ErrnoClass.PERSISTENT
    return ERRNO_CLASSES.get(number or 0, ErrnoClass.PERSISTENT)


def errno_name(number: int | None) -> str:
    """`ENOSPC` for 28; `errno=N` for a number without a name."""
    return errno_mod.errorcode.get(number or 0, f"errno={number}")


class FluvialError(Exception):
    """Root of every error fluvial raises on purpose."""

    code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR

    @property
    def retry(self) -> RetryRule:
        return retry_rule(self.code)


# --------------------------------------------------------------------------------------------- protocol


class ProtocolError(FluvialError):
    """Bytes that do not decode: malformed frame, bad length, unknown key or version."""

    code = ErrorCode.OTHER


# ------------------------------------------------------------------------------------- batch validation


class InvalidBatch(FluvialError):
    """A produced record batch is malformed (bad CRC, bad length, empty, bad magic). Replica untouched."""

    code = ErrorCode.OTHER

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid record batch: {reason}")
        self.reason = reason


class EmptyBatch(InvalidBatch):
    """A batch with no records (`last_offset_delta < 0`). Never disables the partition."""

    def __init__(self) -> None:
        super().__init__("batch has no records")


class BatchTooLarge(FluvialError):
    """A batch larger than the segment or the per-batch limit."""

    code = ErrorCode.MESSAGE_TOO_LARGE

    def __init__(self, size: int, limit: int, limit_name: str) -> None:
        super().__init__(f"record batch of {size} bytes exceeds {limit_name} ({limit} bytes)")
        self.size = size
        self.limit = limit
        self.limit_name = limit_name


class RecordTooLarge(BatchTooLarge):
    """A record (or the batch it would make) the producer refuses locally, at once and never retried: it
    cannot fit the per-batch limit, and a larger request would break the frame limit (and the connection
    every other request shares)."""

    def __init__(self, size: int, limit: int, what: str = "record (key + value)",
                 limit_name: str = "the producer's max batch size") -> None:
        FluvialError.__init__(self, f"{what} of {size} bytes exceeds {limit_name} ({limit} bytes): not sent")
        self.size = size
        self.limit = limit
        self.limit_name = limit_name

    @classmethod
    def request(cls, size: int, limit: int) -> RecordTooLarge:
        """Fluvio's text (`producer/error.rs:12` of v0.17.3), with the limit where Fluvio prints the size
        twice (its format string repeats `{0}`)."""
        e = cls(size, limit, limit_name="the max request size")
        FluvialError.__init__(e, f"record size ({size} bytes), exceeded maximum request size ({limit} bytes)")
        return e


class UnknownCompression(FluvialError):
    """Compression bits 5-7 in a batch's attributes."""

    code = ErrorCode.COMPRESSION_ERROR

    def __init__(self, bits: int) -> None:
        super().__init__(f"unknown compression code {bits} in batch attributes")
        self.bits = bits


# ---------------------------------------------------------------------------------- idempotent producer
# Fluvio has no codes for these: they travel as `Other` with a message that starts with the class name.
# Both are fatal for the batch (retrying the same bytes cannot succeed), so `Other` stays out of the
# retry table.


class OutOfOrderSequence(FluvialError):
    """A batch of an idempotent producer whose sequence is neither the next one nor an exact retry of a
    remembered batch (a gap, or an old batch no longer remembered). Nothing was written."""

    code = ErrorCode.OTHER

    def __init__(self, producer_id: int, epoch: int, first_sequence: int, expected: int, reason: str) -> None:
        super().__init__(f"OutOfOrderSequence: producer {producer_id} epoch {epoch} sent first_sequence "
                         f"{first_sequence}, expected {expected} ({reason})")
        self.producer_id = producer_id
        self.epoch = epoch
        self.first_sequence = first_sequence
        self.expected = expected
        self.reason = reason


class ProducerFenced(FluvialError):
    """A batch carrying an older epoch than the replica has seen for its producer id. Nothing was written."""

    code = ErrorCode.OTHER

    def __init__(self, producer_id: int, epoch: int, current_epoch: int) -> None:
        super().__init__(f"ProducerFenced: producer {producer_id} epoch {epoch} is older than epoch {current_epoch}")
        self.producer_id = producer_id
        self.epoch = epoch
        self.current_epoch = current_epoch


# ------------------------------------------------------------------------------------------- reading


class OffsetEvicted(FluvialError):
    """Read below the log start: retention removed that offset."""

    code = ErrorCode.OFFSET_EVICTED

    def __init__(self, offset: int, next_available: int) -> None:
        super().__init__(f"Offset {offset} is evicted. The next available is {next_available}")
        self.offset = offset
        self.next_available = next_available


class OffsetBeyondEnd(FluvialError):
    """Read starting after the log end offset (Fluvio answers `Other` with this exact text)."""

    code = ErrorCode.OTHER

    def __init__(self, offset: int, leo: int) -> None:
        super().__init__(f"start offset: {offset} is greater than leo: {leo}")
        self.offset = offset
        self.leo = leo


class OffsetOutOfRange(FluvialError):
    code = ErrorCode.OFFSET_OUT_OF_RANGE


# ------------------------------------------------------------------------------------------- storage


class StorageError(FluvialError):
    """Root of storage-side failures; carries the replica and data dir when known."""

    code = ErrorCode.STORAGE_ERROR

    def __init__(self, message: str, *, replica: str = "", data_dir: str = "") -> None:
        super().__init__(message)
        self.replica = replica
        self.data_dir = data_dir


class StorageFull(StorageError):
    """Transient: not enough free space (headroom below the reserve, or ENOSPC/EDQUOT). No bytes kept."""

    code = ErrorCode.PARTITION_FULL

    def __init__(
        self, *, replica: str = "", data_dir: str = "", free_bytes: int = 0, threshold_bytes: int = 0,
        cause: str = "headroom",
    ) -> None:
        if cause == "headroom":
            message = (f"partition storage is full: {free_bytes} bytes free in {data_dir or '?'}, "
                       f"a write needs {threshold_bytes} bytes free")
        else:
            message = f"partition storage is full: {cause} in {data_dir or '?'}"
        super().__init__(message, replica=replica, data_dir=data_dir)
        self.free_bytes = free_bytes
        self.threshold_bytes = threshold_bytes
        self.cause = cause


class StorageBusy(StorageError):
    """Transient and not about space: the process or the system ran out of file descriptors or memory
    (EMFILE, ENFILE, ENOMEM, EAGAIN). Nothing was kept, the replica's state is unchanged; retry."""

    code = ErrorCode.REQUEST_TIMED_OUT

    def __init__(self, message: str, *, replica: str = "", data_dir: str = "", errno: int | None = None) -> None:
        super().__init__(message, replica=replica, data_dir=data_dir)
        self.errno = errno


class StorageFailed(StorageError):
    """Persistent: EIO, EROFS, fsync failure or another OS error. The replica takes no more writes."""

    code = ErrorCode.STORAGE_ERROR

    def __init__(self, message: str, *, replica: str = "", data_dir: str = "", errno: int | None = None) -> None:
        super().__init__(message, replica=replica, data_dir=data_dir)
        self.errno = errno


class CorruptData(StorageError):
    """Stored bytes that fail verification (CRC, framing, offsets). Reported with file and position."""

    code = ErrorCode.STORAGE_ERROR

    def __init__(self, path: str, position: int, reason: str, *, replica: str = "") -> None:
        super().__init__(f"corrupt data in {path} at byte {position}: {reason}", replica=replica)
        self.path = path
        self.position = position
        self.reason = reason


class InvalidConfig(FluvialError):
    """A configuration value out of range or malformed."""

    code = ErrorCode.TOPIC_INVALID_CONFIGURATION


class MetadataUnavailable(FluvialError):
    """The SC could not write its metadata store (disk full, I/O error). Liveness is kept in memory; a
    metadata change asked for by a client is refused with this text and succeeds once space returns."""

    code = ErrorCode.OTHER


# ------------------------------------------------------------------------------------------- client


class ServerError(FluvialError):
    """An error code a server answered with, as fluvial's client raises it (the code decides retries)."""

    def __init__(self, code: ErrorCode, message: str = "", *, topic: str = "", partition: int = -1,
                 spu_id: int = -1) -> None:
        where = f" ({topic}/{partition})" if topic else ""
        super().__init__(f"{message or code.name}{where}")
        self.code = code
        self.topic = topic
        self.partition = partition
        self.spu_id = spu_id          # the SPU that answered, when known
        self.server_message = message

    @property
    def retry(self) -> RetryRule:
        return retry_rule(self.code, self.server_message)


class ProducerClosed(FluvialError):
    """The producer was closed before the record was delivered."""

    code = ErrorCode.OTHER


# ---------------------------------------------------------------------------------- admin (SC Status)
# Create/Delete answer a `Status` (code + optional message); fluvial's Admin raises these for it.

_ADMIN_TEXT: dict[ErrorCode, str] = {           # the Rust client's text when the SC sends no message
    ErrorCode.INVALID_CREATE_REQUEST: "invalid create request",
    ErrorCode.INVALID_DELETE_REQUEST: "invalid Delete request",
    ErrorCode.TOPIC_ERROR: "a topic error occurred",
    ErrorCode.TOPIC_NOT_FOUND: "the topic was not found",
    ErrorCode.TOPIC_ALREADY_EXISTS: "the topic already exists",
    ErrorCode.TOPIC_INVALID_CONFIGURATION: "the topic configuration is invalid",
    ErrorCode.TOPIC_NOT_PROVISIONED: "the topic is not provisioned",
    ErrorCode.TOPIC_INVALID_NAME: "the topic name is invalid",
    ErrorCode.PERMISSION_DENIED: "permission denied",
}


# How the Rust client's `ApiError` displays these codes, whatever message the SC sent
# (`crates/fluvio-sc-schema/src/lib.rs:48-76` of v0.17.3): what `fluvio` prints for them.
API_ERROR_TEXT: dict[ErrorCode, str] = {
    ErrorCode.TOPIC_ALREADY_EXISTS: "Topic already exists",
    ErrorCode.TOPIC_NOT_FOUND: "Topic not found",
    ErrorCode.SMART_MODULE_NOT_FOUND: "SmartModule not found",
    ErrorCode.TOPIC_INVALID_NAME: "Invalid topic name: topic name may only include lowercase letters (a-z), "
                                  "numbers (0-9), and hyphens (-).",
    ErrorCode.TABLE_FORMAT_ALREADY_EXISTS: "TableFormat already exists",
    ErrorCode.TABLE_FORMAT_NOT_FOUND: "TableFormat not found",
}


class AdminError(FluvialError):
    """The SC refused an admin request. Carries the code, the object's kind and name, and the SC's message
    (or the Rust client's text for the code when the SC sent none)."""

    def __init__(self, code: ErrorCode, name: str, message: str | None = None, *, kind: str = "topic") -> None:
        text = message or _ADMIN_TEXT.get(code) or code.name.lower().replace("_", " ")
        quoted = f"'{name}'" in text or f'"{name}"' in text
        super().__init__(text if not name or quoted else f'{kind} "{name}": {text}')
        self.code = code
        self.name = name
        self.kind = kind
        self.message = text

    @property
    def fluvio_text(self) -> str:
        """What `fluvio` prints for this refusal (`API_ERROR_TEXT`, else the SC's message)."""
        return API_ERROR_TEXT.get(self.code, self.message)


class TopicAlreadyExists(AdminError):
    code = ErrorCode.TOPIC_ALREADY_EXISTS


class TopicNotFound(AdminError):
    code = ErrorCode.TOPIC_NOT_FOUND


class InvalidTopicName(AdminError):
    code = ErrorCode.TOPIC_INVALID_NAME


class InvalidTopicConfig(AdminError):
    code = ErrorCode.TOPIC_INVALID_CONFIGURATION


class TopicNotProvisioned(AdminError):
    code = ErrorCode.TOPIC_NOT_PROVISIONED


ADMIN_ERRORS: dict[ErrorCode, type[AdminError]] = {
    cls.code: cls for cls in (TopicAlreadyExists, TopicNotFound, InvalidTopicName, InvalidTopicConfig,
                              TopicNotProvisioned)
}


def admin_error(code: ErrorCode | int, name: str, message: str | None = None, *, kind: str = "topic") -> AdminError:
    """The typed exception for a Status code (`AdminError` itself for codes without a class)."""
    try:
        code = ErrorCode(code)
    except ValueError:
        return AdminError(ErrorCode.UNKNOWN_SERVER_ERROR, name, message or f"unknown error code {code}", kind=kind)
    return ADMIN_ERRORS.get(code, AdminError)(code, name, message, kind=kind)


class ProfileError(FluvialError):
    """The Fluvio profile file is unreadable, or names a profile or cluster that is not in it."""

    code = ErrorCode.OTHER


# ------------------------------------------------------------------------------------------ SmartModules
# Fluvio's codes and texts (reference fluvio-smartmodules.md §3.1/§3.4; crates/fluvio-protocol/src/link/
# error_code.rs and link/smartmodule.rs @v0.17.3). str() of each is the Display text the official client
# shows. Each converts to its WireError (`WireError.from_exception`) and back (`smartmodule_error`).


class SmartModuleError(FluvialError):
    """Root of the SmartModule failures; `wire_payload()` is the payload its code carries."""

    code = ErrorCode.SMART_MODULE_ERROR

    def wire_payload(self) -> tuple[object, ...]:
        return ()


class SmartModuleNotFound(SmartModuleError):
    code = ErrorCode.SMART_MODULE_NOT_FOUND

    def __init__(self, name: str) -> None:
        super().__init__(f"SmartModule {name} was not found")
        self.name = name

    def wire_payload(self) -> tuple[object, ...]:
        return (self.name,)


class SmartModuleInvalid(SmartModuleError):
    """The wasm payload is not gzip (nor raw wasm), or does not gunzip."""

    code = ErrorCode.SMART_MODULE_INVALID

    def __init__(self, error: str, name: str | None = None) -> None:
        super().__init__(f"SmartModule is invalid: {error}")
        self.error = error
        self.name = name

    def wire_payload(self) -> tuple[object, ...]:
        return (self.error, self.name)


# SmartModuleTransformRuntimeError.kind: the link enum (link/smartmodule.rs), not the request's kind tags
SMARTMODULE_ERROR_KINDS = ("Filter", "Map", "ArrayMap", "Aggregate", "FilterMap", "Join", "Generic")


def _record_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary: {len(data)} bytes"


class SmartModuleRuntimeError(SmartModuleError):
    """A record the module rejected (its output's error): sent with the records before it; the stream
    goes on."""

    code = ErrorCode.SMART_MODULE_RUNTIME_ERROR

    def __init__(self, hint: str, offset: int, kind: int, record_key: bytes | None, record_value: bytes) -> None:
        kind_name = SMARTMODULE_ERROR_KINDS[kind] if 0 <= kind < len(SMARTMODULE_ERROR_KINDS) else str(kind)
        key = "NULL" if record_key is None else _record_text(record_key)
        super().__init__(f"SmartModule transform error {hint}\n\nSmartModule Info: \n    Type: {kind_name}\n"
                         f"    Offset: {offset}\n    Key: {key}\n    Value: {_record_text(record_value)}")
        self.hint = hint
        self.offset = offset
        self.kind = kind
        self.record_key = record_key
        self.record_value = record_value

    def wire_payload(self) -> tuple[object, ...]:
        return (self.hint, self.offset, self.kind, self.record_key, self.record_value)


class SmartModuleChainInitError(SmartModuleError):
    """A module that does not compile or instantiate, has no known export, or whose init failed."""

    code = ErrorCode.SMART_MODULE_CHAIN_INIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(f"Error initializing {message} SmartModule Chain")
        self.message = message

    def wire_payload(self) -> tuple[object, ...]:
        return (self.message,)


class SmartModuleLookBackError(SmartModuleError):
    code = ErrorCode.SMART_MODULE_LOOK_BACK_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(f"SmartModule look_back error: {message}")
        self.message = message

    def wire_payload(self) -> tuple[object, ...]:
        return (self.message,)


class SmartModuleMemoryLimitExceeded(SmartModuleError):
    """The memory cap was hit while the chain was built (instantiate or init)."""

    code = ErrorCode.SMART_MODULE_MEMORY_LIMIT_EXCEEDED

    def __init__(self, requested: int, max: int) -> None:
        super().__init__(f"SmartModule memory limit exceeded: requested {requested} bytes, max allowed {max} bytes")
        self.requested = requested
        self.max = max

    def wire_payload(self) -> tuple[object, ...]:
        return (self.requested, self.max)


SMARTMODULE_FAILED_PREFIX = "SmartModule err "


class SmartModuleFailed(SmartModuleError):
    """The module failed mid-stream — a trap, a negative status, its CPU budget or memory cap — and the
    stream ends: `Other("SmartModule err …")` on the wire (Fluvio's stream_fetch.rs:418-420)."""

    code = ErrorCode.OTHER

    def __init__(self, cause: str) -> None:
        self.message = cause if cause.startswith(SMARTMODULE_FAILED_PREFIX) else SMARTMODULE_FAILED_PREFIX + cause
        super().__init__(f"Other error: {self.message}")
        self.cause = self.message[len(SMARTMODULE_FAILED_PREFIX):]

    def wire_payload(self) -> tuple[object, ...]:
        return (self.message,)


_SMARTMODULE_ERRORS: dict[ErrorCode, type[SmartModuleError]] = {
    cls.code: cls for cls in (SmartModuleNotFound, SmartModuleInvalid, SmartModuleRuntimeError,
                              SmartModuleChainInitError, SmartModuleLookBackError, SmartModuleMemoryLimitExceeded)
}


def is_smartmodule_code(code: ErrorCode, message: str = "") -> bool:
    """Whether a received code (and, for `Other`, its text) is a SmartModule failure."""
    if code is ErrorCode.OTHER:
        return message.startswith(SMARTMODULE_FAILED_PREFIX)
    return ErrorCode.SMART_MODULE_ERROR <= code <= ErrorCode.SMART_MODULE_MEMORY_LIMIT_EXCEEDED


def smartmodule_error(wire: object) -> SmartModuleError:
    """The typed exception for a received SmartModule WireError (codes 6000-6008, or `Other` whose text
    starts with "SmartModule err "): the one conversion from the wire."""
    code = wire.code                                   # type: ignore[attr-defined]
    payload = tuple(wire.payload)                      # type: ignore[attr-defined]
    if code is ErrorCode.OTHER:
        return SmartModuleFailed(str(payload[0]) if payload else "")
    cls = _SMARTMODULE_ERRORS.get(code)
    if cls is not None:
        return cls(*payload)                           # type: ignore[arg-type]
    err = SmartModuleError(f"{code.name}{list(payload) if payload else ''}")
    err.code = code
    return err
