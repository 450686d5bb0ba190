"""A TCP proxy on 127.0.0.1 that a test can cut: what a client sees when its server dies or is unreachable.

``TcpProxy(host, port)`` listens on a port of its own and forwards every connection to ``host:port``.
:meth:`TcpProxy.cut` resets every open connection (RST to both ends: the client's next read or write fails
at once, the server sees its client vanish and rolls back an open transaction) and closes the listening
socket, so new connections are refused; :meth:`TcpProxy.restore` listens on the same port again.
:meth:`TcpProxy.cut_on_next_reply` arms a cut that happens when the server next answers, dropping that
answer: a request that reached the server whose reply never came back (a COMMIT that committed, say).

One daemon thread does all the socket work (a selector loop; cut and restore are commands it runs, so no
socket is closed under another thread's feet); :meth:`TcpProxy.close` stops and joins it. The loop ends by
itself after ``max_lifetime_s`` in case a test forgets to close it. The proxy's port lies below the
kernel's ephemeral range, so no outgoing connection can take it while the proxy is cut.

A plain helper module (no fixtures, no tests).
"""

from __future__ import annotations

import contextlib
import queue
import random
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = ["TcpProxy"]

#: How long a command (cut, restore, close) may wait for the proxy's thread, and a connect upstream.
_COMMAND_TIMEOUT_S = 10.0
_CONNECT_TIMEOUT_S = 5.0
#: How long one select waits; the loop checks for the end of its life at least this often.
_TICK_S = 0.1
_CHUNK = 65536

Command = Literal["cut", "arm", "restore", "stop"]


@dataclass(eq=False)
class _Link:
    """One forwarded connection: the client's socket and ours to the server."""

    client: socket.socket
    upstream: socket.socket


@dataclass
class _Request:
    command: Command
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host:upstream_port`` until cut; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int, *, max_lifetime_s: float = 300.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.max_lifetime_s = max_lifetime_s
        #: Connections accepted, and connections reset by cuts, since the start (for the test's figures).
        self.accepted = 0
        self.reset = 0
        self._links: dict[socket.socket, _Link] = {}
        self._selector = selectors.DefaultSelector()
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._listener: socket.socket | None = _listen_on_free_port()
        self.port: int = self._listener.getsockname()[1]
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._armed = False
        self._thread = threading.Thread(target=self._loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    # --- what tests call ---------------------------------------------------------------------------------

    @property
    def is_cut(self) -> bool:
        """True between :meth:`cut` (or an armed cut that fired) and :meth:`restore`."""
        return self._listener is None

    def cut(self) -> None:
        """Reset every open connection and refuse new ones (returns once that is done)."""
        self._call("cut")

    def cut_on_next_reply(self) -> None:
        """Cut as soon as the server sends anything, dropping it (returns once armed)."""
        self._call("arm")

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._call("restore")

    def close(self) -> None:
        """Reset every connection, stop listening, stop and join the thread (safe to call twice)."""
        if self._thread.is_alive():
            self._call("stop")
            self._thread.join(_COMMAND_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError(f"proxy thread on port {self.port} did not stop")
        self._teardown()  # the loop did this already (idempotent): sockets are closed whatever happened
        self._wake_w.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, command: Command) -> None:
        if not self._thread.is_alive():
            raise RuntimeError(f"proxy on port {self.port} has stopped; cannot {command}")
        request = _Request(command)
        self._requests.put(request)
        self._wake_w.send(b"!")
        if not request.done.wait(_COMMAND_TIMEOUT_S):
            raise TimeoutError(f"proxy on port {self.port} did not {command} within {_COMMAND_TIMEOUT_S} s")
        if request.error is not None:
            raise request.error

    # --- the proxy's thread --------------------------------------------------------------------------------

    def _loop(self) -> None:
        ends = time.monotonic() + self.max_lifetime_s
        try:
            while time.monotonic() < ends:
                for key, _ in self._selector.select(timeout=_TICK_S):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._wake_r:
                        if not self._run_requests():
                            return
                    elif sock is self._listener:
                        self._accept(sock)
                    elif sock in self._links:  # not reset by an earlier event of this same select
                        self._forward(sock)
        finally:
            self._teardown()
            self._fail_pending()

    def _run_requests(self) -> bool:
        """Run the queued commands; False when one of them is "stop"."""
        while True:
            try:
                self._wake_r.recv(_CHUNK)
            except BlockingIOError:
                break
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return True
            try:
                if request.command == "cut":
                    self._cut()
                elif request.command == "arm":
                    self._armed = True
                elif request.command == "restore":
                    self._restore()
                else:
                    self._teardown()
                    request.done.set()
                    return False
            except OSError as exc:
                request.error = exc
            request.done.set()

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        self.accepted += 1
        try:
            upstream = socket.create_connection(self.upstream, timeout=_CONNECT_TIMEOUT_S)
        except OSError:
            _reset(client)  # the server itself is unreachable: so is the proxy
            return
        for sock in (client, upstream):
            sock.settimeout(_CONNECT_TIMEOUT_S)  # sendall below waits at most this long
        link = _Link(client, upstream)
        for sock in (client, upstream):
            self._links[sock] = link
            self._selector.register(sock, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        link = self._links[sock]
        peer = link.upstream if sock is link.client else link.client
        try:
            data = sock.recv(_CHUNK)
            if data and sock is link.upstream and self._armed:
                self._cut()  # the server answered; the answer is lost with the connection
                return
            if data:
                peer.sendall(data)
                return
        except OSError:
            self._drop(link, reset=True)
            return
        self._drop(link, reset=False)  # one side closed: close the other, as a plain TCP path would

    def _cut(self) -> None:
        self._armed = False
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        for link in {id(link): link for link in self._links.values()}.values():
            self._drop(link, reset=True)
            self.reset += 1

    def _restore(self) -> None:
        if self._listener is not None:
            return
        self._listener = _listen(self.port)
        self._selector.register(self._listener, selectors.EVENT_READ)

    def _drop(self, link: _Link, *, reset: bool) -> None:
        for sock in (link.client, link.upstream):
            if self._links.pop(sock, None) is not None:
                self._selector.unregister(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()

    def _teardown(self) -> None:
        self._cut()
        self._armed = False
        if self._wake_r.fileno() != -1:
            self._selector.unregister(self._wake_r)
            self._wake_r.close()
        self._selector.close()

    def _fail_pending(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            request.error = RuntimeError(
                f"proxy on port {self.port} stopped before it could {request.command}"
            )
            request.done.set()


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER on, timeout 0): the peer's next I/O fails at once."""
    with contextlib.suppress(OSError):  # already closed by the peer: a plain close will do
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port``; waits a little while the port is still being released."""
    deadline = time.monotonic() + _COMMAND_TIMEOUT_S / 2
    while True:
        try:
            return _bind_listen(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _bind_listen(port: int) -> socket.socket:
    """One attempt: a non-blocking socket listening on 127.0.0.1:``port`` (OSError when it is taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _listen_on_free_port() -> socket.socket:
    """Listen on a free port below the ephemeral range (an outgoing connection may take an ephemeral port
    while the proxy is cut, and then :meth:`TcpProxy.restore` could not listen on it again)."""
    low = _ephemeral_low()
    candidates = random.sample(range(20000, low), k=min(200, low - 20000)) if low > 20200 else []
    for port in candidates:
        try:
            return _bind_listen(port)
        except OSError:
            continue
    return _listen(0)  # no such range here: any free port (still fine unless the port is taken meanwhile)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere as good a guess as any
