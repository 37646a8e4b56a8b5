"""Bulk import of an mbox file or a Maildir tree into an account (`tidings import`).

Theory of operation
-------------------
* Sources are read as a stream of `Item`s, one message at a time: an mbox file line by line (with
  the mboxrd ">From " unescaping, which also undoes mboxo's), a Maildir tree file by file. Memory
  holds one batch of messages, never the whole import.
* A batch is handled in three steps: (1) in a read snapshot, messages already in their target mailbox
  (same blob, i.e. the same octets) are recognised and skipped, so a re-run imports nothing twice;
  (2) outside any transaction, in worker processes, the others are parsed and the blob files of
  those over 64 KB staged (made durable together before the batch commits); (3) one write
  transaction ingests them through `mail/ingest.py`, with the smaller messages themselves (kept in
  the database, store/blobs.py), first all at once and, if one fails, again each in its own
  savepoint, so one bad message leaves nothing behind and does not stop the others. Short
  transactions let a running server keep serving in between.
* Every message ends up counted as imported, skipped (already there, or marked trashed in a Maildir)
  or failed, and every failure is named with its place (file path, or mbox path and byte offset)
  and the reason.

Choices
-------
* Line endings are normalised to CRLF (RFC 5322), as a message delivered over SMTP would have them;
  so the same message imported twice has the same octets and the same blob.
* Maildir flags (the ":2," info suffix): S → $seen, R → $answered, F → $flagged, D → $draft,
  P → $forwarded; lower-case letters are Dovecot keywords from the folder's `dovecot-keywords`. T
  (trashed, waiting to be expunged) messages are skipped: JMAP has no \\Deleted, and importing them
  would resurrect mail the user deleted. They are counted apart in the report.
* receivedAt is the file's modification time (Maildir) or the date of the mbox "From " line, else the
  newest Received header, else the Date header, else now.
* Folders: the Maildir root is the target mailbox (Inbox unless --mailbox), Maildir++ folders
  ".Sub.Folder" and nested directories "Sub/Folder" become child mailboxes, created when missing;
  IMAP modified UTF-7 names (RFC 3501 §5.1.3) are decoded.
"""

from __future__ import annotations

import base64
import calendar
import multiprocessing
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from ..mime import ParsedMessage, parse_message
from ..store.base import MailboxRow, Store, Transaction
from ..store.blobs import INLINE_MAX, FileBlobStore, blob_id_for
from .counts import CountChanges
from .ids import MAILBOX, to_wire
from .ingest import Documents, Prepared, documents_for, epoch, ingest, received_time
from .keywords import normalise_keyword

DEFAULT_BATCH = 200
MAX_MESSAGE_SIZE = 100_000_000
MAILDIR_FLAGS = {"S": "$seen", "R": "$answered", "F": "$flagged", "D": "$draft", "P": "$forwarded"}


class SourceError(Exception):
    """The source cannot be imported at all (missing, not an mbox or Maildir)."""


@dataclass
class Item:
    """One message from a source; `error` set when it could not even be read."""

    label: str
    folder: tuple[str, ...]
    raw: bytes | None
    keywords: frozenset[str] = frozenset()
    received_at: int | None = None
    error: str | None = None
    trashed: bool = False
    # Progress after this item, in the source's unit (bytes of an mbox, files of a Maildir).
    done: int = 0


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0
    trashed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    mailboxes_created: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"imported {self.imported}", f"skipped {self.skipped + self.trashed}"]
        if self.trashed:
            parts[-1] += f" ({self.skipped} already present, {self.trashed} marked trashed)"
        parts.append(f"failed {len(self.failed)}")
        return ", ".join(parts)


