"""The `tidings` command."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import sqlite3
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .accounts import AccountError
from .config import SCHEMA, Config, ConfigError, load, markdown_table, parse_hostport
from .store.base import StoreError

DATA_HELP = "data directory (default: $TIDINGS_DATA, else ./tidings-data)"
STORE_HELP = "postgresql://USER@HOST:PORT/DB to use PostgreSQL (default: $TIDINGS_STORE, else SQLite under --data)"


class CommandError(Exception):
    """A problem the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported on one line (the usage itself is under --help)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help=DATA_HELP)
    parser.add_argument("--config", metavar="FILE", type=Path, help="TOML configuration file")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def _tls(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain; with --tls-key, serve HTTPS")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")


def _mail_flags(parser: argparse.ArgumentParser) -> None:
    """Mail flow (docs/mailflow.md): delivery in over LMTP/SMTP, and where outgoing mail goes."""
    parser.add_argument("--lmtp", metavar="HOST:PORT", help="LMTP listener for delivery from a local MTA")
    parser.add_argument("--smtp", metavar="HOST:PORT", help="SMTP listener for mail to local users (no relaying)")
    parser.add_argument("--smtp-relay", metavar="HOST:PORT", help="smarthost for outgoing mail (default: MX hosts)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tidings",
        description="Tidings: a JMAP server (RFC 8620 core, RFC 8621 mail).",
        epilog="Configuration: TOML file < TIDINGS_* environment < flags; see docs/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    commands = parser.add_subparsers(parser_class=_Parser, dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server in the foreground")
    _common(serve)
    serve.add_argument("--http", metavar="HOST:PORT", help="HTTP listen address (default 127.0.0.1:8080)")
    serve.add_argument("--public-url", metavar="URL", help="base URL clients use to reach the server")
    serve.add_argument("--domain", help="mail domain for logins without '@' (default localhost)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--allow-insecure-push",
        action="store_true",
        default=None,
        help="let push subscriptions use http:// and loopback or private addresses (tests, development)",
    )
    serve.add_argument("--workers", type=int, metavar="N", help="server processes (default 1; more need PostgreSQL)")
    _tls(serve)
    _mail_flags(serve)

    demo = commands.add_parser("demo", help="create a demo user (if missing) and run the server")
    _common(demo)
    demo.add_argument("--http", metavar="HOST:PORT", help="HTTP listen address (default 127.0.0.1:8080)")
    demo.add_argument("--password", default="demo", help="the demo user's password (default: demo)")
    demo.add_argument(
        "--allow-insecure-push",
        action="store_true",
        default=None,
        help="let push subscriptions use http:// and loopback or private addresses (tests, development)",
    )
    _tls(demo)
    _mail_flags(demo)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        parser_class=_Parser, dest="action", metavar="ACTION", required=True
    )
    add = user.add_parser("add", help="create a user and their account")
    _common(add)
    add.add_argument("name")
    add.add_argument("--password", help="password (asked for when omitted)")
    add.add_argument("--domain", help="mail domain for a name without '@'")
    passwd = user.add_parser(
        "passwd", help="change a user's password (destroys the push subscriptions made with the old one)"
    )
    _common(passwd)
    passwd.add_argument("name")
    passwd.add_argument("--password", help="new password (asked for when omitted)")
    listing = user.add_parser("list", help="list users")
    _common(listing)
    remove = user.add_parser("remove", help="remove a user and all their data")
    _common(remove)
    remove.add_argument("name")

    token = commands.add_parser("token", help="manage bearer tokens").add_subparsers(
        parser_class=_Parser, dest="action", metavar="ACTION", required=True
    )
    create = token.add_parser("create", help="create a bearer token for a user (printed once)")
    _common(create)
    create.add_argument("name")
    create.add_argument("--label", help="a label to revoke the token by")
    revoke = token.add_parser(
        "revoke", help="revoke a user's token by its label (destroys the push subscriptions made with it)"
    )
    _common(revoke)
    revoke.add_argument("name")
    revoke.add_argument("label")
    tokens = token.add_parser("list", help="list a user's tokens")
    _common(tokens)
    tokens.add_argument("name")

    push = commands.add_parser("push", help="Web Push administration").add_subparsers(
        parser_class=_Parser, dest="action", metavar="ACTION", required=True
    )
    rotate = push.add_parser(
        "rotate-vapid",
        help="replace the VAPID key and erase every push subscription (clients subscribe again)",
        description="Replace the server's VAPID key (RFC 8292, advertised as urn:ietf:params:jmap:webpush-vapid)."
        " Push services refuse pushes signed with another key than a subscription was made for, so every"
        " PushSubscription is erased too. Running servers take up the new key within seconds; the session"
        " state changes, and clients fetch the new key and subscribe again (RFC 9749 §5; docs/push.md).",
    )
    _common(rotate)

    importing = commands.add_parser(
        "import",
        help="import an mbox file or a Maildir tree into a user's account",
        description="Import an mbox file or a Maildir (or Maildir++) tree. Maildir folders become mailboxes,"
        " flags become keywords; messages already in their mailbox are skipped, so it can be run again."
        " Exits with 1 when some messages failed (they are listed).",
    )
    _common(importing)
    importing.add_argument("name", metavar="USER")
    importing.add_argument("path", metavar="PATH", type=Path)
    importing.add_argument("--mailbox", metavar="NAME",
                           help="target mailbox, '/' between levels, created if missing (default: Inbox)")

    conversations = commands.add_parser("conversations", help="the conversations (threads) index").add_subparsers(
        parser_class=_Parser, dest="action", metavar="ACTION"
    )
    rebuild = conversations.add_parser(
        "rebuild",
        help="recompute every thread from the stored messages (safe while the server runs)",
    )
    _common(rebuild)
    rebuild.add_argument("name", metavar="USER", nargs="?", help="only this user (default: every user)")

    config = commands.add_parser("config", help="show the configuration").add_subparsers(
        parser_class=_Parser, dest="action", metavar="ACTION"
    )
    show = config.add_parser("show", help="print the effective configuration")
    _common(show)
    show.add_argument("--markdown", action="store_true", help="print the option reference as Markdown")
    from .storeadmin import add_commands

    add_commands(commands, _common)
    return parser


