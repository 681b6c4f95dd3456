"""A real PgBouncer, in transaction mode, in front of the local PostgreSQL.

Started by the test session as a process of its own (stopped by its PID), from Debian's
`pgbouncer` package, installed with apt-get when missing. Failing to start is a test
failure, never a skip: the pooler tests are what proves the serverless deploy works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.servers import free_port

PGBOUNCER_BINARY = "/usr/sbin/pgbouncer"
# PgBouncer refuses to run as root; it drops to this user (the server's own) when we are.
RUN_AS = "postgres"
START_TIMEOUT_SECONDS = 15.0
START_ATTEMPTS = 3
# Few server connections for many clients, handed out in turn: a transaction lands on a
# server connection another client used last, so any session state we relied on would show.
CONFIG = """\
[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
server_round_robin = 1
server_reset_query =
ignore_startup_parameters = extra_float_digits
admin_users = {user}
syslog = 0
"""


class PgBouncerError(RuntimeError):
    """PgBouncer could not be installed or started; the message carries its log."""


@dataclass
class PgBouncer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGINT is PgBouncer's immediate shutdown; kill it if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def pgbouncer_binary() -> str:
    """The binary, installing Debian's package first when it is missing."""
    found = shutil.which("pgbouncer") or (
        PGBOUNCER_BINARY if os.access(PGBOUNCER_BINARY, os.X_OK) else None
    )
    if found:
        return found
    if os.geteuid() != 0:
        raise PgBouncerError("pgbouncer is not installed: run `apt-get install -y pgbouncer`")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "pgbouncer"]
    if subprocess.run(install, env=environment, capture_output=True, check=False).returncode:
        subprocess.run(["apt-get", "update"], env=environment, capture_output=True, check=False)
        done = subprocess.run(install, env=environment, capture_output=True, text=True)
        if done.returncode:
            raise PgBouncerError(f"apt-get install pgbouncer failed: {done.stderr[-2000:]}")
    if not os.access(PGBOUNCER_BINARY, os.X_OK):
        raise PgBouncerError(f"pgbouncer installed, but {PGBOUNCER_BINARY} is missing")
    return PGBOUNCER_BINARY


def start_pgbouncer(upstream_host: str, upstream_port: int, user: str) -> PgBouncer:
    binary = pgbouncer_binary()
    last_log = ""
    # The port is picked before PgBouncer binds it, so another process may take it first.
    for _ in range(START_ATTEMPTS):
        bouncer = _launch(binary, upstream_host, upstream_port, user)
        if _wait_until_ready(bouncer):
            return bouncer
        last_log = bouncer.log()
        bouncer.stop()
    raise PgBouncerError(f"pgbouncer did not start; its log:\n{last_log[-4000:]}")


def _launch(binary: str, upstream_host: str, upstream_port: int, user: str) -> PgBouncer:
    directory = Path(tempfile.mkdtemp(prefix="vlmhooks-pgbouncer-"))
    # Readable by the user PgBouncer switches to; nothing here is secret (trust auth).
    directory.chmod(0o755)
    port = free_port()
    config = directory / "pgbouncer.ini"
    config.write_text(
        CONFIG.format(
            upstream_host=upstream_host,
            upstream_port=upstream_port,
            port=port,
            directory=directory,
            user=user,
        )
    )
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    for path in (config, directory / "userlist.txt"):
        path.chmod(0o644)
    command = [binary, str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", RUN_AS]
    with (directory / "pgbouncer.log").open("wb") as log:
        # Foreground (no -d): the PID we hold is PgBouncer's own, and it logs to stderr.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return PgBouncer(port, process, directory, user)


def _wait_until_ready(bouncer: PgBouncer) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            return False
        try:
            with psycopg.connect(bouncer.url("postgres"), connect_timeout=2, autocommit=True):
                return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False