# -- sources ---------------------------------------------------------------------------------------


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def from_line_date(line: bytes) -> int | None:
    """The date of an mbox "From sender Wed Nov 25 10:00:00 2026" line (asctime, taken as UTC)."""
    words = line.decode("latin-1").split()
    for start in range(2, max(2, len(words) - 4)):
        try:
            moment = time.strptime(" ".join(words[start : start + 5]), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            continue
        return calendar.timegm(moment)
    return None


def read_mbox(path: Path, max_size: int = MAX_MESSAGE_SIZE) -> Iterator[Item]:
    """The messages of an mbox file, streamed (one message in memory at a time).

    A "From " line starts a message when it is the first line or follows an empty line; body lines
    matching ">+From " lose one ">" (mboxrd). A file that does not start with "From " is taken as a
    single message (so a lone .eml file imports too).
    """
    with open(path, "rb") as handle:
        yield from _mbox_items(handle, str(path), max_size)


_SEPARATOR = re.compile(rb"\n\r?\nFrom ")
_UNESCAPE = re.compile(rb"^>(>*From )", re.MULTILINE)
_BLOCK = 1 << 20


def _mbox_segments(handle: IO[bytes], max_size: int) -> Iterator[tuple[int, bytes | None]]:
    """(file offset, octets) of each message of an mbox, its From line included; octets are None for
    one larger than `max_size`. Read in blocks, so memory holds a block and one message at most."""
    buffer = bytearray()
    base = 0  # the file offset of buffer[0]
    start = 0  # where the current message starts in the buffer
    too_large = False
    while True:
        chunk = handle.read(_BLOCK)
        search = max(start, len(buffer) - 8)  # a separator may straddle two blocks
        buffer += chunk
        while (found := _SEPARATOR.search(buffer, search)) is not None:
            end = found.start() + 1  # the last line keeps its newline; the empty line is the separator's
            yield base + start, None if too_large else bytes(buffer[start:end])
            start = found.end() - len(b"From ")
            search = start
            too_large = False
        if not chunk:
            rest = bytes(buffer[start:])
            if rest.endswith(b"\n\n") or rest.endswith(b"\n\r\n"):
                rest = rest[: rest.rindex(b"\n", 0, len(rest) - 1) + 1]  # the final empty line
            if rest.strip() or too_large:
                yield base + start, None if too_large else rest
            return
        if start:
            del buffer[:start]
            base += start
            start = 0
        if len(buffer) > max_size:  # drop what is too much, keep looking for the next message
            too_large = True
            keep = len(buffer) - 8
            del buffer[:keep]
            base += keep


def _mbox_items(handle: IO[bytes], name: str, max_size: int) -> Iterator[Item]:
    first = True
    for offset, data in _mbox_segments(handle, max_size):
        label = f"{name}@{offset}"
        done = offset + (len(data) if data else 0)
        if data is None:
            yield Item(label, (), None, error=f"larger than {max_size} octets", done=done)
            continue
        date = None
        if data.startswith(b"From "):
            line_end = data.find(b"\n")
            line_end = len(data) if line_end < 0 else line_end + 1
            date = from_line_date(data[:line_end])
            data = data[line_end:]
        elif first and not data.strip():
            continue  # empty lines before the first "From "
        first = False
        if not data.strip():
            yield Item(label, (), None, error="empty message", done=done)
            continue
        if b">From " in data:  # mboxrd: one ">" less on ">From ", ">>From ", ...
            data = _UNESCAPE.sub(rb"\1", data)
        yield Item(label, (), crlf(data), received_at=date, done=done)


def decode_mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 §5.1.3): "&" base64 (with "," for "/") "-"; "&-" is "&"."""

    def one(match: re.Match[str]) -> str:
        inner = match.group(1)
        if not inner:
            return "&"
        data = inner.replace(",", "/")
        data += "=" * (-len(data) % 4)
        try:
            return base64.b64decode(data).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return match.group(0)

    return re.sub(r"&([A-Za-z0-9+,]*)-", one, name)


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def maildir_folders(root: Path) -> list[tuple[tuple[str, ...], Path]]:
    """(mailbox path below the target, directory) of every folder of a Maildir or Maildir++ tree."""
    found: list[tuple[tuple[str, ...], Path]] = []

    def walk(directory: Path, prefix: tuple[str, ...]) -> None:
        if _is_maildir(directory):
            found.append((prefix, directory))
        for entry in sorted(directory.iterdir()):
            if not entry.is_dir() or entry.name in ("cur", "new", "tmp"):
                continue
            if entry.name.startswith("."):
                # Maildir++: ".Sub.Folder" at the root only.
                if prefix or entry.name in (".", "..") or not _is_maildir(entry):
                    continue
                names = tuple(decode_mutf7(n) for n in entry.name[1:].split(".") if n)
                if names:
                    found.append((names, entry))
            else:
                walk(entry, (*prefix, decode_mutf7(entry.name)))

    walk(root, ())
    return sorted(found, key=lambda pair: pair[0])


def _dovecot_keywords(folder: Path) -> dict[str, str]:
    try:
        lines = (folder / "dovecot-keywords").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        number, _, name = line.partition(" ")
        if number.isdigit() and int(number) < 26 and name:
            out[chr(ord("a") + int(number))] = name.strip()
    return out


def maildir_flags(filename: str, custom: dict[str, str]) -> tuple[frozenset[str], bool]:
    """(keywords, trashed) from a Maildir file name's info part (":2,FLAGS", or "!2,FLAGS")."""
    for separator in (":2,", "!2,"):
        if separator in filename:
            flags = filename.rsplit(separator, 1)[1]
            break
    else:
        return frozenset(), False
    keywords = set()
    for letter in flags:
        if letter in MAILDIR_FLAGS:
            keywords.add(MAILDIR_FLAGS[letter])
        elif letter in custom:
            keyword = normalise_keyword(custom[letter])
            if keyword is not None:
                keywords.add(keyword)
    return frozenset(keywords), "T" in flags