def _config(args: argparse.Namespace, **overrides: Any) -> Config:
    values = {"data": getattr(args, "data", None), "store": getattr(args, "store", None)}
    values.update(overrides)
    return load(getattr(args, "config", None), {k: v for k, v in values.items() if k in SCHEMA})


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise CommandError("no password given (use --password or type it on standard input)")
        return line.rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CommandError("the passwords do not match")
    return first


def _tidings(config: Config) -> Any:
    from .server import Tidings

    return Tidings(config)


def cmd_user(args: argparse.Namespace) -> int:
    config = _config(args, domain=getattr(args, "domain", None))
    tidings = _tidings(config)
    try:
        if args.action == "add":
            user = tidings.accounts.add_user(args.name, _password(args))
            print(f"created user {user.username} <{user.address}> (account {user.account_id})")
        elif args.action == "passwd":
            tidings.accounts.set_password(args.name, _password(args))
            print(f"password changed for {args.name}")
        elif args.action == "list":
            for user in tidings.accounts.users():
                print(f"{user.username}\t{user.address}\t{user.account_id}")
        elif args.action == "remove":
            tidings.accounts.remove_user(args.name)
            print(f"removed user {args.name}")
        else:
            raise CommandError("usage: tidings user {add,passwd,list,remove} ...")
    finally:
        tidings.close()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    tidings = _tidings(_config(args))
    try:
        if args.action == "create":
            print(tidings.accounts.create_token(args.name, args.label))
        elif args.action == "revoke":
            tidings.accounts.revoke_token(args.name, args.label)
            print(f"revoked token {args.label} of {args.name}")
        elif args.action == "list":
            for label, created in tidings.accounts.tokens(args.name):
                print(f"{label}\t{created}")
        else:
            raise CommandError("usage: tidings token {create,revoke,list} ...")
    finally:
        tidings.close()
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    tidings = _tidings(_config(args))
    try:
        if args.action != "rotate-vapid":
            raise CommandError("usage: tidings push rotate-vapid")
        erased = tidings.push.rotate_vapid()
        print(f"new VAPID key {tidings.push.vapid.public_key}; {erased} push subscription(s) erased")
    finally:
        tidings.close()
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.action != "show":
        raise CommandError("usage: tidings config show [--markdown]")
    if args.markdown:
        print(markdown_table())
        return 0
    config = _config(args)
    for name in SCHEMA:
        print(f"{name} = {config.values[name]!r}")
    return 0


