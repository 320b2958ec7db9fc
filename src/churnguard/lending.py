"""Lending the store: how a command-line process works on a project while `churnguard serve` runs.

DuckDB lets one process hold a database file for writing. While the service runs, it holds the
project's store; a command that needs the store asks the service to *lend* it:

1. ``churnguard serve`` listens on a Unix socket in the project folder
   (:data:`SOCKET_NAME`, mode 0600, removed when it stops; a socket left behind by a killed
   service refuses connections and is replaced or ignored).
2. A command connects and sends one JSON line naming the store it wants
   (``{"op": "borrow", "store": PATH, "pid": ..., "read_only": ...}``). The service refuses a
   store that is not its own. It answers ``{"waiting": true, "pid": ..., "borrower_pid": ...}``
   (who lends, and who has the store now) and lends to one borrower at a time, in order of
   arrival: it lets its in-flight requests finish, closes its own handle and answers
   ``{"lent": true, ...}``.
3. The command opens the file itself, runs, closes it, and closes the connection. The service
   sees the connection end — also when the command is killed (the kernel closes its sockets) —
   and opens the store again.

So there is always one writer and nothing waits on DuckDB's lock; a command waits at most
``CHURNGUARD_LOCK_WAIT`` seconds for its turn. Lending needs Unix-domain sockets (Linux, macOS);
elsewhere a command on a served project fails with :class:`~churnguard.store.StoreBusyError`
as before.

The process keeps one lease per store: a command that opens the store again while it holds
a lease (``erase`` holds one across its row deletion and the file rewrite) reuses it.

>>> socket_path(Path("/srv/shop")).name
'.churnguard-serve.sock'
>>> _encode({"op": "borrow"})
b'{"op": "borrow"}\\n'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnguard.store import LOCK_POLL_S, Store, StoreBusyError, StoreError

log = logging.getLogger("churnguard.lending")

SOCKET_NAME = ".churnguard-serve.sock"
PROTOCOL = 1
# The service hands the store over within this long even when CHURNGUARD_LOCK_WAIT is 0: it
# closes its handle once in-flight requests end, which takes a moment, not a queue's wait.
HANDOVER_MIN_S = 5.0
# After "lent", the service's handle is closed: the file opens at once; this only covers a slow
# close on a loaded machine.
OPEN_AFTER_LEND_S = 10.0
_MAX_LINE = 64 * 1024
# Unix socket addresses are at most 108 bytes (104 on macOS): longer paths go through /proc.
_MAX_ADDRESS = 100
_POLL_S = 0.2


def supported() -> bool:
    """Whether this platform has Unix-domain sockets (lending needs them)."""
    return os.name == "posix" and hasattr(socket, "AF_UNIX")


def socket_path(root: Path) -> Path:
    """Where the service of the project folder ``root`` listens."""
    return Path(root) / SOCKET_NAME


def _encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message) + "\n").encode("utf-8")


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """A socket address for ``path``: the path itself, or for a long one the same file through
    /proc/self/fd/N of its folder (Linux), which keeps the address short."""
    text = str(path)
    if len(text.encode()) <= _MAX_ADDRESS:
        yield text
        return
    if not Path("/proc/self/fd").is_dir():
        raise OSError(f"{path}: the path is too long for a Unix socket on this system")
    fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class _Lines:
    """JSON lines read from a socket; what arrives past a line waits in a buffer for the next
    read (two answers sent back to back can arrive in one chunk)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def read(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message; None when the peer closed first. Raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
            if len(self._buffer) > _MAX_LINE:
                raise ValueError("message too long")
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("not a JSON object")
        return message


def _command_line() -> str:
    try:
        argv = Path("/proc/self/cmdline").read_bytes().split(b"\0")
        return " ".join(a.decode("utf-8", "replace") for a in argv if a)[:300]
    except OSError:
        return "a churnguard command"


# -- the borrower (a command-line process) --------------------------------------------------------
@dataclass
class Lease:
    """This process's borrow of a store from the service; the service has it back once
    :meth:`release` has been called as often as the lease was taken (or the process ends)."""

    store: str
    sock: socket.socket
    lender_pid: int
    count: int = 1

    def release(self) -> None:
        with _HELD_LOCK:
            self.count -= 1
            if self.count > 0:
                return
            _HELD.pop(self.store, None)
        with contextlib.suppress(OSError):
            self.sock.close()


_HELD: dict[str, Lease] = {}
_HELD_LOCK = threading.Lock()


def _key(store_path: Path) -> str:
    return str(Path(store_path).resolve())


def borrow(store_path: Path, *, wait_s: float, read_only: bool = False) -> Lease | None:
    """Borrow the store at ``store_path`` from the service that holds it.

    Returns None when no live service listens in the store's folder (no socket, a stale one,
    or no Unix sockets here). Waits up to ``max(wait_s, HANDOVER_MIN_S)`` seconds for the
    service to hand the store over, then raises :class:`StoreBusyError` saying who has it."""
    key = _key(store_path)
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
            return held
    if not supported():
        return None
    path = socket_path(Path(key).parent)
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _address(path) as address:
            sock.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()  # a socket left by a service that is gone: nobody lends, nobody holds
        return None
    except PermissionError:
        sock.close()
        raise StoreBusyError(f"{key}: `churnguard serve` runs on this project as another user "
                             f"(its socket {path} is theirs alone); run the command as that "
                             "user, or use the service's REST API") from None
    except OSError as exc:
        sock.close()
        raise StoreError(f"{path}: cannot reach the running service to borrow the store: "
                         f"{exc}") from None
    try:
        lease = _ask(sock, key, wait_s=max(wait_s, HANDOVER_MIN_S), read_only=read_only)
    except BaseException:
        sock.close()
        raise
    if lease is None:
        sock.close()
        return None
    with _HELD_LOCK:
        _HELD[key] = lease
    return lease


def _ask(sock: socket.socket, key: str, *, wait_s: float, read_only: bool) -> Lease | None:
    sock.sendall(_encode({"op": "borrow", "protocol": PROTOCOL, "store": key, "pid": os.getpid(),
                          "command": _command_line(), "read_only": read_only}))
    queued: dict[str, Any] | None = None
    deadline = time.monotonic() + wait_s
    lines = _Lines(sock)
    while True:
        try:
            reply = lines.read(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            ahead = (f"; ahead of it: process {queued['borrower_pid']} ({queued['borrower']})"
                     if queued and queued.get("borrower_pid") else "")
            raise StoreBusyError(
                f"{key}: `churnguard serve` (process {queued and queued.get('pid') or '?'}) holds "
                f"the project and did not lend it within {wait_s:.0f} s{ahead}. Commands take "
                "turns with the service; wait longer with CHURNGUARD_LOCK_WAIT=SECONDS") from None
        if reply is None:
            return None  # the service is stopping: its file is free in a moment
        if reply.get("waiting"):
            queued = reply
            continue
        if not reply.get("lent"):
            raise StoreError(f"{key}: the running service refused to lend the store: "
                             f"{reply.get('error', 'no reason given')}")
        if not _same_file(reply.get("store", ""), key):
            raise StoreError(f"{key}: the service listening in this folder serves another "
                             f"store ({reply.get('store')}); refusing to borrow")
        return Lease(store=key, sock=sock, lender_pid=int(reply.get("pid", 0)))


def open_store(path: Path, *, read_only: bool = False, wait_s: float) -> Store:
    """Open the store at ``path``: borrowed from the service when one runs on it, else
    directly, waiting up to ``wait_s`` seconds for another process to release it.

    The returned store gives a borrowed file back when it is closed."""
    path = Path(path)
    if not supported():
        return Store.open(path, read_only=read_only, wait_s=wait_s)
    started = time.monotonic()
    deadline = started + wait_s
    while True:
        lease = borrow(path, wait_s=max(0.0, deadline - time.monotonic()), read_only=read_only)
        if lease is not None:
            try:
                store = Store.open(path, read_only=read_only, wait_s=OPEN_AFTER_LEND_S)
            except BaseException:
                lease.release()
                raise
            store.on_close(lease.release)
            return store
        try:
            return Store.open(path, read_only=read_only)
        except StoreBusyError:
            # A service may be starting (it opens the store, then listens): look again.
            if time.monotonic() >= deadline:
                return Store.open(path, read_only=read_only,
                                  waited_s=time.monotonic() - started)
            time.sleep(LOCK_POLL_S)


@contextlib.contextmanager
def holding(path: Path, *, wait_s: float) -> Iterator[None]:
    """Hold a borrow of the store at ``path`` for the block, when a service runs on it (nothing
    otherwise): stores opened inside open the file directly, and it stays closed to the service
    between them (``erase`` deletes rows, then rewrites the closed file)."""
    lease = borrow(Path(path), wait_s=wait_s)
    try:
        yield
    finally:
        if lease is not None:
            lease.release()


# -- the lender (the service) --------------------------------------------------------------------
@dataclass
class Borrower:
    pid: int
    command: str
    read_only: bool
    since: float = field(default_factory=time.time)

    def describe(self) -> str:
        return f"process {self.pid} ({self.command})"


LendFn = Callable[[Borrower], contextlib.AbstractContextManager[None]]


class Lender:
    """The service's side: listens on the project's socket and lends the store, one borrower
    at a time, in order of arrival.

    ``lend(borrower)`` is a context manager that closes the service's handle on entry (after
    in-flight requests) and opens it again on exit (:meth:`~churnguard.service.store_pool.
    StorePool.lent`)."""

    def __init__(self, *, root: Path, store_path: Path, lend: LendFn) -> None:
        self.root, self.store_path, self._lend = Path(root), Path(store_path), lend
        self.path = socket_path(self.root)
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._queue: list[object] = []
        self.borrower: Borrower | None = None
        self._threads: list[threading.Thread] = []
        self._accept_thread: threading.Thread | None = None
        self._inode: int | None = None

    def start(self) -> bool:
        """Listen; False (with a log line) where lending is not possible (no Unix sockets,
        another live service on the folder)."""
        if not supported():
            log.warning("no Unix sockets here: commands cannot borrow the store while the "
                        "service runs")
            return False
        if self.path.exists() or self.path.is_symlink():
            if self._alive():
                log.warning("%s: another service listens here; commands borrow from it",
                            self.path)
                return False
            self.path.unlink()  # left by a service that was killed
        self._sock = self._bind()
        self._accept_thread = threading.Thread(target=self._accept, name="churnguard-lender",
                                               daemon=True)
        self._accept_thread.start()
        return True

    def _alive(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _address(self.path) as address:
                probe.connect(address)
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def _bind(self) -> socket.socket:
        # Bound in a private folder (0700), made 0600, then renamed into place: at no moment
        # can another user connect to it.
        private = Path(tempfile.mkdtemp(prefix=".churnguard-", dir=self.root))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            staged = private / "s"
            with _address(staged) as address:
                sock.bind(address)
            os.chmod(staged, 0o600)
            os.replace(staged, self.path)
            self._inode = self.path.lstat().st_ino
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        finally:
            with contextlib.suppress(OSError):
                for leftover in private.iterdir():
                    leftover.unlink()
                private.rmdir()
        return sock

    def stop(self) -> None:
        """Stop lending: the socket goes, a borrow in progress ends (its command keeps the file
        until it closes it), waiting borrowers are turned away."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in [self._accept_thread, *self._threads]:
            if thread is not None:
                thread.join(timeout=30)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            with contextlib.suppress(OSError):
                if self.path.lstat().st_ino == self._inode:  # ours, not a later service's
                    self.path.unlink()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self._sock], [], [], _POLL_S)
                if not readable:
                    continue
                conn, _ = self._sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("the lending socket failed")
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                      name="churnguard-lend")
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                borrower = self._request(conn)
            except (OSError, ValueError, TypeError, TimeoutError) as exc:
                with contextlib.suppress(OSError):
                    conn.sendall(_encode({"lent": False, "error": f"bad request: {exc}"}))
                return
            if borrower is None:
                return
            try:
                self._lend_to(conn, borrower)
            except Exception:  # noqa: BLE001 - one failed borrow must not stop the lender
                log.exception("lending the store to %s failed", borrower.describe())

    def _request(self, conn: socket.socket) -> Borrower | None:
        """Read and check a borrow request; answer a refusal and return None if it is not one
        this service grants."""
        uid = _peer_uid(conn)
        if uid is not None and uid != os.getuid():
            conn.sendall(_encode({"lent": False, "error": "another user's process"}))
            return None
        message = _Lines(conn).read(timeout=10)
        if message is None:
            return None
        refusal = None
        if message.get("op") != "borrow" or message.get("protocol") != PROTOCOL:
            refusal = f"unknown request; this service speaks protocol {PROTOCOL}"
        elif not _same_file(str(message.get("store", "")), self.store_path):
            # The socket lives in the project folder, so this is a mistake or a trick: a
            # borrower of another project must never be told it may write this one.
            refusal = (f"this service serves {self.store_path}, not "
                       f"{message.get('store')!s:.300}")
        if refusal is not None:
            conn.sendall(_encode({"lent": False, "error": refusal,
                                  "store": str(self.store_path)}))
            return None
        return Borrower(pid=int(message.get("pid", 0)),
                        command=str(message.get("command", ""))[:300],
                        read_only=bool(message.get("read_only", False)))

    def _lend_to(self, conn: socket.socket, borrower: Borrower) -> None:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            # First word back: who lends, and who has the store now (for a waiter's message).
            ahead = self.borrower
            conn.sendall(_encode({"waiting": True, "pid": os.getpid(),
                                  "borrower_pid": ahead and ahead.pid,
                                  "borrower": ahead and ahead.command}))
        try:
            if not self._wait_turn(conn, ticket):
                return
            with self._lend(borrower):
                self.borrower = borrower
                try:
                    conn.sendall(_encode({"lent": True, "store": str(self.store_path),
                                          "pid": os.getpid()}))
                    log.info("lent the store to %s", borrower.describe())
                    self._wait_closed(conn)
                finally:
                    self.borrower = None
            log.info("%s gave the store back", borrower.describe())
        finally:
            with self._cond:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def _wait_turn(self, conn: socket.socket, ticket: object) -> bool:
        """Wait until ``ticket`` heads the queue; False when the borrower gave up meanwhile or
        the service stops."""
        with self._cond:
            while self._queue[0] is not ticket:
                if self._stop.is_set() or _closed(conn):
                    return False
                self._cond.wait(_POLL_S)
        return not self._stop.is_set()

    def _wait_closed(self, conn: socket.socket) -> None:
        """Until the borrower closes the connection (or dies: the kernel closes it) or the
        service stops."""
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], _POLL_S)
            if readable and _closed(conn, peek=False):
                return


def _closed(conn: socket.socket, *, peek: bool = True) -> bool:
    """Whether the peer has closed ``conn`` (anything it sends meanwhile is read and dropped
    when not peeking)."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        data = conn.recv(4096, socket.MSG_PEEK if peek else 0)
    except OSError:
        return True
    return not data


def _peer_uid(conn: socket.socket) -> int | None:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None  # macOS: the socket's mode 0600 already keeps other users out
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid
