"""A loopback TCP proxy that fault-injection tests switch off and on, slow down, or cut.

``down()`` closes the listening socket and resets every open connection, so clients see
"connection refused" at once (an endpoint that is gone) instead of hanging; ``up()``
listens again on the same port. The upstream server and its data are untouched, which
matters for moto: restarting it would lose every archived object.

``latency_s`` delays every answer (upstream to client) by that much, as a slow network or
an overloaded server would. ``cut_replies_to_writes(min_bytes, times)`` lets a large request
through and resets the connection instead of delivering its answer: the server did the work
(a bulk insert landed, whole or in part), the client never heard back and must retry.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time


class TcpProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<upstream_port> while up."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.latency_s = 0.0
        self._cut_min_bytes = 0
        self._cuts_left = 0
        self.cuts = 0  # answers not delivered so far
        self._doomed: set[socket.socket] = set()  # client sockets whose next answer is cut

    def heal(self) -> None:
        """Back to a plain, listening proxy: no latency, no cuts armed."""
        with self._lock:
            self._cuts_left = 0
            self._doomed.clear()
        self.latency_s = 0.0
        self.up()

    def cut_replies_to_writes(self, min_bytes: int, times: int = 1) -> None:
        """The next ``times`` requests of at least ``min_bytes`` reach the server; their answers do not."""
        with self._lock:
            self._cut_min_bytes, self._cuts_left = min_bytes, times

    def up(self) -> None:
        """Start accepting (idempotent)."""
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _reset(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # down() closed the listener
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream, client, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, client: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers:
                    if self._cut(client):
                        _reset(client)
                        _reset(src)
                        return
                    if self.latency_s:
                        time.sleep(self.latency_s)
                else:
                    self._watch(client, len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._conns -= {src, dst}

    def _watch(self, client: socket.socket, size: int) -> None:
        """A request chunk from ``client``: a large one dooms its answer while cuts are armed."""
        with self._lock:
            if self._cuts_left > 0 and size >= self._cut_min_bytes:
                self._cuts_left -= 1
                self._doomed.add(client)

    def _cut(self, client: socket.socket) -> bool:
        with self._lock:
            if client not in self._doomed:
                return False
            self._doomed.discard(client)
            self.cuts += 1
            return True


def _reset(conn: socket.socket) -> None:
    # LINGER 0 turns the close into a reset (no FIN); shutting the read side first wakes the
    # pipe thread blocked in recv() on this socket: a bare close() from another thread would
    # not, and the connection would live on until the peer sent something
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        conn.close()
