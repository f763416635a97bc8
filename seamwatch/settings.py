"""Settings shared by every role, read from flags and ``SEAMWATCH_*`` environment variables.

A flag given on the command line wins over the environment, which wins over the defaults
named below. Values are validated with pydantic; a bad one stops the command with a message
that names the setting, quotes the value and says what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from seamwatch.user_text import quoted, validation_message

ENV_PREFIX = "SEAMWATCH_"
# Variables read beside the settings: by the detectors (the severity file) and by evaluate.
SEVERITY_FILE_ENV = f"{ENV_PREFIX}SEVERITY_FILE"
EVAL_DATA_DIR_ENV = f"{ENV_PREFIX}EVAL_DATA_DIR"
DEFAULT_DATA_DIR = Path(".seamwatch")
DEFAULT_DATABASE = "seamwatch"
DEFAULT_OTLP_HTTP_PORT = 4318
DEFAULT_OTLP_GRPC_PORT = 4317
DEFAULT_DASHBOARD_PORT = 8501
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024  # the OTLP/HTTP limit most collectors use
# nginx's client_body_timeout; an exporter sends its batch in one go, well within it
DEFAULT_BODY_TIMEOUT_SECONDS = 30.0
# A client sends its request line and headers in one write as it connects; 10 s leaves room for
# a slow network while a client holding connections open with unfinished heads (slowloris) has
# to open each one again every 10 s.
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
# Spans reach the store a few seconds after they end (an SDK exports every 5 s by default;
# the simulator's arrive within 5 s of their minute's end); calls time out after 8 to 10 s.
DEFAULT_EVALUATION_DELAY_SECONDS = 30.0
# An hour at most: an alert held back longer comes too late to act on.
MAX_EVALUATION_DELAY_SECONDS = 3600.0
EVALUATION_DELAY_ENV = f"{ENV_PREFIX}EVALUATION_DELAY_SECONDS"
DEFAULT_BATCH_MAX_SPANS = 40_000
DEFAULT_BATCH_FLUSH_INTERVAL_MILLIS = 200
DEFAULT_MAX_QUEUE_SPANS = 400_000
DEFAULT_NOTIFY_MAX_AGE_MINUTES = 15
DEFAULT_NOTIFY_QUEUE_SIZE = 1000

# The default masked keys live with the redaction code; repeated here to keep settings light.
DEFAULT_MASKED_KEYS = (
    "http.request.header.authorization",
    "http.request.header.proxy-authorization",
    "http.request.header.cookie",
    "http.response.header.set-cookie",
    "http.request.header.x-api-key",
    "authorization",
    "cookie",
    "password",
    "db.password",
    "api_key",
    "access_token",
    "refresh_token",
    "client_secret",
    "secret",
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# One label of a host name; "_" too, as in the service names of compose files.
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_URL_SHAPE = "http://user:password@host:8123/database"
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^/@]+@")


# Path("") is the working folder, where an empty setting would scatter a store
EMPTY_DATA_DIR = f"is empty; name a folder, e.g. {DEFAULT_DATA_DIR}"
# A folder setting that names a regular file is a value to correct, refused with the others
# before anything starts, so every command exits as it does on a bad option.
DATA_DIR_ADVICE = "name a folder for the store"
SPOOL_DIR_ADVICE = "name a folder, or unset it to spool in the data dir"
FILE_AS_DATA_DIR = f"is a file, not a folder; {DATA_DIR_ADVICE}"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message says which and why."""