def _user(tidings: Any, name: str) -> Any:
    with tidings.store.directory() as directory:
        user = directory.user(name)
    if user is None:
        raise CommandError(f"no user {name!r}")
    return user


def cmd_import(args: argparse.Namespace) -> int:
    from .mail.importer import SourceError, import_path

    tidings = _tidings(_config(args))
    try:
        user = _user(tidings, args.name)
        try:
            report = import_path(tidings.store, user.account_id, args.path, mailbox=args.mailbox)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        for name in report.mailboxes_created:
            print(f"created mailbox {name}")
        for label, reason in report.failed:
            print(f"failed: {label}: {reason}")
        print(report.summary())
    finally:
        tidings.close()
    return 1 if report.failed else 0


def cmd_conversations(args: argparse.Namespace) -> int:
    if args.action != "rebuild":
        raise CommandError("usage: tidings conversations rebuild [USER]")
    from .mail.rebuild import rebuild

    tidings = _tidings(_config(args))
    try:
        users = [_user(tidings, args.name)] if args.name else tidings.accounts.users()
        for user in users:
            print(f"{user.username} ({user.account_id}):", flush=True)
            report = rebuild(tidings.store, user.account_id, say=lambda line: print(line, flush=True))
            print(("  " if report.changed else "  nothing to change; ") + report.summary(), flush=True)
    finally:
        tidings.close()
    return 0


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_serve(args: argparse.Namespace, *, demo_password: str | None = None) -> int:
    config = _config(
        args,
        http=args.http,
        public_url=getattr(args, "public_url", None),
        domain=getattr(args, "domain", None),
        log_level=getattr(args, "log_level", None),
        allow_insecure_push=getattr(args, "allow_insecure_push", None),
        lmtp=getattr(args, "lmtp", None),
        smtp=getattr(args, "smtp", None),
        smtp_relay=getattr(args, "smtp_relay", None),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    host, port = parse_hostport(config.http)
    if bool(config.tls_cert) != bool(config.tls_key):
        raise CommandError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
    _setup_logging(config.log_level)
    from .serve import run

    tidings = _tidings(config)
    if demo_password is not None:
        existing = {u.username: u for u in tidings.accounts.users()}
        if "demo" not in existing:
            demo_user = tidings.accounts.add_user("demo", demo_password)
        else:
            demo_user = existing["demo"]
            tidings.accounts.set_password("demo", demo_password)
        from .demo import fill

        # The demo mailbox is delivered once; a restart finds the account already holds mail.
        added = fill(tidings.store, demo_user.account_id, demo_user.address)
        if added:
            print(f"Delivered {added} demo messages to {demo_user.address}.", flush=True)
        scheme = "https" if config.tls_cert else "http"
        url = config.public_url or f"{scheme}://{host}:{port}"
        print(
            f"Tidings is running at {url}\n"
            f"  session:  {url}/.well-known/jmap\n"
            f"  user:     demo\n  password: {demo_password}\n"
            f"  data:     {config.data_dir.resolve()}",
            flush=True,
        )
    workers = getattr(args, "workers", None) or config.workers
    if workers > 1:
        from .workers import serve_workers

        tidings.close()  # each worker opens its own store after the fork
        return serve_workers(config, host, port, workers, lambda cfg, sock: run(_tidings(cfg), host, port, sock))
    return run(tidings, host, port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "data", None) is None:
        args.data = os.environ.get("TIDINGS_DATA") or None
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "demo":
            return cmd_serve(args, demo_password=args.password or secrets.token_urlsafe(8))
        if args.command == "user":
            return cmd_user(args)
        if args.command == "token":
            return cmd_token(args)
        if args.command == "push":
            return cmd_push(args)
        if args.command in ("db", "migrate"):
            from . import storeadmin

            command = storeadmin.cmd_db if args.command == "db" else storeadmin.cmd_migrate
            return command(args, _config(args))
        if args.command == "config":
            return cmd_config(args)
        if args.command == "import":
            return cmd_import(args)
        if args.command == "conversations":
            return cmd_conversations(args)
    except (CommandError, ConfigError, AccountError, StoreError) as exc:
        print(f"tidings: error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        # e.g. a data directory that is not writable, or a file there that is not our database.
        print(f"tidings: error: the database cannot be used: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"tidings: error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
