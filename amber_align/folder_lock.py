"""Locks on folders, so that two jobs never write into one folder unawares.

- :func:`locked_directory`: an exclusive, *blocking* ``flock`` on the folder itself, for short read-merge-write
  sections (``results.json``: two evaluations into one run folder wait for each other and both tasks are kept).
- :class:`FolderLock`: an exclusive, *non-blocking* lock held for a whole run (``align``, ``finetune``): the file
  ``<folder>/.amber-align.lock`` is ``flock``-ed and records its holder (pid, host, start time, command); a second
  run is refused with :class:`FolderInUseError` naming the holder. The lock goes with the holder's open file, so a
  killed run leaves no stale lock; the file is removed on release.

Where there is no ``fcntl`` (not POSIX) both are no-ops.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amber_align.errors import ConfigError

__all__ = ["locked_directory", "FolderLock", "FolderInUseError", "LOCK_FILE"]

#: name of the run lock inside the locked folder (a dot file: the Hub push leaves it out)
LOCK_FILE = ".amber-align.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class FolderInUseError(ConfigError):
    """The folder is locked by another run; ``holder`` is what that run recorded (pid, host, started, command)."""

    def __init__(self, message: str, holder: dict[str, Any]):
        self.holder = holder
        super().__init__(message)


@contextlib.contextmanager
def locked_directory(directory: str | os.PathLike) -> Iterator[None]:
    """An exclusive, blocking ``flock`` on ``directory`` itself (created if missing; no lock file left behind)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "run that is just starting"
    where = f" on {holder['host']}" if holder.get("host") and holder["host"] != socket.gethostname() else ""
    what = f"{holder['command']} run" if holder.get("command") else "run"
    return f"{what} pid {holder['pid']}{where}, started {holder.get('started', '?')}"


class FolderLock:
    """An exclusive lock on ``folder`` for the length of one run, taken with :meth:`acquire`, given back with
    :meth:`release` (or as a context manager). ``command`` (e.g. ``"align"``) is recorded for the message a
    refused run prints."""

    def __init__(self, folder: str | os.PathLike, command: str = ""):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`FolderInUseError` at once (never waits) naming the holder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - not POSIX
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read_holder(fd)
                os.close(fd)
                raise FolderInUseError(
                    f"output_dir: {str(self.folder)!r} is in use by another {_describe(holder)} (lock "
                    f"{self.path.name}); wait for it to finish, or give another output_dir", holder) from None
            try:  # the previous holder may have removed the file between our open and our lock: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "command": self.command,
                  "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    @classmethod
    def _read_holder(cls, fd: int, wait_s: float = 2.0) -> dict[str, Any]:
        """The holder's record. The holder writes it just after taking the lock, so a run refused in between
        finds the file empty: read again for up to ``wait_s`` seconds before naming a run that is just starting."""
        deadline = time.monotonic() + wait_s
        while True:
            holder = cls._read(fd)
            if holder.get("pid") or time.monotonic() >= deadline:
                return holder
            time.sleep(0.02)

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 65536, 0).decode("utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        """Give the lock back and remove the lock file (a no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # before closing: whoever opened the old file re-checks the inode and retries
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