class Settings(BaseSettings):
    """Every tunable of Seamwatch. Environment variables carry the ``SEAMWATCH_`` prefix."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="Directory of the embedded ClickHouse store (chDB).",
        validate_default=True,  # a file named .seamwatch is refused like one named by a flag
    )
    clickhouse_url: str | None = Field(
        None,
        description="ClickHouse server URL, e.g. http://default:@127.0.0.1:8123/seamwatch. "
        "When set, the server is used instead of the embedded store.",
    )
    database: str = Field(DEFAULT_DATABASE, description="Database that holds the tables.")
    otlp_http_host: str = Field("127.0.0.1", description="Address the OTLP/HTTP receiver binds.")
    otlp_http_port: int = Field(DEFAULT_OTLP_HTTP_PORT, ge=0, le=65535)
    otlp_grpc_host: str = Field("127.0.0.1", description="Address the OTLP/gRPC receiver binds.")
    otlp_grpc_port: int = Field(
        DEFAULT_OTLP_GRPC_PORT, ge=-1, le=65535, description="OTLP/gRPC port; -1 turns it off."
    )
    auth_token: SecretStr | None = Field(
        None,
        description="When set, OTLP clients must send 'Authorization: Bearer <token>'"
        " (empty: no token asked).",
    )
    redact_patterns: bool = Field(
        True, description="Redact e-mails, card numbers, IBANs, phone numbers and bearer tokens."
    )
    redact_keys: str = Field(
        ",".join(DEFAULT_MASKED_KEYS),
        description=(
            "Comma-separated attribute keys whose values are replaced by [REDACTED], also inside"
            " map values."
        ),
    )
    hash_keys: str = Field(
        "",
        description=(
            "Comma-separated attribute keys whose values are stored as a keyed hash, also inside"
            " map values."
        ),
    )
    hash_salt: SecretStr = Field(SecretStr(""), description="Key of the hash for hash_keys.")
    collector_url: str | None = Field(
        None,
        description="Where the dashboard reads the collector's /metrics, e.g. http://collector:4318"
        " (default: this machine's OTLP/HTTP address).",
    )
    dashboard_host: str = Field("127.0.0.1", description="Address the dashboard binds.")
    dashboard_port: int = Field(DEFAULT_DASHBOARD_PORT, ge=0, le=65535)
    max_request_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BYTES, gt=0, description="Largest request body after decompression."
    )
    max_concurrent_requests: int = Field(
        16, gt=0, description="Trace requests decoded at once before new ones get 429."
    )
    body_timeout_seconds: float = Field(
        DEFAULT_BODY_TIMEOUT_SECONDS,
        gt=0,
        le=3600,
        allow_inf_nan=False,  # a NaN passed every bound as "not greater than 3600"
        description="Longest wait for the next part of a request's body (a trace request, or"
        " a change sent to the JSON API) before 408 and the connection closed.",
    )
    header_timeout_seconds: float = Field(
        DEFAULT_HEADER_TIMEOUT_SECONDS,
        gt=0,
        le=3600,
        allow_inf_nan=False,  # a NaN passed every bound as "not greater than 3600"
        description="Longest time from connecting (or from the first byte of the next request on"
        " a kept-alive connection) until the request line and headers are complete; then 408"
        " and the connection closed.",
    )
    evaluation_delay_seconds: float = Field(
        DEFAULT_EVALUATION_DELAY_SECONDS,
        allow_inf_nan=False,  # a NaN is not a number, before it is out of range
        description="How long after a minute ends the detectors judge it: spans that arrive"
        " later are stored and shown but not counted; every alert comes this much later.",
    )
    batch_max_spans: int = Field(
        DEFAULT_BATCH_MAX_SPANS, gt=0, description="Most spans in one insert into the store."
    )
    batch_flush_interval_millis: int = Field(
        DEFAULT_BATCH_FLUSH_INTERVAL_MILLIS,
        gt=0,
        description="Longest time acknowledged spans wait in the spool for a larger insert.",
    )
    spool_dir: Path | None = Field(
        None,
        description="Where acknowledged spans wait until the store holds them"
        " (default: the spool folder of the data directory).",
    )
    spool_fsync: bool = Field(
        True,
        description="Flush each spool write to disk before acknowledging (off: a crash of the"
        " process still loses nothing, a crash of the machine may).",
    )
    max_queue_spans: int = Field(
        DEFAULT_MAX_QUEUE_SPANS,
        gt=0,
        description="Spans waiting for the store before new requests get 429 with Retry-After"
        " (at least the batch size).",
    )
    retry_after_seconds: int = Field(
        5, ge=1, le=3600, description="Retry-After given to clients when the store cannot keep up."
    )
    retention_days: int | None = Field(
        None, gt=0, description="Drop spans older than this many days (ClickHouse TTL)."
    )
    notify_file: Path | None = Field(
        None, description="Notification destinations and their filters (YAML, docs/notify.md)."
    )
    dashboard_public_url: str | None = Field(
        None,
        description="The dashboard's address as people open it, for links in chat messages "
        "(default: this machine's dashboard address).",
    )
    notify_max_age_minutes: int = Field(
        DEFAULT_NOTIFY_MAX_AGE_MINUTES,
        ge=1,
        description="Alert events older than this when raised (catch-up) are recorded, not sent.",
    )
    notify_queue_size: int = Field(
        DEFAULT_NOTIFY_QUEUE_SIZE,
        gt=0,
        description="Notifications waiting per destination before new ones are dropped.",
    )

    @field_validator("auth_token")
    @classmethod
    def _token_is_usable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        token = value.get_secret_value()
        if token != token.strip() or any(char.isspace() for char in token):
            raise ValueError("must not contain spaces: no client could send it in a header")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_plain(cls, value: object, info: ValidationInfo) -> object:
        # "1_0" would be read as 10, as Python reads a literal; the receiver refuses it in a
        # span, and a setting written so is more likely a typo than a thousands separator
        numeric = cls.model_fields[str(info.field_name)].annotation in (int, float)
        if numeric and isinstance(value, str) and "_" in value:
            raise ValueError("write the number without '_' (digits, a sign and a dot only)")
        return value

    @field_validator("evaluation_delay_seconds")
    @classmethod
    def _delay_is_in_range(cls, value: float) -> float:
        # written out rather than ge/le, so the message says what the wait trades
        if not 0 <= value <= MAX_EVALUATION_DELAY_SECONDS:  # NaN too
            raise ValueError(
                f"must be from 0 to {MAX_EVALUATION_DELAY_SECONDS:g} seconds: how long after a "
                "minute ends the detectors judge it; set it a little longer than your senders "
                f"take to export their spans (default {DEFAULT_EVALUATION_DELAY_SECONDS:g})"
            )
        return value

    @model_validator(mode="after")
    def _hashing_has_a_key(self) -> Settings:
        if self.key_set(self.hash_keys) and not self.hash_salt.get_secret_value():
            raise ValueError(
                "SEAMWATCH_HASH_KEYS needs SEAMWATCH_HASH_SALT: without a secret key the hashed "
                "values (ids, e-mails) can be recovered by hashing guesses"
            )
        return self

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> Settings:
        if self.max_queue_spans < self.batch_max_spans:
            raise ValueError(
                f"max_queue_spans ({self.max_queue_spans}) must be at least batch_max_spans "
                f"({self.batch_max_spans}): raise SEAMWATCH_MAX_QUEUE_SPANS or lower "
                "SEAMWATCH_BATCH_MAX_SPANS"
            )
        return self

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_is_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError(EMPTY_DATA_DIR)
        return value

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_no_file(cls, value: Path) -> Path:
        return _no_file(value, DATA_DIR_ADVICE)

    @field_validator("spool_dir")
    @classmethod
    def _spool_dir_is_no_file(cls, value: Path | None) -> Path | None:
        return value if value is None else _no_file(value, SPOOL_DIR_ADVICE)

    @field_validator("database")
    @classmethod
    def _database_is_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be letters, digits and underscores, starting with a letter")
        return value

    @field_validator("dashboard_public_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like https://seamwatch.example.com")
        return value.rstrip("/")

    @field_validator("clickhouse_url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must look like {_URL_SHAPE}")
        # a server that is down is waited for; an address that can never answer is not
        problem = address_problem(parts)
        if problem:
            raise ValueError(f"{problem}; it must look like {_URL_SHAPE}")
        database = parts.path.strip("/")
        if database and not _IDENTIFIER.match(database):
            raise ValueError(
                f"names database {quoted(database)}; a database name is letters, digits and _"
            )
        return value

    @staticmethod
    def key_set(text: str) -> frozenset[str]:
        """The keys of a comma-separated setting such as ``redact_keys``."""
        return frozenset(key.strip() for key in text.split(",") if key.strip())

    @property
    def evaluation_delay(self) -> timedelta:
        """How long after a minute ends the detectors judge it."""
        return timedelta(seconds=self.evaluation_delay_seconds)

    def dashboard_url(self) -> str:
        """The address a person on this machine opens to see the dashboard (an address that
        listens on every interface is shown as the loopback one; IPv6 in brackets)."""
        host = self.dashboard_host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.dashboard_port}"

    @property
    def uses_server(self) -> bool:
        """True when a ClickHouse server, not the embedded engine, holds the data."""
        return self.clickhouse_url is not None

    def store_identity(self) -> str:
        """Which store the data goes to, in words and without a password: the collector's
        spool records it, so spans acknowledged for one store never end up in another."""
        if self.clickhouse_url:
            parts = urlsplit(self.clickhouse_url)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"the ClickHouse server {parts.scheme}://{host}{port}/{self.server_database()}"
        return f"the embedded store in {self.data_dir.resolve()}"

    def server_database(self) -> str:
        """The database named in the server URL's path, or the ``database`` setting."""
        return urlsplit(self.clickhouse_url or "").path.strip("/") or self.database

    def __repr__(self) -> str:
        shown = self.model_dump()
        if self.clickhouse_url:
            shown["clickhouse_url"] = _masked_url(self.clickhouse_url)
        return f"Settings({shown})"


