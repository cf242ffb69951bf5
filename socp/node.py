"""Starting and stopping a whole node: prepare the data directory, render the
supervisord configuration, run supervisord, wait until the node answers."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import ssl
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from socp.config import NodeConfig
from socp.identity import IdentityError, NodeIdentity, load_or_create_identity
from socp.ipc.endpoints import ensure_runtime_dir

# Package data, so a regular (non-editable) install has it too; the repo root's
# supervisor.conf is a symlink to this file, for operators who look there first.
TEMPLATE = Path(__file__).resolve().parent / "supervisor.conf"
BRIDGE_TEMPLATE = Path(__file__).resolve().parent / "verifier" / "bridge.conf"   # with --verifier-listen
SUPERVISOR_LOG = "supervisord.log"   # in the run dir; `socp status` counts restarts from it
LOCK_FILE = "node.lock"              # in the data dir; holds the pid of the `socp up` that owns it


class NodeStartError(Exception):
    """A reason the node cannot start, worded for the operator."""


class DataDirLock:
    """`socp up`'s exclusive hold on its data directory, for the life of the node.

    Taken before anything is written there: a second `socp up` on a running node's
    directory would otherwise rewrite its node.json and, failing to start, delete its
    sockets. flock dies with the process, so a crashed node leaves no stale lock; the
    descriptor is not inherited, so supervisord and the actors never hold it.
    """

    def __init__(self, data_dir: Path, descriptor: int, created_dirs: list[Path]) -> None:
        self.data_dir = data_dir
        self._descriptor = descriptor
        self._created_dirs = created_dirs   # deepest first: what a refused start takes back

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        data_dir = Path(data_dir).resolve()
        created_dirs = [d for d in (data_dir, *data_dir.parents) if not d.exists()]
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise NodeStartError(f"data directory {data_dir} is not writable: {exc.strerror}") from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise NodeStartError(f"a node is already running in {data_dir} (pid {holder})") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        return cls(data_dir, descriptor, created_dirs)

    def release(self, *, refused: bool = False) -> None:
        """Unlock. After a refused start, also remove the directories this start made,
        if they are still empty, so a typo in --port leaves no stray data dir behind."""
        if self._descriptor < 0:
            return
        if refused and self._created_dirs:
            (self.data_dir / LOCK_FILE).unlink(missing_ok=True)
        os.close(self._descriptor)
        self._descriptor = -1
        if refused:
            for directory in self._created_dirs:
                try:
                    directory.rmdir()
                except OSError:
                    break   # not empty: it holds something worth keeping


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise NodeStartError(f"port {port} on {host} is in use (or not allowed): {exc.strerror}") from exc


def check_database(url: str) -> None:
    """Open the database once before any actor starts, so a wrong URL or password is
    one clear line here rather than a store that supervisord restarts forever."""
    import asyncio

    from socp.store.database import Database
    from socp.store.errors import StoreError

    async def probe() -> None:
        database = await Database.create(url)
        await database.close()

    try:
        asyncio.run(probe())
    except StoreError as exc:
        raise NodeStartError(f"database: {exc}") from exc


def prepare(config: NodeConfig) -> tuple[NodeIdentity, bool]:
    """Everything before the actors start; raise NodeStartError with a clear reason.
    The data dir exists and is writable already: `DataDirLock.acquire` made it."""
    check_port_free(config.host, config.port)
    if config.metrics:
        from socp.metrics import reset_directory
        from socp.metrics.address import parse_metrics_address

        check_port_free(*parse_metrics_address(config.metrics))
    check_database(config.database_url)
    try:
        identity, created = load_or_create_identity(Path(config.data_dir))
    except IdentityError as exc:
        raise NodeStartError(str(exc)) from exc
    ensure_runtime_dir(config.run_dir)
    if config.metrics:
        reset_directory(config)
    config.save()
    return identity, created


SUPERVISOR_SECRET = "supervisor.secret"


def new_control_secret(run_dir: Path) -> str:
    """A fresh password for supervisord's control socket, kept 0600 in the run dir
    (`control_secret` reads it): the socket is 0700 already, and without a password
    supervisord greets every start with a CRIT line about it."""
    secret = secrets.token_urlsafe(24)
    path = Path(run_dir) / SUPERVISOR_SECRET
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    return secret


def control_secret(run_dir: Path) -> str | None:
    try:
        return (Path(run_dir) / SUPERVISOR_SECRET).read_text().strip()
    except FileNotFoundError:
        return None


METRICS_PROGRAM = """[program:metrics]
command=${python} -m socp actor metrics --data-dir ${data_dir}
priority=50                     ; after the gateway; holds no state (default 999)
autostart=true                  ; (default true)
autorestart=true                ; (default unexpected)
startsecs=1                     ; (default 1)
startretries=10                 ; (default 3)
stopsignal=TERM                 ; (default TERM)
stopwaitsecs=3                  ; (default 10)
stopasgroup=true                ; (default false)
killasgroup=true                ; (default false)
stdout_logfile=/dev/stdout      ; (default AUTO)
stdout_logfile_maxbytes=0       ; (default 50MB)
redirect_stderr=true            ; (default false)
"""


def render_supervisor_conf(config: NodeConfig) -> Path:
    values = {"python": sys.executable, "data_dir": str(Path(config.data_dir).resolve()),
              "run_dir": str(config.run_dir), "verifiers": max(1, config.verifiers),
              "uid": os.getuid(), "control_secret": new_control_secret(config.run_dir)}
    metrics_program = string.Template(METRICS_PROGRAM).substitute(values) if config.metrics else ""
    rendered = string.Template(TEMPLATE.read_text()).substitute(values, metrics_program=metrics_program)
    if config.verifier_listen:
        rendered += string.Template(BRIDGE_TEMPLATE.read_text()).substitute(values)
    path = config.run_dir / "supervisord.conf"
    path.write_text(rendered)
    # supervisord appends to its log and never rotates it here (logfile_maxbytes=0):
    # keep one previous run's log so the file stays small across many starts.
    previous_log = config.run_dir / SUPERVISOR_LOG
    if previous_log.exists():
        previous_log.replace(previous_log.with_name(SUPERVISOR_LOG + ".1"))
    return path


def die_with_parent() -> None:
    """Get SIGTERM when our parent dies (supervisord for an actor, `socp up` for
    supervisord), so no part of a node outlives its owner."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the operator's Ctrl-C path still stops the node


