#!/usr/bin/env python3
"""A throwaway PostgreSQL server for the end-to-end tests, and queries on its databases.

`PostgresServer().start()` runs initdb in a new temp dir (/tmp/meterd-pg-*) and starts
`postgres` on 127.0.0.1 on a free port, with its unix socket in the temp dir; `stop()` stops it
by PID (fast shutdown: connections are closed, the data is kept), `start()` starts it again on
the same port and data, `restart()` does both, `cleanup()` stops it and removes the temp dir.
Run as root (as CI does), initdb and postgres run as the `postgres` system user (PostgreSQL
refuses root) and the temp dir is chowned to it. Binaries: $METERD_PG_BINDIR, else the newest
/usr/lib/postgresql/*/bin (Debian's `postgresql` package). The server is not durable unless
asked (fsync, full_page_writes and synchronous_commit off): tests kill meterd, not PostgreSQL;
`PostgresServer(durable=True)` keeps the defaults, for tests that kill or restart PostgreSQL and
count on what it acknowledged.

`shared()` is the server of this test process: the one named by $METERD_PG_URL (an admin URL,
e.g. postgresql://postgres@127.0.0.1:5432/postgres, set by `pg_server.py exec`), else one
started on first use and stopped at exit (and, when started from the main thread, killed by the
kernel if the test process dies: PR_SET_PDEATHSIG).

Queries go through psql (`query(url, sql, params)`): `?` placeholders (as in sqlite3) are
replaced by quoted literals, each row comes back as a tuple of JSON-typed values (BIGINT and
NUMERIC integers as int, TEXT as str, NULL as None, booleans as bool).

As a command: `python3 tests/lib/pg_server.py exec -- CMD ARGS...` starts one server, runs CMD
with METERD_STORE_BACKEND=postgresql and METERD_PG_URL set (so every harness in CMD, Python or
JavaScript, shares that server; METERD_PSQL names its psql), stops the server and exits with CMD's status.
"""
import atexit
import ctypes
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ADMIN_DB = "postgres"
USER = "postgres"


class PostgresError(RuntimeError):
    """initdb, postgres or psql failed."""


def find_bin_dir():
    """$METERD_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin with initdb and postgres,
    else None."""
    env = os.environ.get("METERD_PG_BINDIR")
    if env:
        return env
    best, best_version = None, -1
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        if not all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "postgres", "psql")):
            continue
        try:
            version = int(os.path.basename(os.path.dirname(d)).split(".")[0])
        except ValueError:
            continue
        if version > best_version:
            best, best_version = d, version
    return best


def missing_reason():
    """Why PostgreSQL tests cannot run here, or None."""
    if find_bin_dir() is None:
        return ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres; "
                "scripts/install-deps.sh installs Debian's postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return "running as root and there is no `postgres` system user to run the server as"
    return None


def _psql_exe():
    d = find_bin_dir()
    exe = os.path.join(d, "psql") if d else shutil.which("psql")
    if not exe or not os.access(exe, os.X_OK):
        raise PostgresError("psql not found (install Debian's postgresql)")
    return exe


