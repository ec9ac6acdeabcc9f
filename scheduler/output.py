"""Capped, never-failing capture of what a command writes.

A command that floods output must not exhaust the daemon's memory or the database, and a
command that writes invalid UTF-8 or NUL bytes must still get its run recorded. So output
is kept as head and tail bytes with a marker saying how much was dropped between them,
then decoded with escapes for anything that is not text.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, TextIO


def marker(dropped: int) -> str:
    return f"\n[… {dropped} bytes of output dropped …]\n"


def render(head: bytes, tail: bytes = b"", dropped: int = 0) -> str:
    """Decode kept bytes for storage: escapes for undecodable bytes and NUL."""
    text = head.decode("utf-8", errors="backslashreplace")
    if dropped:
        text += marker(dropped)
    text += tail.decode("utf-8", errors="backslashreplace")
    return text.replace("\x00", "\\x00")


def split_limit(limit: int) -> tuple[int, int]:
    """How many bytes of head and of tail a capped stream keeps."""
    tail = limit // 2
    return limit - tail, tail


class CappedBuffer(io.TextIOBase):
    """A text stream keeping at most ``limit`` bytes: the first half and the last half."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.head_size, self.tail_size = split_limit(limit)
        self._data = bytearray()
        self._tail = bytearray()
        self._total = 0
        self._overflowed = False
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = text.encode("utf-8", errors="surrogateescape")
        with self._lock:
            self._total += len(data)
            if not self._overflowed:
                self._data += data
                if len(self._data) <= self.limit:
                    return len(text)
                self._overflowed = True
                self._tail = self._data[self.head_size :]
                del self._data[self.head_size :]
            else:
                self._tail += data
            if len(self._tail) > 2 * self.tail_size:
                del self._tail[: len(self._tail) - self.tail_size]
        return len(text)

    def getvalue(self) -> str:
        with self._lock:
            if not self._overflowed:
                return render(bytes(self._data))
            tail = bytes(self._tail[-self.tail_size :]) if self.tail_size else b""
            dropped = self._total - len(self._data) - len(tail)
            return render(bytes(self._data), tail, dropped)


def read_capped(stream: BinaryIO, limit: int) -> str:
    """Read a whole captured file, keeping head and tail if it is over ``limit`` bytes."""
    size = os.fstat(stream.fileno()).st_size
    stream.seek(0)
    if size <= limit:
        return render(stream.read())
    head_size, tail_size = split_limit(limit)
    head = stream.read(head_size)
    stream.seek(size - tail_size)
    tail = stream.read(tail_size)
    return render(head, tail, size - head_size - tail_size)


class ThreadRoutedStream(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr`` and sends each thread's writes to its run.

    Commands run in the daemon's threads may ``print()`` while other runs are going on; a
    thread with no run registered writes to the original stream as before.
    """

    def __init__(self, original: TextIO) -> None:
        super().__init__()
        self.original = original
        self._local = threading.local()

    @property
    def target(self) -> TextIO | io.TextIOBase:
        return getattr(self._local, "target", None) or self.original

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        target = self.target
        if not target.closed:  # at exit this object is flushed once more, maybe after it
            target.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @contextmanager
    def routed_to(self, target: TextIO | io.TextIOBase) -> Iterator[None]:
        previous = getattr(self._local, "target", None)
        self._local.target = target
        try:
            yield
        finally:
            self._local.target = previous


_install_lock = threading.Lock()


def routed_std_streams() -> tuple[ThreadRoutedStream, ThreadRoutedStream]:
    """Install (once) and return the thread-routing stand-ins for stdout and stderr."""
    with _install_lock:
        if not isinstance(sys.stdout, ThreadRoutedStream):
            sys.stdout = ThreadRoutedStream(sys.stdout)
        if not isinstance(sys.stderr, ThreadRoutedStream):
            sys.stderr = ThreadRoutedStream(sys.stderr)
    return sys.stdout, sys.stderr
