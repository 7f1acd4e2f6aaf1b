"""A TCP proxy between the clients and esdblite whose connections a fault cuts."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time


class CuttableProxy:
    """A TCP proxy in front of esdblite for the clients: a fault resets every connection.

    Requests already sent may still commit while their replies are lost, which is how a
    client ends up not knowing the outcome of a command that was in fact written.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.refuse_until = 0.0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="torture-proxy").start()

    @property
    def uri(self) -> str:
        return f"esdb://127.0.0.1:{self.port}?Tls=false"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 2)
            except OSError:
                _reset(client)
                continue
            for s in (client, upstream):
                # As gRPC does: small frames must not wait for Nagle's algorithm.
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self.lock:
            self.open -= {source, sink}

    def cut(self, refuse_s: float) -> None:
        """Reset every connection now and refuse new ones for a while."""
        self.refuse_until = time.monotonic() + refuse_s
        with self.lock:
            doomed, self.open = self.open, set()
        for s in doomed:
            _reset(s)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut(0)


def _reset(s: socket.socket) -> None:
    """Drop a connection at once: nothing buffered is delivered any more."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # shutdown() wakes the pump thread blocked in recv(); close() alone would not.
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