# --- SQL text --------------------------------------------------------------------------------
def literal(value):
    """`value` as a PostgreSQL literal (standard_conforming_strings is on since 9.1)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        return "'\\x%s'::bytea" % value.hex()
    s = str(value)
    if "\0" in s:
        raise ValueError("PostgreSQL text cannot hold NUL")
    return "'" + s.replace("'", "''") + "'"


def bind(sql, params=()):
    """Replaces each `?` outside quotes and comments with the next parameter as a literal."""
    params = list(params)
    out, i, n, used = [], 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j])
            i = j
        elif c == "?":
            if used >= len(params):
                raise ValueError("more ? placeholders than parameters in %r" % sql)
            out.append(literal(params[used]))
            used += 1
            i += 1
        else:
            out.append(c)
            i += 1
    if used != len(params):
        raise ValueError("%d parameters for %d placeholders in %r" % (len(params), used, sql))
    return "".join(out)


def _psql_env():
    return dict(os.environ, PGCLIENTENCODING="UTF8", PGCONNECT_TIMEOUT="10")


def _psql_once(url, sql, timeout=60):
    """One psql process for one statement (used while a server starts)."""
    p = subprocess.run([_psql_exe(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-d", url, "-c", sql],
                       capture_output=True, encoding="utf-8", timeout=timeout, env=_psql_env())
    if p.returncode != 0:
        raise PostgresError("psql on %s failed (rc %d): %s\nSQL: %s"
                            % (url, p.returncode, p.stderr.strip(), sql))
    return p.stdout


_END = "__meterd_psql_end__"
# What psql prints when the connection went away (the server restarted, the database was
# dropped): the statement may not have run; psql reconnects for the next one.
_CONNECTION_LOST = ("server closed the connection", "connection to server", "terminating connection",
                    "no connection to the server", "connection was lost")


class _Session:
    """One long-lived psql process (a connection) fed statements on stdin: a statement costs a
    round trip instead of a process start and a backend fork. Output is unaligned, tuples only;
    after each statement psql echoes an end marker and its ERROR variable."""

    def __init__(self, url):
        self.url = url
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [_psql_exe(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-d", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            encoding="utf-8", bufsize=1, env=_psql_env())
        self.run("SET client_min_messages = warning")

    def alive(self):
        return self.proc.poll() is None

    def run(self, sql, timeout=60):
        """Runs `sql` (one statement; psql reads backslashes inside quoted literals as text)
        and returns its output lines; raises PostgresError."""
        sql = sql.strip().rstrip(";").strip()
        with self.lock:
            try:
                self.proc.stdin.write("%s;\n\\echo %s :ERROR\n" % (sql, _END))
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError) as e:
                raise PostgresError("psql on %s is gone (%s)" % (self.url, e))
            lines, failed = [], None
            watchdog = threading.Timer(timeout, self.proc.kill)  # a hung psql: EOF below
            watchdog.start()
            try:
                while True:
                    line = self.proc.stdout.readline()
                    if not line:  # psql exits when its connection is lost
                        try:
                            rc = self.proc.wait(timeout=10)
                        except subprocess.TimeoutExpired:
                            rc = None
                        raise PostgresError("psql on %s exited (rc %s%s) running %s:\n%s"
                                            % (self.url, rc,
                                               ", killed after %d s" % timeout
                                               if rc == -signal.SIGKILL else "",
                                               sql, "\n".join(lines)))
                    line = line.rstrip("\n")
                    if line.startswith(_END + " "):
                        failed = line.split(" ", 1)[1].strip() != "false"
                        break
                    lines.append(line)
            finally:
                watchdog.cancel()
        errors = [l for l in lines if l.startswith("psql:") or l.startswith("ERROR:")
                  or l.startswith("FATAL:")]
        if failed or errors:
            raise PostgresError("psql on %s failed: %s\nSQL: %s" % (self.url, "\n".join(lines), sql))
        return lines

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


_sessions = {}  # (thread id, url) -> _Session
_sessions_lock = threading.Lock()


def _session(url):
    key = (threading.get_ident(), url)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is not None and not session.alive():
            session = None
    if session is None:
        session = _Session(url)
        with _sessions_lock:
            _sessions[key] = session
    return session


def close_sessions(url=None, server=None):
    """Closes the psql sessions of every thread to database `url`, or to any database of the
    server `server` (postgresql://user@host:port), or all."""
    with _sessions_lock:
        doomed = [k for k in _sessions
                  if (url is None or k[1] == url) and (server is None or
                                                       k[1].startswith(server + "/"))]
        sessions = [_sessions.pop(k) for k in doomed]
    for s in sessions:
        s.close()


atexit.register(close_sessions)


def _run_psql(url, sql, retry=False):
    """Runs one statement on `url` through this thread's session; returns the output lines.
    retry=True (statements that change nothing) runs it once more when the connection was
    lost (the server restarted since the last statement)."""
    try:
        return _session(url).run(sql)
    except PostgresError as e:
        if not retry or not any(m in str(e) for m in _CONNECTION_LOST):
            raise
        return _session(url).run(sql)


def execute(url, sql, params=()):
    """Runs a statement that returns no rows (DDL, INSERT without RETURNING, ...)."""
    _run_psql(url, bind(sql, params))


def query_with_columns(url, sql, params=()):
    """Runs one SELECT (or VALUES / WITH ... SELECT); returns (column names, rows as tuples)."""
    body = bind(sql, params).strip().rstrip(";")
    # row_to_json keeps the select list's order and duplicate names; json (not jsonb) text.
    wrapped = "SELECT row_to_json(meterd_q)::text FROM (%s) AS meterd_q" % body
    names, rows = None, []
    for line in _run_psql(url, wrapped, retry=True):
        if not line.strip():
            continue
        pairs = json.loads(line, object_pairs_hook=list)
        if names is None:
            names = [k for k, _ in pairs]
        rows.append(tuple(v for _, v in pairs))
    if names is None:
        names = _columns_of_empty(url, body)
    return names, rows


def _columns_of_empty(url, body):
    """The column names of a query that returned no rows: through a temporary view of this
    thread's session."""
    _run_psql(url, "DROP VIEW IF EXISTS pg_temp.meterd_describe")
    _run_psql(url, "CREATE TEMP VIEW meterd_describe AS %s" % body)
    return [n for n in _run_psql(url, "SELECT attname FROM pg_attribute WHERE attrelid = "
                                 "'pg_temp.meterd_describe'::regclass AND attnum > 0 "
                                 "ORDER BY attnum") if n]


def query(url, sql, params=()):
    """Runs one SELECT; returns its rows as tuples (see query_with_columns)."""
    return query_with_columns(url, sql, params)[1]


def integrity_check(url):
    """PostgreSQL's counterpart of SQLite's PRAGMA integrity_check, with amcheck (shipped with
    the server; the extension is created in the database on first use): every B-tree index of
    the public schema is checked with heapallindexed (each row is in each of its table's
    indexes, so unique keys cover every row) and every table's heap with verify_heapam.
    Returns "ok" or the problems found, joined by "; "."""
    execute(url, "CREATE EXTENSION IF NOT EXISTS amcheck")
    try:  # bt_index_check raises on corruption
        indexes = query(url, "SELECT c.relname, bt_index_check(c.oid, true)::text "
                        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "JOIN pg_am a ON a.oid = c.relam "
                        "WHERE n.nspname = 'public' AND a.amname = 'btree'")
    except PostgresError as e:
        return "bt_index_check: %s" % e
    heap = query(url, "SELECT c.relname, v.blkno, v.offnum, v.msg FROM pg_class c "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace, "
                 "LATERAL verify_heapam(c.oid) AS v "
                 "WHERE n.nspname = 'public' AND c.relkind = 'r'")
    if not indexes:
        return "no index in the public schema"
    problems = ["%s block %s item %s: %s" % row for row in heap]
    return "; ".join(problems) if problems else "ok"


def create_database(admin_url, name=None):
    """Creates an empty database on the server of `admin_url`; returns its URL."""
    global _databases
    with _lock:
        _databases += 1
        n = _databases
    name = name or "meterd_test_%d_%d" % (os.getpid(), n)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError("database name %r" % name)
    execute(admin_url, "CREATE DATABASE %s" % name)
    return url_for(admin_url, name)


def drop_database(db_url):
    """Drops the database of `db_url` (closing its connections); no error when it is gone."""
    name = database_of(db_url)
    close_sessions(url_for(db_url, name))
    execute(url_for(db_url, ADMIN_DB), "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def url_for(url, name):
    """`url` with its database replaced by `name`."""
    base = url.split("?", 1)[0]
    return base.rsplit("/", 1)[0] + "/" + name


def database_of(url):
    return url.split("?", 1)[0].rsplit("/", 1)[1]


_lock = threading.Lock()
_databases = 0


# --- the server ------------------------------------------------------------------------------
def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """preexec_fn: SIGKILL this child when the thread that started it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class PostgresServer:
    """One PostgreSQL server in a temp dir. Not thread-safe: start, stop and restart it from one
    thread; create_database and queries may run from any thread."""

    def __init__(self, durable=False, bin_dir=None):
        self.bin_dir = bin_dir or find_bin_dir()
        if self.bin_dir is None:
            raise PostgresError(missing_reason())
        self.durable = durable
        self.dir = None
        self.port = None
        self.proc = None
        self.log_path = None
        self._as_user = {}
        self._generation = 0

    # URLs -------------------------------------------------------------------------------
    def url(self, name=ADMIN_DB):
        return "postgresql://%s@127.0.0.1:%d/%s" % (USER, self.port, name)

    @property
    def admin_url(self):
        return self.url(ADMIN_DB)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def create_database(self, name=None):
        return create_database(self.admin_url, name)

    def query(self, name, sql, params=()):
        return query(self.url(name), sql, params)

    # life cycle -------------------------------------------------------------------------
    def start(self, timeout=60):
        """initdb on first start; then starts postgres and waits until it accepts queries."""
        if self.running:
            return self
        if self.dir is None:
            self._initdb()
        self._launch(timeout)
        return self

    def _initdb(self):
        self.dir = tempfile.mkdtemp(prefix="meterd-pg-")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        self.port = _free_port()
        self.log_path = os.path.join(self.dir, "postgres.log")
        log = os.path.join(self.dir, "initdb.log")
        with open(log, "wb") as f:
            p = subprocess.run([os.path.join(self.bin_dir, "initdb"), "-D", self.data_dir,
                                "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C",
                                "--no-sync"],
                               stdout=f, stderr=subprocess.STDOUT, cwd=self.dir,
                               **self._as_user)
        if p.returncode != 0:
            raise PostgresError("initdb failed (rc %d):\n%s" % (p.returncode, _tail(log)))

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    def _launch(self, timeout):
        args = [os.path.join(self.bin_dir, "postgres"), "-D", self.data_dir,
                "-p", str(self.port), "-k", self.dir,
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
                "-c", "shared_buffers=32MB"]
        if not self.durable:
            for setting in ("fsync=off", "full_page_writes=off", "synchronous_commit=off"):
                args += ["-c", setting]
        log = open(self.log_path, "ab")
        try:
            main = threading.current_thread() is threading.main_thread()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         preexec_fn=_die_with_parent if main else None,
                                         **self._as_user)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise PostgresError("postgres exited (rc %s):\n%s" % (rc, _tail(self.log_path)))
            try:
                _psql_once(self.admin_url, "SELECT 1", timeout=10)
                return
            except (PostgresError, subprocess.TimeoutExpired) as e:
                last = e
            time.sleep(0.05)
        self.stop()
        raise PostgresError("postgres did not accept queries in %d s (%s):\n%s"
                            % (timeout, last, _tail(self.log_path)))

    def stop(self, sig=signal.SIGINT, timeout=30):
        """Stops postgres by PID: SIGINT is a fast shutdown (clients are disconnected, the data
        is kept), SIGTERM a smart one, SIGKILL a crash (PostgreSQL recovers at the next start).
        Escalates to SIGKILL after `timeout` seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        close_sessions(server=self.url("").rstrip("/"))  # their connections end with the server
        children = _children_of(proc.pid) if sig == signal.SIGKILL else []
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                children = _children_of(proc.pid)
                proc.kill()
                proc.wait()
        # After a SIGKILL the backends notice the postmaster's death and exit; the next start
        # refuses while one still holds the shared memory.
        deadline = time.monotonic() + timeout
        while children and time.monotonic() < deadline:
            children = [c for c in children if os.path.exists("/proc/%d" % c)]
            time.sleep(0.05)

    def kill(self):
        self.stop(signal.SIGKILL)

    def restart(self, timeout=60):
        self.stop()
        return self.start(timeout)

    def cleanup(self):
        """Stops the server and removes its temp dir."""
        try:
            self.stop()
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _children_of(pid):
    """The PIDs whose parent is `pid` (from /proc/*/stat)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def _tail(path, limit=3000):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-limit:]


# --- the server of this process --------------------------------------------------------------
_shared = None
_shared_lock = threading.Lock()


def shared_admin_url():
    """The admin URL of this process's server: $METERD_PG_URL, else a server started now (once)
    and stopped at exit."""
    global _shared
    env = os.environ.get("METERD_PG_URL")
    if env:
        return url_for(env, ADMIN_DB)
    with _shared_lock:
        if _shared is None:
            reason = missing_reason()
            if reason:
                raise PostgresError(reason)
            server = PostgresServer()
            atexit.register(server.cleanup)
            server.start()
            _shared = server
        return _shared.admin_url


def main(argv):
    if len(argv) < 2 or argv[0] != "exec" or (argv[1] == "--" and len(argv) < 3):
        print("usage: pg_server.py exec -- CMD [ARGS...]", file=sys.stderr)
        return 2
    cmd = argv[2:] if argv[1] == "--" else argv[1:]
    reason = missing_reason()
    if reason:
        print("pg_server: %s" % reason, file=sys.stderr)
        return 2
    with PostgresServer() as server:
        print("pg_server: PostgreSQL (%s) on 127.0.0.1:%d, data in %s"
              % (server.bin_dir, server.port, server.dir), file=sys.stderr, flush=True)
        env = dict(os.environ, METERD_STORE_BACKEND="postgresql", METERD_PG_URL=server.admin_url,
                   METERD_PSQL=os.path.join(server.bin_dir, "psql"))
        child = subprocess.Popen(cmd, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
