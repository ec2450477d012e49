"""A PostgreSQL of a test's own (embedded), which the test may crash and restart."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from seo_engine.db import embedded, migrate
from tests.conftest import with_database


class DisposableServer:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.admin_dsn = embedded.server_dsn(data_dir)
        self.dsn = with_database(self.admin_dsn, "faults")
        asyncio.run(self._create())

    async def _create(self) -> None:
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute("DROP DATABASE IF EXISTS faults WITH (FORCE)")
            await admin.execute("CREATE DATABASE faults")
        finally:
            await admin.close()
        connection = await asyncpg.connect(self.dsn)
        try:
            await migrate.migrate(connection)
        finally:
            await connection.close()

    @property
    def socket_dir(self) -> str:
        return self.admin_dsn.split("host=", 1)[1]

    def crash(self) -> None:
        embedded.stop_now(self.data_dir)

    def restart(self) -> None:
        embedded.server_dsn(self.data_dir)


class BlackHoleProxy:
    """TCP on loopback to the server's Unix socket; `black_hole()` stops all traffic."""

    def __init__(self, socket_dir: str) -> None:
        self.target = f"{socket_dir}/.s.PGSQL.5432"
        self.open = threading.Event()
        self.open.set()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._stop = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.open.wait()  # black hole: hold the bytes, answer nothing, close nothing
            try:
                sink.sendall(data)
            except OSError:
                return

    def black_hole(self) -> None:
        self.open.clear()

    def recover(self) -> None:
        self.open.set()

    def close(self) -> None:
        self._stop = True
        self.open.set()
        self.listener.close()
        for each in self._sockets:
            each.close()


@contextmanager
def disposable_server(tmp_path: Path) -> Iterator[DisposableServer]:
    server = DisposableServer(tmp_path / "own-postgres")
    try:
        yield server
    finally:
        with contextlib.suppress(embedded.EmbeddedError):
            server.restart()  # leave it running so that atexit can stop it cleanly