def _masked_url(url: str) -> str:
    """``url`` with its password, if any, as ``***`` (malformed URLs too)."""
    return _URL_PASSWORD.sub(r"\1***@", url, count=1)


def address_problem(parts: SplitResult) -> str | None:
    """What makes the host or port of a URL one that no server can ever answer at, or None."""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        written = parts.netloc.rpartition("@")[2].rpartition("]")[2].rpartition(":")[2]
        return f"its port must be a number from 1 to 65535 (got {written!r})"
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    looks_numeric = all(label.isdigit() for label in labels)  # 127.0.0.256 is no address
    if len(host) > 253 or looks_numeric or not all(map(_HOST_LABEL.match, labels)):
        return f"host {quoted(host)} is not a host name or an IP address"
    return None


def _no_file(folder: Path, advice: str) -> Path:
    """``folder``, unless a regular file stands there or in the way of creating it (a folder
    to create is fine): under a file it could never be made, and failed only when opened.
    The refusal ends with ``advice``."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"is a file, not a folder; {advice}")
    blocking = next((above for above in folder.parents if above.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ValueError(f"lies under {str(blocking)!r}, which is a file, not a folder; {advice}")
    return folder


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides (flags; None means unset).

    Raises SettingsError with one line per bad setting.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, frozenset(given))) from exc


_SECRET_SETTINGS = frozenset({"auth_token", "hash_salt"})


def quotable_variable(variable: str, value: str) -> str | None:
    """``value`` of environment variable ``variable`` as an error may quote it: a setting's
    value as settings errors quote it (a server URL without its password); None for a secret,
    and for a ``SEAMWATCH_*`` variable that is no setting, which may hold a notification
    destination's secret."""
    name = variable.upper().removeprefix(ENV_PREFIX).lower()
    if name not in Settings.model_fields or name in _SECRET_SETTINGS:
        return None
    return _masked_url(value) if name == "clickhouse_url" else value


def known_variables() -> frozenset[str]:
    """Every ``SEAMWATCH_*`` variable Seamwatch reads: one per setting, and those read beside
    the settings."""
    settings = (f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields)
    return frozenset((*settings, SEVERITY_FILE_ENV, EVAL_DATA_DIR_ENV))


def _describe(exc: ValidationError, flags: frozenset[str] = frozenset()) -> str:
    """One line per bad setting, naming where it came from: the option of the command line
    for one in ``flags``, the environment variable otherwise."""
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across settings: its message names them
            lines.append(validation_message(error))
            continue
        name = ".".join(str(part) for part in error["loc"])
        env = f"--{name.replace('_', '-')}" if name in flags else f"SEAMWATCH_{name.upper()}"
        problem = validation_message(error)
        if name in _SECRET_SETTINGS:  # never echo a secret, even a wrong one
            lines.append(f"{name} ({env}): {problem}")
            continue
        value = error.get("input")
        shown = str(value) if isinstance(value, Path) else value  # a flag's path, as typed
        if name == "clickhouse_url" and isinstance(value, str):
            shown = _masked_url(value)
        lines.append(f"{name} ({env}) = {shown!r}: {problem}")
    return "Invalid settings:\n  " + "\n  ".join(lines)
