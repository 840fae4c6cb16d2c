"""A throwaway, durable MariaDB server for tests (the Python counterpart of scripts/mariadb.sh).

    cluster = MariaCluster("convstate_crash")
    try:
        cluster.start()           # cluster.url: mysql://convstate:convstate@127.0.0.1:PORT/convstate_crash
        cluster.crash()           # SIGKILL of mariadbd, then started again (InnoDB crash recovery)
    finally:
        cluster.stop()            # safe to call twice or when nothing was started

The server runs with --no-defaults (nothing under /etc/mysql is read), with its data directory,
Unix socket, pid file, error log and tmpdir inside its own temp dir, and listens on 127.0.0.1 only,
on a free port. As root, mariadb-install-db and mariadbd run as the `mysql` OS user
(--user=mysql), which owns the temp dir. Unlike scripts/mariadb.sh's default, the server is
durable: innodb_flush_log_at_trx_commit (1) and the doublewrite buffer (on) stay at their
defaults. The user 'convstate'@'127.0.0.1' (password `convstate`) owns the test database; root has
no password and is reachable over the Unix socket only.

Environment: MARIADB_BINDIR, a directory holding mariadbd, mariadb-install-db, mariadb and
mariadb-admin (default: PATH, then /usr/sbin and /usr/bin).

"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "http"))
from fault_test import free_port, log  # noqa: E402


def maria_bin(name):
    """The path of MariaDB program `name`, or RuntimeError."""
    bindir = os.environ.get("MARIADB_BINDIR")
    if bindir:
        path = os.path.join(bindir, name)
        if os.access(path, os.X_OK):
            return path
        raise RuntimeError(f"no {name} in MARIADB_BINDIR={bindir}")
    path = shutil.which(name)
    if path:
        return path
    for d in ("/usr/sbin", "/usr/bin"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"{name} not found (install mariadb-server: scripts/deps.sh mariadb-server)")


def alive(pid):
    """Process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


BIND_ERRORS = ("Address already in use", "Bind on TCP/IP port")