def maildir_files(root: Path) -> Iterator[tuple[tuple[str, ...], Path, dict[str, str]]]:
    for folder, directory in maildir_folders(root):
        custom = _dovecot_keywords(directory)
        for sub in ("cur", "new"):
            where = directory / sub
            if not where.is_dir():
                continue
            for entry in sorted(os.scandir(where), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                yield folder, Path(entry.path), custom


def count_maildir(root: Path) -> int:
    return sum(1 for _ in maildir_files(root))


def read_maildir(root: Path, max_size: int = MAX_MESSAGE_SIZE) -> Iterator[Item]:
    for done, (folder, path, custom) in enumerate(maildir_files(root), 1):
        keywords, trashed = maildir_flags(path.name, custom)
        label = str(path)
        try:
            stat = path.stat()
            if stat.st_size > max_size:
                yield Item(label, folder, None, error=f"larger than {max_size} octets", done=done)
                continue
            raw = path.read_bytes()
        except OSError as exc:
            yield Item(label, folder, None, error=f"cannot read: {exc.strerror or exc}", done=done)
            continue
        if not raw.strip():
            yield Item(label, folder, None, error="empty file", done=done)
            continue
        yield Item(label, folder, crlf(raw), keywords, int(stat.st_mtime), trashed=trashed, done=done)


def open_source(path: Path, max_size: int = MAX_MESSAGE_SIZE) -> tuple[Iterator[Item], int, str]:
    """(items, total, unit) for a path: a Maildir tree or an mbox file."""
    if path.is_dir():
        if not maildir_folders(path):
            raise SourceError(f"{path}: not a Maildir (no cur/ or new/ folder found)")
        return read_maildir(path, max_size), count_maildir(path), "msg"
    if path.is_file():
        return read_mbox(path, max_size), path.stat().st_size, "B"
    raise SourceError(f"{path}: no such file or directory")


# -- progress --------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal (nothing when the stream is not one)."""

    def __init__(self, total: int, unit: str, stream: IO[str] | None = None, enabled: bool | None = None) -> None:
        self.total = max(total, 1)
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.last = 0.0
        self.done = 0
        self.messages = 0

    def update(self, done: int, messages: int) -> None:
        self.done, self.messages = done, messages
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.1:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(self.done / self.total, 1.0)
        width = 30
        filled = int(fraction * width)
        rate = self.messages / max(now - self.started, 1e-6)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {fraction * 100:5.1f}%  {self.messages} messages  {rate:.0f} msg/s ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


# -- import ----------------------------------------------------------------------------------------


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _header_date(parsed: ParsedMessage) -> int | None:
    return epoch(parsed.sent_at)


class Importer:
    """Imports items into one account through the one ingest path."""

    def __init__(self, store: Store, account_id: str, *, mailbox: str | None = None,
                 batch_size: int = DEFAULT_BATCH, workers: int = 1,
                 now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.account_id = account_id
        # The target mailbox as a path of names ("Archive/2019" → ("Archive", "2019")); None: Inbox.
        self.base: tuple[str, ...] = tuple(p for p in (mailbox or "").split("/") if p)
        self.batch_size = batch_size
        self.workers = workers
        self.now = now
        self.report = ImportReport()
        self._mailboxes: dict[tuple[str, ...], int] = {}

    # mailboxes

    def _find(self, rows: list[MailboxRow], path: tuple[str, ...]) -> int | None:
        parent: int | None = None
        for depth, name in enumerate(path):
            children = [r for r in rows if r.parent_id == parent]
            match = next((r for r in children if r.name == name), None)
            if match is None:
                match = next((r for r in children if r.name.casefold() == name.casefold()), None)
            if match is None and depth == 0 and name.casefold() == "inbox":
                match = next((r for r in rows if r.role == "inbox"), None)
            if match is None:
                return None
            parent = match.id
        return parent

    def _target(self, folder: tuple[str, ...]) -> tuple[str, ...]:
        path = (*self.base, *folder)
        return path or ("Inbox",)

    def _lookup(self, tx: Transaction, folder: tuple[str, ...], rows: list[MailboxRow]) -> int | None:
        path = self._target(folder)
        if path in self._mailboxes:
            return self._mailboxes[path]
        found = self._find(rows, path)
        if found is not None:
            self._mailboxes[path] = found
        return found

    def _ensure(self, tx: Transaction, folder: tuple[str, ...], rows: list[MailboxRow], created: list[str]) -> int:
        """The mailbox for a folder, created (with its parents) when missing; `rows` is kept current."""
        path = self._target(folder)
        cached = self._mailboxes.get(path)
        # A cached mailbox may have been destroyed by a client since: `rows` is this transaction's.
        if cached is not None and any(r.id == cached for r in rows):
            return cached
        parent: int | None = None
        for depth in range(1, len(path) + 1):
            found = self._find(rows, path[:depth])
            if found is None:
                row = MailboxRow(0, path[depth - 1], parent, None, 0, True)
                found = row.id = tx.mailboxes.insert(row)
                rows.append(row)
                tx.record("Mailbox", to_wire(MAILBOX, found), "created")
                created.append("/".join(path[:depth]))
            parent = found
        assert parent is not None
        self._mailboxes[path] = parent
        return parent

    # messages

    def run(self, items: Iterable[Item], progress: Progress | None = None) -> ImportReport:
        """Import every item; parsing and blob writing of the next batch overlap the current one's
        transaction (in worker processes when `workers` > 1)."""
        pool = None
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")  # no inherited database connections
            pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                       initargs=(str(self.store.blobs.root), self.store.blobs.fsync))
        try:
            in_flight: deque[_Stage] = deque()
            for batch in _batches(items, self.batch_size):
                in_flight.append(self._stage(batch, pool))
                if len(in_flight) > 1:
                    self._finish(in_flight.popleft(), progress)
            while in_flight:
                self._finish(in_flight.popleft(), progress)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if progress is not None:
            progress.close()
        return self.report

    def _present(self, tx: Transaction, blob_id: str, mailbox_id: int | None) -> bool:
        if mailbox_id is None:
            return False
        existing = tx.emails.by_blob(blob_id)
        if not existing:
            return False
        return any(mailbox_id in row.mailbox_ids for row in tx.emails.rows(existing).values())

    def _stage(self, batch: list[Item], pool: Executor | None) -> _Stage:
        """Sort out what fails or is already there, and start parsing and storing the rest."""
        report = self.report
        stage = _Stage(batch[-1].done)
        candidates: list[tuple[Item, str]] = []
        for item in batch:
            if item.raw is None:
                report.failed.append((item.label, item.error or "unreadable"))
            elif item.trashed:
                report.trashed += 1
            else:
                candidates.append((item, blob_id_for(item.raw)))
        if not candidates:
            return stage
        # (1) What is already there (a re-run), without parsing it again.
        with self.store.read(self.account_id) as tx:
            rows = tx.mailboxes.all()
            for item, blob_id in candidates:
                if self._present(tx, blob_id, self._lookup(tx, item.folder, rows)):
                    report.skipped += 1
                    continue
                # (2) Parse it and stage a large one's blob file, outside any transaction. A small
                # one (most mail) goes into the database with the batch (store/blobs.py INLINE_MAX):
                # no file to write, fsync and rename, and the batch's one commit makes it durable.
                raw, item.raw = item.raw, None
                assert raw is not None
                inline = raw if len(raw) <= INLINE_MAX else None
                if pool is None:
                    stage.work.append((item, _prepare(self.store.blobs, raw, inline is None), inline))
                else:
                    stage.work.append((item, pool.submit(_prepare_in_worker, raw, inline is None), inline))
        return stage

    def _finish(self, stage: _Stage, progress: Progress | None) -> None:
        report = self.report
        prepared: list[tuple[Item, Prepared, int, bytes | None]] = []
        staged: list[tuple[str, Path]] = []
        for item, work, inline in stage.work:
            try:
                blob_id, parsed, documents, staged_file, error = work.result() if isinstance(work, Future) else work
            except Exception as exc:  # a worker died: name the message, go on
                blob_id, parsed, documents, staged_file = None, None, None, None
                error = f"cannot parse: {type(exc).__name__}: {exc}"
            if error is not None or blob_id is None or parsed is None:
                report.failed.append((item.label, error or "cannot parse"))
                continue
            if staged_file is not None:
                staged.append((blob_id, Path(staged_file)))
            received = item.received_at or received_time(parsed) or _header_date(parsed) or int(self.now())
            prepared.append((item, Prepared(blob_id, parsed, documents), received, inline))
        stage.work.clear()
        # The blobs are durable before any email refers to them.
        self.store.blobs.install_staged(staged)
        if prepared:
            self._commit(prepared)
        if progress is not None:
            progress.update(stage.done, report.imported + report.skipped)

    def _commit(self, prepared: list[tuple[Item, Prepared, int, bytes | None]]) -> None:
        """(3) One write transaction for the batch.

        First without savepoints (a savepoint makes the full-text index flush, which costs more than
        the rest of an ingest); if any message fails, that transaction is rolled back whole and the
        batch is written again with one savepoint per message, so the others still go in."""
        try:
            outcome = self._write(prepared, careful=False)
        except _Retry:
            self._mailboxes.clear()
            outcome = self._write(prepared, careful=True)
        report = self.report
        report.imported += outcome.imported
        report.skipped += outcome.skipped
        report.failed.extend(outcome.failed)
        report.mailboxes_created.extend(outcome.mailboxes_created)

    def _write(self, prepared: list[tuple[Item, Prepared, int, bytes | None]], *, careful: bool) -> ImportReport:
        outcome = ImportReport()
        with self.store.write(self.account_id) as tx:
            rows = tx.mailboxes.all()
            trash = next((r.id for r in rows if r.role == "trash"), None)  # an import makes no roles
            # Written at once: the mailbox counters move once per batch, each mailbox is logged once
            # (careful: per message, inside its savepoint, which may be rolled back).
            counts = None if careful else CountChanges()
            for item, message, received, inline in prepared:
                try:
                    mailbox_id = self._ensure(tx, item.folder, rows, outcome.mailboxes_created)
                except Exception as exc:
                    if not careful:
                        raise _Retry from exc
                    self._mailboxes.clear()
                    rows = tx.mailboxes.all()
                    outcome.failed.append((item.label, f"cannot create its mailbox: {exc}"))
                    continue
                try:
                    with tx.savepoint() if careful else nullcontext():
                        if self._present(tx, message.blob_id, mailbox_id):
                            outcome.skipped += 1
                            continue
                        if inline is not None:
                            tx.put_inline_blob(message.blob_id, inline)
                        ingest(tx, message, {mailbox_id}, item.keywords, received, counts=counts, trash=trash)
                except Exception as exc:
                    if not careful:
                        raise _Retry from exc
                    outcome.failed.append((item.label, f"{type(exc).__name__}: {exc}"))
                    continue
                outcome.imported += 1
            if counts is not None:
                counts.log(tx)
        return outcome


class _Retry(Exception):
    """A message of a batch failed: write the batch again, one savepoint per message."""


# (blob id, parsed message, its documents, staged file, why it cannot be imported)
Prepare = tuple[str | None, ParsedMessage | None, Documents | None, str | None, str | None]


@dataclass
class _Stage:
    done: int
    # (item, its preparation, the raw message when it is kept in the database)
    work: list[tuple[Item, Prepare | Future[Prepare], bytes | None]] = field(default_factory=list)


def _prepare(blobs: FileBlobStore, raw: bytes, as_file: bool = True) -> Prepare:
    """(blob id, parsed message, documents, staged file or None, None), or (None, None, None, None,
    why it cannot be imported). The blob is only staged: `Importer._finish` makes the batch's blobs
    durable at once. The documents are computed here, in a worker process, so the writer does not
    have to; the decoded body values, which only they need, then stay behind (less to send back)."""
    try:
        parsed = parse_message(raw)
        documents = documents_for(parsed)
    except Exception as exc:  # the parser promises not to raise; never lose a message silently
        return None, None, None, None, f"cannot parse: {type(exc).__name__}: {exc}"
    if not parsed.headers:
        return None, None, None, None, "not a message: no header fields"
    blob_id, staged = blobs.stage(raw) if as_file else (blob_id_for(raw), None)
    return blob_id, replace(parsed, body_values={}), documents, str(staged) if staged else None, None


_worker_blobs: FileBlobStore | None = None


def _init_worker(root: str, fsync: bool) -> None:
    global _worker_blobs
    _worker_blobs = FileBlobStore(Path(root), fsync=fsync)


def _prepare_in_worker(raw: bytes, as_file: bool) -> Prepare:
    assert _worker_blobs is not None
    return _prepare(_worker_blobs, raw, as_file)


def import_path(store: Store, account_id: str, path: Path, *, mailbox: str | None = None,
                batch_size: int = DEFAULT_BATCH, workers: int | None = None, progress: bool | None = None,
                stream: IO[str] | None = None) -> ImportReport:
    """Import an mbox file or Maildir tree into an account; see the module docstring.

    `workers` processes parse and store messages (default: one per CPU, none on a single CPU)."""
    items, total, unit = open_source(path)
    if workers is None:
        workers = os.cpu_count() or 1
    importer = Importer(store, account_id, mailbox=mailbox, batch_size=batch_size, workers=workers)
    bar = Progress(total, unit, stream, progress)
    return importer.run(items, bar)
