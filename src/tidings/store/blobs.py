"""Content-addressed blob files under the data directory.

A blob's id is "B" + the SHA-256 of its bytes (hex), so identical content is stored once and a blob
never changes (RFC 8620 §6: blobs are immutable). Which account may read which blob is recorded by
the metadata store, not here.

Writes are durable before they are visible: data goes to a temporary file in the same directory, is
fsynced, renamed into place, and the directory is fsynced, so a crash leaves either the whole blob
or nothing (a stray temporary file at worst, which `sweep_temporary` removes).

Small blobs may instead live in the database (table `blob_data`, migration 0009): mail delivery
stores a message of at most `INLINE_MAX` octets in the same transaction as the email that refers to
it, so one commit (one WAL fsync) makes both durable, where a file costs two more fsyncs in sequence
(the file, then its directory after the rename). The store hands this class a reader for them
(`inline`), and every read (`read`, `open`, `iter_range`, `exists`) looks at the file first, then
the database: callers do not know where a blob lives. Files stay the place for everything else
(uploads are streamed to disk, large messages would bloat the database and its write-ahead log).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

BLOB_ID = re.compile(r"B[0-9a-f]{64}")
CHUNK = 1 << 16
# The largest blob delivery keeps in the database rather than as a file. The median message is a
# few kilobytes; at 64 KB most mail is inline, while the pages a blob takes in the write-ahead log
# (and again in the database at the checkpoint) stay cheap next to a file's two extra fsyncs.
INLINE_MAX = 64 * 1024

# Reads a blob kept in the database (None when there is none): supplied by the store.
InlineReader = Callable[[str], bytes | None]
_SYNCER_LOCK = threading.Lock()


def blob_id_for(data: bytes) -> str:
    return "B" + hashlib.sha256(data).hexdigest()


def is_blob_id(value: str) -> bool:
    return BLOB_ID.fullmatch(value) is not None


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Streams bytes into a new blob, hashing as it goes; `finish` makes it durable and returns its id."""

    def __init__(self, store: FileBlobStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        fd, name = tempfile.mkstemp(prefix=".upload-", dir=store.tmp_dir)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._done = False

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        blob_id = "B" + self._hash.hexdigest()
        self._file.flush()
        if self._store.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        self._store._install(self._tmp, blob_id)
        self._done = True
        return blob_id

    def abort(self) -> None:
        if not self._done:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._done = True


class FileBlobStore:
    def __init__(self, root: Path, *, fsync: bool = True, inline: InlineReader | None = None) -> None:
        self.root = root
        self.fsync = fsync
        self.inline = inline
        self._sync_pool: ThreadPoolExecutor | None = None
        self._made: set[str] = set()
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def _inline(self, blob_id: str) -> bytes | None:
        return self.inline(blob_id) if self.inline is not None else None

    def path(self, blob_id: str) -> Path:
        digest = blob_id[1:]
        return self.root / digest[:2] / digest[2:4] / digest

    def exists(self, blob_id: str) -> bool:
        if not is_blob_id(blob_id):
            return False
        return self.path(blob_id).is_file() or self._inline(blob_id) is not None

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put(self, data: bytes) -> str:
        blob_id = blob_id_for(data)
        if self.path(blob_id).is_file():
            return blob_id
        writer = self.writer()
        try:
            writer.write(data)
            return writer.finish()
        finally:
            writer.abort()

    def stage(self, data: bytes) -> tuple[str, Path | None]:
        """Write a blob to a temporary file without waiting for the disk (None: it exists already).

        For bulk writers: `install_staged` then makes a batch of them durable and visible at once."""
        blob_id = blob_id_for(data)
        if self.path(blob_id).is_file():
            return blob_id, None
        fd, name = tempfile.mkstemp(prefix=".staged-", dir=self.tmp_dir)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return blob_id, Path(name)

    def install_staged(self, staged: list[tuple[str, Path]]) -> None:
        """Durable before visible, for a batch: the staged files are fsynced concurrently (the file
        system groups the flushes into few journal commits), renamed into place, and their
        directories fsynced."""
        if self.fsync and staged:
            list(self._syncer().map(_fsync_file, [tmp for _, tmp in staged]))
        directories: set[Path] = set()
        for blob_id, tmp in staged:
            target = self.path(blob_id)
            if target.is_file():
                tmp.unlink(missing_ok=True)
                continue
            self._make_parent(target)
            os.replace(tmp, target)
            directories.add(target.parent)
        if self.fsync and directories:
            list(self._syncer().map(_fsync_dir, directories))

    def _make_parent(self, target: Path) -> None:
        # Directories are never removed: each is made (a system call) once per process. Keyed by
        # the four hex digits that name it: at most 65,536 short strings.
        key = target.name[:4]
        if key not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(key)

    def _syncer(self) -> ThreadPoolExecutor:
        """The threads that issue a batch's fsyncs side by side: made once and kept (idle threads
        cost nothing), as starting 32 threads per batch cost more than the fsyncs on a busy machine."""
        with _SYNCER_LOCK:
            if self._sync_pool is None:
                self._sync_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tidings-fsync")
            return self._sync_pool

    def _install(self, tmp: Path, blob_id: str) -> None:
        target = self.path(blob_id)
        if target.is_file():
            tmp.unlink(missing_ok=True)
            return
        self._make_parent(target)
        os.replace(tmp, target)
        if self.fsync:
            _fsync_dir(target.parent)

    def read(self, blob_id: str) -> bytes | None:
        if not is_blob_id(blob_id):
            return None
        # The database first: most messages live there (at most INLINE_MAX), and an indexed lookup
        # costs less than the failed open of a file that is not there (with its path built).
        # Either copy is the same octets: a blob id names its content.
        data = self._inline(blob_id)
        if data is not None:
            return data
        try:
            return self.path(blob_id).read_bytes()
        except FileNotFoundError:
            return None

    def open(self, blob_id: str) -> BinaryIO | None:
        if not is_blob_id(blob_id):
            return None
        try:
            return open(self.path(blob_id), "rb")
        except FileNotFoundError:
            data = self._inline(blob_id)
            return io.BytesIO(data) if data is not None else None

    def iter_range(self, blob_id: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) of a blob, in chunks."""
        handle = self.open(blob_id)
        if handle is None:
            return
        with handle:
            handle.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def delete(self, blob_id: str) -> None:
        """Remove a blob's file (one kept in the database goes with its row, in the store's GC)."""
        if is_blob_id(blob_id):
            self.path(blob_id).unlink(missing_ok=True)

    def sweep_temporary(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by interrupted writes."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in self.tmp_dir.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