class MariaCluster:
    def __init__(self, database="convstate_test", start_timeout=120):
        self.database = database
        self.start_timeout = start_timeout
        self.mariadbd = maria_bin("mariadbd")
        self.installdb = maria_bin("mariadb-install-db")
        self.client = maria_bin("mariadb")
        self.admin = maria_bin("mariadb-admin")
        self.dir = None
        self.port = None
        self.url = None
        self.proc = None  # the mariadbd we started last (a child of this process)
        self.starts = 0

    # -- paths and options ----------------------------------------------------------------

    @property
    def datadir(self):
        return f"{self.dir}/data"

    @property
    def socket(self):
        return f"{self.dir}/mariadb.sock"

    def _base_opts(self):
        # --no-defaults must come first.
        opts = ["--no-defaults"]
        if os.geteuid() == 0:
            opts.append("--user=mysql")
        return opts + [f"--datadir={self.datadir}", f"--tmpdir={self.dir}/tmp",
                       "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M"]

    def _server_opts(self):
        # Durable: innodb_flush_log_at_trx_commit=1 and innodb_doublewrite=ON are the defaults and
        # are not overridden here (scripts/mariadb.sh turns them off unless MARIADB_DURABLE=1).
        return self._base_opts() + [
            f"--socket={self.socket}", f"--pid-file={self.dir}/mariadbd.pid",
            f"--log-error={self.dir}/error.log", "--bind-address=127.0.0.1", "--skip-name-resolve",
            "--skip-log-bin", "--max-connections=200", "--max-allowed-packet=64M",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin"]

    # -- start ----------------------------------------------------------------------------

    def start(self):
        if self.dir:
            raise RuntimeError(f"a MariaDB server is already running in {self.dir}")
        self.dir = tempfile.mkdtemp(prefix="convstate-mariadb.")
        os.chmod(self.dir, 0o700)
        if len(self.socket) > 100:
            raise RuntimeError(f"socket path {self.socket} is too long for a Unix socket (set TMPDIR shorter)")
        os.mkdir(f"{self.dir}/tmp")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "mysql", "mysql")
            shutil.chown(f"{self.dir}/tmp", "mysql", "mysql")
            r = subprocess.run(["runuser", "-u", "mysql", "--", "test", "-w", self.dir], cwd="/")
            if r.returncode != 0:
                raise RuntimeError(f"the mysql user cannot reach {self.dir} (is TMPDIR inside a private directory?)")
        r = subprocess.run([self.installdb] + self._base_opts()
                           + ["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
                           cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        for attempt in range(1, 11):
            state = self._start_on(free_port())
            if state == "up":
                break
            if state != "bind":
                raise RuntimeError(f"could not start MariaDB ({state}); server log tail:\n{self.log_tail()}")
            log(f"MariaDB start on port {self.port} failed (attempt {attempt}/10)")
        else:
            raise RuntimeError("could not start MariaDB: no free port\n" + self.log_tail())
        self.sql_root(f"""
            CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
            CREATE USER 'convstate'@'127.0.0.1' IDENTIFIED BY 'convstate';
            GRANT ALL PRIVILEGES ON `{self.database}`.* TO 'convstate'@'127.0.0.1';
        """)
        self.url = f"mysql://convstate:convstate@127.0.0.1:{self.port}/{self.database}"
        log(f"MariaDB started on 127.0.0.1:{self.port} (data {self.dir}, innodb_flush_log_at_trx_commit=1)")

    def _spawn(self, port, extra_opts=()):
        """Start mariadbd on `port` (not waiting for it); returns the error log's size before."""
        self.port = port
        self.starts += 1
        try:
            log_offset = os.path.getsize(f"{self.dir}/error.log")
        except OSError:
            log_offset = 0
        with open(f"{self.dir}/server.out", "ab") as out:
            # Its own session: a Ctrl-C at the terminal reaches this script, which stops the server.
            self.proc = subprocess.Popen([self.mariadbd] + self._server_opts() + [f"--port={port}"] + list(extra_opts),
                                         cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         close_fds=True, start_new_session=True)
        return log_offset

    def _wait_up(self, log_offset):
        """'up' once root can connect over the socket; 'bind' if mariadbd exited because the
        port was taken; 'died' or 'timeout' otherwise."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            r = subprocess.run([self.client, "--no-defaults", "--protocol=socket", f"--socket={self.socket}",
                                "-uroot", "--connect-timeout=2", "-e", "SELECT 1"],
                               cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            if r.returncode == 0:
                return "up"
            if self.proc.poll() is not None:
                text = self._read(f"{self.dir}/error.log", log_offset) + self._read(f"{self.dir}/server.out")
                return "bind" if any(e in text for e in BIND_ERRORS) else f"died with status {self.proc.returncode}"
            if time.monotonic() >= deadline:
                return f"timeout: no connection within {self.start_timeout} s"
            time.sleep(0.1)

    def _start_on(self, port, extra_opts=()):
        offset = self._spawn(port, extra_opts)
        return self._wait_up(offset)

    # -- crash ----------------------------------------------------------------------------

    def ours(self):
        """The mariadbd we started is alive and its command line names our data directory (so
        that a recycled pid never gets a signal from us)."""
        if self.proc is None or self.proc.poll() is not None or not alive(self.proc.pid):
            return False
        try:
            with open(f"/proc/{self.proc.pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return f"--datadir={self.datadir}".encode() in argv

    def kill(self):
        """SIGKILL of mariadbd (a server crash); returns once the process is gone."""
        if not self.ours():
            raise RuntimeError(f"mariadbd {self.proc.pid if self.proc else '?'} is not running on {self.datadir}")
        pid = self.proc.pid
        os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.01)

    def crash(self, extra_opts=()):
        """A server crash (kill), then mariadbd started again on the same port and data directory:
        InnoDB recovers from its redo log. extra_opts go to the new server only."""
        self.kill()
        deadline = time.monotonic() + 60
        while True:
            state = self._start_on(self.port, extra_opts)
            if state == "up":
                return
            if state != "bind" or time.monotonic() >= deadline:
                raise RuntimeError(f"MariaDB restart on port {self.port} failed ({state}); server log tail:\n"
                                   + self.log_tail())
            time.sleep(0.5)  # the old server's port not free yet: try the same port again

    # -- helpers --------------------------------------------------------------------------

    def sql_root(self, sql):
        r = subprocess.run([self.client, "--no-defaults", "--protocol=socket", f"--socket={self.socket}", "-uroot"],
                           cwd="/", input=sql, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb failed ({r.returncode}): {r.stdout}{r.stderr}\n{sql}")
        return r.stdout

    @staticmethod
    def _read(path, offset=0):
        try:
            with open(path, errors="replace") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        if not self.dir:
            return ""
        lines = self._read(f"{self.dir}/error.log").splitlines()[-n:]
        lines += self._read(f"{self.dir}/server.out").splitlines()[-20:]
        return "\n".join(lines)

    # -- stop -----------------------------------------------------------------------------

    def _wait_gone(self, secs):
        try:
            self.proc.wait(timeout=secs)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self):
        """mariadb-admin shutdown over the socket, then SIGTERM, then SIGKILL (each given time to
        take effect, each only while the process is still ours); then the temp dir removed."""
        if not self.dir:
            return
        try:
            if self.ours():
                try:
                    r = subprocess.run([self.admin, "--no-defaults", "--protocol=socket", f"--socket={self.socket}",
                                        "-uroot", "--connect-timeout=5", "--shutdown-timeout=30", "shutdown"],
                                       cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=40)
                    asked = r.returncode == 0
                except (OSError, subprocess.SubprocessError):
                    asked = False
                # Not asked (e.g. interrupted while the server was still starting, no socket yet):
                # straight on to SIGTERM, which mariadbd also takes as a normal shutdown.
                if not (asked and self._wait_gone(30)) and self.ours():
                    os.kill(self.proc.pid, signal.SIGTERM)
                    if not self._wait_gone(30) and self.ours():
                        log(f"mariadbd {self.proc.pid} did not stop; killing it")
                        os.kill(self.proc.pid, signal.SIGKILL)
                        self._wait_gone(10)
            elif self.proc is not None:
                self.proc.poll()  # reap an exited server
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self.url = None
