"""Running an app under uvicorn on a socket bound first, in this thread or a background one.

Binding the socket ourselves, before the model loads, turns "port in use"
into one clear sentence at once instead of a traceback after a minute of
loading, and leaves no window between checking the port and using it.
``port=0`` binds a free port (tests, benchmarks).
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

from lingualift.errors import LingualiftError


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port``, or a one-sentence error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise LingualiftError(
            f"Cannot resolve host {host!r}; give an IP address such as 127.0.0.1."
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts reuse TIME_WAIT ports
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise LingualiftError(
                f"Port {port} on {host} is already in use; stop the other server or pass port=<another>."
            ) from None
        if exc.errno == errno.EACCES:
            raise LingualiftError(
                f"Not allowed to listen on port {port} on {host}; use a port above 1023."
            ) from None
        raise LingualiftError(f"Cannot listen on {host}:{port} ({exc.strerror}).") from None
    sock.set_inheritable(True)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a child process that binds it itself)."""
    with bind_socket(host, 0) as sock:
        return int(sock.getsockname()[1])


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def _uvicorn_server(app: Any, log_level: str) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        access_log=log_level == "debug",
    )
    return uvicorn.Server(config)


def run_app(
    app: Any, sock: socket.socket, log_level: str = "info", until: threading.Event | None = None
) -> None:
    """Serve until SIGINT/SIGTERM (or ``until`` is set); shutdown waits for running requests,
    then the app's lifespan ends (the engine stops, the traffic log closes its segment)."""
    server = _uvicorn_server(app, log_level)
    if until is not None:  # uvicorn checks should_exit on every tick of its main loop
        threading.Thread(
            target=lambda: (until.wait(), setattr(server, "should_exit", True)), daemon=True
        ).start()
    server.run(sockets=[sock])


class ServerThread:
    """Serve an app from a background thread (tests and benchmarks); a context manager.

    >>> with ServerThread(app) as server:  # doctest: +SKIP
    ...     httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        start_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.sock = bind_socket(host, port)
        self.url = socket_url(self.sock)
        self.server = _uvicorn_server(app, log_level)
        self.start_timeout = start_timeout
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> ServerThread:
        self.thread.start()
        waited = threading.Event()
        for _ in range(int(self.start_timeout / 0.01)):
            if self.server.started or not self.thread.is_alive():
                break
            waited.wait(0.01)
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"the server did not start within {self.start_timeout:.0f} s")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
