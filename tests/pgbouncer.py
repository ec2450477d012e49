"""A PgBouncer of a test's own, in transaction mode, on loopback in front of the test database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.disposable import BlackHoleProxy
from tests.waiting import until

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
STARTUP_SECONDS = 10
CONFIG = """\
[databases]
{database} = host={host} port={port} dbname={database} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,statement_timeout,idle_in_transaction_session_timeout
logfile = {log}
"""


def installed() -> bool:
    return Path(PGBOUNCER).is_file()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True

    until(listening, STARTUP_SECONDS, "pgbouncer to listen")


@contextmanager
def pgbouncer(dsn: str, pool_size: int = 2) -> Iterator[str]:
    """Start PgBouncer in front of `dsn`'s database; yield the DSN to connect through it.

    An embedded server listens on a Unix socket in a private folder, which PgBouncer (it
    refuses to run as root, so it runs as `nobody`) cannot open: a loopback TCP relay
    owned by the test stands in between.
    """
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    database = parts.path.lstrip("/")
    user = parts.username or query.get("user", ["postgres"])[0]
    host = parts.hostname or query.get("host", [""])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    with ExitStack() as stack:
        if not host or host.startswith("/"):
            relay = BlackHoleProxy(host)
            stack.callback(relay.close)
            host, port = "127.0.0.1", relay.port
        folder = Path(tempfile.mkdtemp(prefix="seo-engine-pgbouncer-"))
        stack.callback(shutil.rmtree, folder, True)
        folder.chmod(0o777)  # PgBouncer runs as nobody and writes its log here
        listen_port = _free_port()
        log = folder / "pgbouncer.log"
        config = folder / "pgbouncer.ini"
        config.write_text(
            CONFIG.format(
                database=database,
                host=host,
                port=port,
                user=user,
                listen_port=listen_port,
                pool_size=pool_size,
                log=log,
            )
        )
        config.chmod(0o644)
        command = [PGBOUNCER, str(config)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "nobody"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(listen_port, process, log)
            yield f"postgresql://{user}@127.0.0.1:{listen_port}/{database}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