def start_supervisord(conf: Path) -> subprocess.Popen[bytes]:
    # A process group of its own, so one signal reaches supervisord and not our caller.
    return subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)],
                            start_new_session=True, preexec_fn=die_with_parent)


def own_certificate_context(config: NodeConfig) -> ssl.SSLContext:
    """For asking our own node over loopback: trust exactly the node's certificate (a
    leaf alone is enough with PARTIAL_CHAIN). The host name is not checked since we
    dial 127.0.0.1 while the certificate names the public host."""
    context = ssl.create_default_context(cafile=config.tls_cert)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    return context


def health(config: NodeConfig, timeout: float = 1.0) -> dict[str, Any] | None:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    scheme, context = ("https", own_certificate_context(config)) if config.tls else ("http", None)
    try:
        with urllib.request.urlopen(f"{scheme}://{host}:{config.port}/healthz", timeout=timeout,
                                    context=context) as reply:
            answer: dict[str, Any] = json.loads(reply.read() or b"{}")
            return answer
    except (OSError, urllib.error.URLError, ValueError, ssl.SSLError):
        return None


def wait_ready(config: NodeConfig, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NodeStartError(f"supervisord exited with code {process.returncode} before the node was ready")
        status = health(config)
        if status is not None and status.get("router_ready", True):
            return
        time.sleep(0.1)
    raise NodeStartError(f"the node did not answer on port {config.port} within {timeout:.0f} s")


# (device, inode, ctime): the inode number alone may be reused at once by a new file.
FileIdentity = tuple[int, int, int] | None   # None when absent


def runtime_files(config: NodeConfig) -> dict[Path, FileIdentity]:
    """The sockets and pid file the node's actors and supervisord make in the run dir,
    each with the file now at that path: taken before a start, it tells the files this
    run made from ones it found there."""
    found: dict[Path, FileIdentity] = {}
    for path in config.endpoints.socket_paths() + [config.run_dir / "supervisor.sock",
                                                   config.run_dir / "supervisord.pid"]:
        try:
            status = path.lstat()
            found[path] = (status.st_dev, status.st_ino, status.st_ctime_ns)
        except OSError:
            found[path] = None
    return found


def stop(config: NodeConfig, process: subprocess.Popen[bytes], found_before_start: Mapping[Path, FileIdentity],
         timeout: float = 20.0) -> int:
    """SIGTERM to supervisord: it stops every actor (reverse priority), then itself.
    Then remove the run-dir files this run made, and only those: a file that was
    there before the start belongs to someone else (or to a crash, and the next start
    replaces it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    for path, identity in runtime_files(config).items():
        if identity is not None and identity != found_before_start.get(path):
            path.unlink(missing_ok=True)
    return process.returncode or 0


def bootstrap_entry(config: NodeConfig, identity: NodeIdentity, header: bool = True) -> str:
    """This node as a bootstrap file (SOCP §6.1); without `header`, just its list
    entry, to append to a file that already has `bootstrap_servers:`."""
    bracketed = f"[{config.public_host}]" if ":" in config.public_host else config.public_host
    where = (f'  - url: "wss://{bracketed}:{config.public_port}"\n' if config.public_tls else
             f'  - host: "{config.public_host}"\n    port: {config.public_port}\n')
    entry = where + f'    pubkey: "{identity.public_key_text}"\n'
    return "bootstrap_servers:\n" + entry if header else entry
