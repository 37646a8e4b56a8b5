"""One configuration schema: every option once, with its type, default and help.

Values come from, in rising order of precedence: the defaults below, a TOML file (`--config`), the
environment (`TIDINGS_<OPTION>` in upper case), and command-line flags. The schema also renders the
reference table in docs/configuration.md (`tidings config show --markdown`). This module imports
nothing else of Tidings, and nothing deep inside reads it: values are passed into constructors.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Option:
    name: str
    kind: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "TIDINGS_" + self.name.upper().replace("-", "_")


def _options(*items: Option) -> dict[str, Option]:
    return {o.name: o for o in items}


SCHEMA = _options(
    Option("data", str, "./tidings-data", "Data directory: the SQLite database and blob files live here."),
    Option(
        "store",
        str,
        "",
        "Metadata store: empty for the embedded SQLite store under `data`, or postgresql://USER@HOST:PORT/DB"
        " (docs/deployment.md).",
    ),
    Option(
        "blob_dir",
        str,
        "",
        "Blob directory (default: DATA/blobs). With PostgreSQL and several machines, a directory they all share.",
    ),
    Option("store_pool_size", int, 20, "PostgreSQL connections each server process may open."),
    Option("workers", int, 1, "Server processes (`tidings serve --workers N`); more than one needs PostgreSQL."),
    Option("http", str, "127.0.0.1:8080", "HOST:PORT the HTTP server listens on."),
    Option("public_url", str, "", "Base URL clients reach the server at (default: http://HOST:PORT)."),
    Option("tls_cert", str, "", "PEM certificate chain: with tls_key, the server speaks HTTPS only."),
    Option("tls_key", str, "", "PEM private key of tls_cert."),
    Option("domain", str, "localhost", "Mail domain: a login without '@' gets the address login@domain."),
    Option("cors_origins", list, [], "Origins allowed to call the API from a browser ('*' for any)."),
    Option("upload_ttl", int, 86400, "Seconds an upload nothing refers to is kept before it is deleted."),
    Option("max_size_upload", int, 50_000_000, "Largest upload, in octets (maxSizeUpload)."),
    Option("max_concurrent_upload", int, 4, "Uploads one user may run at once (maxConcurrentUpload)."),
    Option("max_size_request", int, 10_000_000, "Largest API request body, in octets (maxSizeRequest)."),
    Option("max_concurrent_requests", int, 8, "API requests one user may run at once (maxConcurrentRequests)."),
    Option("max_calls_in_request", int, 64, "Method calls in one API request (maxCallsInRequest)."),
    Option("max_objects_in_get", int, 1000, "Ids in one /get (maxObjectsInGet)."),
    Option("max_objects_in_set", int, 1000, "Objects in one /set (maxObjectsInSet)."),
    Option("sqlite_synchronous", str, "FULL", "SQLite synchronous mode; FULL makes every commit durable."),
    Option("log_level", str, "info", "Logging level: debug, info, warning, error."),
    Option("access_log", bool, True, "Log one line per HTTP request to stderr."),
    Option(
        "allow_insecure_push",
        bool,
        False,
        "Let push subscriptions use http:// URLs and loopback or private addresses (tests and development only).",
    ),
    # Mail flow (docs/mailflow.md): delivery in, the outbound queue, DKIM, vacation responses.
    Option("lmtp", str, "", "HOST:PORT of the LMTP listener (RFC 2033) for delivery from a local MTA; empty: off."),
    Option("smtp", str, "", "HOST:PORT of the SMTP listener for mail to local users from the internet; empty: off."),
    Option("hostname", str, "", "This server's name in SMTP greetings and Received fields (default: the FQDN)."),
    Option("local_domains", list, [], "Mail domains delivered here (default: [domain]); no others are accepted."),
    Option("aliases", dict, {}, "Table of address -> user (login or address) for extra addresses."),
    Option("catch_all", dict, {}, "Table of domain -> user receiving mail for unknown addresses of that domain."),
    Option("max_message_size", int, 50_000_000, "Largest message accepted or sent, in octets (SMTP SIZE)."),
    Option("duplicate_window", int, 86400, "Seconds within which a repeated delivery of a message is dropped."),
    Option("smtp_relay", str, "", "HOST:PORT of a smarthost for outgoing mail; empty: deliver to the MX hosts."),
    Option("smtp_relay_user", str, "", "User name for SMTP AUTH at the smarthost (empty: no AUTH)."),
    Option("smtp_relay_password", str, "", "Password for SMTP AUTH at the smarthost."),
    Option("smtp_relay_starttls", bool, False, "Require STARTTLS with the smarthost."),
    Option("queue_retry", list, [60, 300, 900, 1800, 3600, 7200, 14400], "Seconds between delivery attempts."),
    Option("queue_give_up", int, 432000, "Seconds after which an undeliverable message is returned (a DSN)."),
    Option("dkim_selector", str, "", "DKIM selector; with dkim_key_file, outgoing mail from local domains is signed."),
    Option("dkim_key_file", str, "", "PEM private key (RSA or Ed25519) for DKIM signing."),
    Option("vacation_days", int, 7, "A vacation response replies to one sender at most once in this many days."),
    Option("max_delayed_send", int, 604800, "Longest FUTURERELEASE hold, in seconds (maxDelayedSend; 0: off)."),
)


@dataclass(frozen=True)
class Config:
    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data"]).expanduser()


def _coerce(option: Option, raw: Any, origin: str) -> Any:
    kind = option.kind
    if isinstance(raw, str) and kind is not str:
        text = raw.strip()
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{origin}: {option.name} must be true or false, not {raw!r}")
        if kind is int:
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f"{origin}: {option.name} must be an integer, not {raw!r}") from None
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind is dict:
            # KEY=VALUE pairs, comma-separated (e.g. TIDINGS_ALIASES="postmaster@x=alice,info@x=bob").
            pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ConfigError(f"{origin}: {option.name} must be KEY=VALUE pairs, not {raw!r}")
            return {key.strip(): value.strip() for key, value in pairs}
    if kind is int and isinstance(raw, bool):
        raise ConfigError(f"{origin}: {option.name} must be an integer")
    if not isinstance(raw, kind):
        raise ConfigError(f"{origin}: {option.name} must be of type {kind.__name__}")
    return raw


def load(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    environ = os.environ if environ is None else environ
    values = {name: option.default for name, option in SCHEMA.items()}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from None
        for key, raw in data.items():
            name = key.replace("-", "_")
            if name not in SCHEMA:
                raise ConfigError(f"{config_file}: unknown option {key!r}")
            values[name] = _coerce(SCHEMA[name], raw, str(config_file))
    for name, option in SCHEMA.items():
        if option.env in environ:
            values[name] = _coerce(option, environ[option.env], option.env)
    for name, raw in (overrides or {}).items():
        if raw is not None:
            values[name] = _coerce(SCHEMA[name], raw, "--" + name.replace("_", "-"))
    return Config(values)


def markdown_table() -> str:
    lines = ["| option | environment | default | meaning |", "|---|---|---|---|"]
    for option in SCHEMA.values():
        default = option.default if option.default not in ("", []) else "(none)"
        lines.append(f"| `{option.name}` | `{option.env}` | `{default}` | {option.help} |")
    return "\n".join(lines)


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"expected HOST:PORT, got {value!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)
