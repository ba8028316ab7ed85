"""Start and stop a real meterd binary for end-to-end tests.

Every server binds to 127.0.0.1 on ports the kernel picks (``--listen 127.0.0.1:0``,
``--admin-listen 127.0.0.1:0``); meterd prints ``meterd: admin API listening on 127.0.0.1:PORT``
and then ``meterd: listening on 127.0.0.1:PORT`` on stdout once it accepts connections. Servers
are stopped by PID. Only loopback traffic is ever sent.

Sanitizer builds (METERD_BIN=build-asan/bin/meterd, build-tsan/bin/meterd): the server inherits
ASAN_OPTIONS, UBSAN_OPTIONS and TSAN_OPTIONS from the environment, and stop() raises
SanitizerReport when the server's stderr (DATA/meterd.stderr.log) holds a sanitizer report;
meterctl() does the same for meterctl's stderr.

The store backend: $METERD_STORE_BACKEND, `embedded` (default: meterd's own default, nothing is
added to its command line), `sqlite` (every server gets `--store sqlite`, the earlier embedded
engine) or `postgresql`: then every server is started with
`--store postgresql://...`, a database of this process's PostgreSQL server (tests/lib/pg_server.py:
$METERD_PG_URL, else one started on first use). The data dir stays the identity of a store: the
first server on a data dir gets a new empty database (CREATE DATABASE), every later server on the
same data dir (a restart) gets the same one. A test that passes its own `--store` keeps it.
`query_store(data_dir, sql, params)` / `Meterd.query(...)` read the store of a data dir on
either backend (SQLite: a private copy of DATA/meterd.db, or `meterd dump` of the embedded
ledger DATA/ledger/ into a private SQLite file; PostgreSQL: psql), with `?` placeholders and SQL
that both engines accept.
"""
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pg_server

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
METERD = os.environ.get("METERD_BIN", os.path.join(REPO, "build", "bin", "meterd"))
METERCTL = os.environ.get("METERCTL_BIN", os.path.join(os.path.dirname(METERD), "meterctl"))
TEST_CATALOG = os.path.join(REPO, "tests", "fixtures", "catalog.test.json")
EXAMPLE_CATALOG = os.path.join(REPO, "tests", "fixtures", "catalog.example.json")

# Credentials of tests/fixtures/catalog.test.json.
SELLER = ("AKIAACMESELLER000001", "acmeSellerSecretKey0000000000000000000001")
OTHER_SELLER = ("AKIAOTHERSELLER00001", "otherSellerSecretKey000000000000000000001")
EC2 = ("AKIAGLOBEXEC2000001", "globexEc2SecretKey00000000000000000000001")
ECS = ("AKIAGLOBEXECS000001", "globexEcsSecretKey00000000000000000000001")
EKS_WEST = ("AKIAGLOBEXEKS000001", "globexEksSecretKey00000000000000000000001")
AGENTCORE = ("AKIAGLOBEXAGC000001", "globexAgcSecretKey00000000000000000000001")
INITECH_EC2 = ("AKIAINITECEC2000001", "initechEc2SecretKey0000000000000000000001")
TEMP_EC2 = ("ASIAGLOBEXTEMP000001", "globexTempSecretKey0000000000000000000001",
            "FwoGZXIvYXdzEGlobexSessionToken0001")
DISABLED = ("AKIADISABLEDKEY00001", "disabledSecretKey00000000000000000000001")
FARGATE = ("AKIAGLOBEXFGT000001", "globexFargateSecretKey000000000000000001")
INITECH_ECS = ("AKIAINITECECS000001", "initechEcsSecretKey0000000000000000000001")

# Workload ids (for catalogs that tests derive, e.g. with "stoppedAt").
ECS_TASK = "arn:aws:ecs:us-east-1:444455556666:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
FARGATE_TASK = "arn:aws:ecs:us-east-1:444455556666:task/fargate/7a6b5c4d3e2f10011223344556677889"

# Registration tokens (ResolveCustomer).
TOKEN_GLOBEX_SAAS = "demo-registration-token-globex-acmesaas01"
TOKEN_GLOBEX_CA = "demo-registration-token-globex-acmesaasca1"
TOKEN_OTHER_SELLER = "registration-token-other-seller-othersaas01"
TOKEN_ISSUED_2020 = "registration-token-issued-2020-acmesaas01"

CA_LICENSE = "arn:aws:license-manager::294406891311:license:l-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
EXPIRED_LICENSE = "arn:aws:license-manager::294406891311:license:l-00000000000000000000000000expired"
INITECH_LICENSE = "arn:aws:license-manager::294406891311:license:l-11111111111111111111111111initech"
OTHER_PRODUCT_LICENSE = "arn:aws:license-manager::294406891311:license:l-22222222222222222222222222other01"


# --- the store backend ------------------------------------------------------------------------
STORE_BACKENDS = ("embedded", "sqlite", "postgresql")
STORE_BACKEND = os.environ.get("METERD_STORE_BACKEND", "embedded") or "embedded"
if STORE_BACKEND not in STORE_BACKENDS:
    raise RuntimeError("METERD_STORE_BACKEND=%r: want one of %s" % (STORE_BACKEND, STORE_BACKENDS))
POSTGRESQL = STORE_BACKEND == "postgresql"

_store_urls = {}  # realpath(data dir) -> PostgreSQL database URL
_store_urls_lock = threading.Lock()


def _dir_key(data_dir):
    return os.path.realpath(data_dir)


def store_url(data_dir, create=True):
    """PostgreSQL backend: the database URL of `data_dir` (created, empty, on first use unless
    create=False: then None). SQLite backend: None."""
    if not POSTGRESQL:
        return None
    key = _dir_key(data_dir)
    with _store_urls_lock:
        url = _store_urls.get(key)
        if url is None and create:
            url = _store_urls[key] = pg_server.create_database(pg_server.shared_admin_url())
        return url


def forget_store(data_dir):
    """Drops the PostgreSQL database of `data_dir`, if any (call once its servers are stopped
    and the data dir is being removed). Nothing on SQLite."""
    with _store_urls_lock:
        url = _store_urls.pop(_dir_key(data_dir), None)
    if url is not None:
        pg_server.drop_database(url)


def query_store_with_columns(data_dir, sql, params=()):
    """Runs one SELECT on the store of `data_dir`; returns (column names, rows as tuples).
    SQLite: on a private copy of DATA/meterd.db and its WAL, or on a dump of DATA/ledger/ (the
    running server's files are never touched). PostgreSQL: through psql on the data dir's
    database. `?` placeholders."""
    if POSTGRESQL:
        url = store_url(data_dir, create=False)
        if url is None:
            raise AssertionError("no PostgreSQL database was ever given to data dir %s" % data_dir)
        return pg_server.query_with_columns(url, sql, params)
    with sqlite_copy(data_dir) as con:
        cur = con.execute(sql, tuple(params))
        rows = cur.fetchall()
        return [d[0] for d in cur.description or ()], rows


def has_ledger(data_dir):
    """True when `data_dir` holds the embedded RocksDB ledger (DATA/ledger/) rather than
    DATA/meterd.db."""
    return os.path.isdir(os.path.join(data_dir, "ledger"))


def dump_ledger(data_dir, out_path, verify=False, timeout=300):
    """Runs `meterd dump --data DATA --sqlite OUT [--verify]`: the embedded ledger of `data_dir`
    as a new SQLite file in the SQLite layout (it reads the ledger as a RocksDB secondary, so a
    running server is left alone). Returns the verification report ("ok" or the problems) with
    verify, else "". Raises AssertionError when the dump itself fails."""
    cmd = [METERD, "dump", "--data", data_dir, "--sqlite", out_path]
    if verify:
        cmd.append("--verify")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    # 0: dumped (and verified ok); 3: dumped, verification found problems (on stdout).
    if p.returncode not in (0, 3) or not os.path.exists(out_path):
        raise AssertionError("meterd dump of %s failed (exit %s): %s"
                             % (data_dir, p.returncode, p.stderr.strip()))
    return p.stdout.strip() if verify else ""


@contextlib.contextmanager
def sqlite_copy(data_dir):
    """A connection to a private SQLite copy of the store of `data_dir`, removed on exit: reading
    it never touches (nor locks, nor checkpoints) the running server's files. SQLite layout: a
    copy of DATA/meterd.db and its WAL. Embedded ledger (DATA/ledger/): `meterd dump` of it
    (dump_ledger), which has the same tables and columns."""
    src = os.path.join(data_dir, "meterd.db")
    tmp = tempfile.mkdtemp(prefix="meterd-e2e-db-")
    try:
        if has_ledger(data_dir):
            dump_ledger(data_dir, os.path.join(tmp, "meterd.db"))
        else:
            for suffix in ("", "-wal"):
                if os.path.exists(src + suffix):
                    shutil.copyfile(src + suffix, os.path.join(tmp, "meterd.db" + suffix))
        con = sqlite3.connect(os.path.join(tmp, "meterd.db"))
        try:
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def query_store(data_dir, sql, params=()):
    """The rows of one SELECT on the store of `data_dir` (see query_store_with_columns)."""
    return query_store_with_columns(data_dir, sql, params)[1]


# What AddressSanitizer, UndefinedBehaviorSanitizer, LeakSanitizer and ThreadSanitizer print.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "WARNING: ThreadSanitizer")


class SanitizerReport(AssertionError):
    """A sanitizer reported an error in meterd or meterctl."""


def sanitizer_report(text):
    """The first sanitizer report in `text` (with what follows it), or None."""
    hits = [i for i in (text.find(m) for m in SANITIZER_MARKERS) if i >= 0]
    if not hits:
        return None
    start = text.rfind("\n", 0, min(hits)) + 1
    return text[start:start + 6000]


class Meterd:
    """One meterd process. Use as a context manager, or call start()/stop()."""

    def __init__(self, catalog=TEST_CATALOG, data_dir=None, extra_args=(), throttle=False):
        """throttle=False starts meterd with --throttle off: tests of everything but throttling
        (D14) must not depend on how fast the machine sends. Throttling tests pass True.
        catalog=None starts on the stored catalog alone (no --catalog)."""
        self.catalog = catalog
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="meterd-test-")
        self.extra_args = list(extra_args) + ([] if throttle else ["--throttle", "off"])
        self.proc = None
        self.port = None
        self.admin_port = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def store_args(self):
        """The --store this server gets from the backend (none on SQLite or when the test
        passes its own)."""
        if "--store" in self.extra_args or STORE_BACKEND == "embedded":
            return []
        if STORE_BACKEND == "sqlite":
            return ["--store", "sqlite"]
        return ["--store", store_url(self.data_dir)]

    def query(self, sql, params=()):
        """The rows of one SELECT on this server's store (see query_store)."""
        return query_store(self.data_dir, sql, params)

    @property
    def admin_endpoint(self):
        return "http://127.0.0.1:%d" % self.admin_port

    @property
    def admin_token(self):
        with open(os.path.join(self.data_dir, "admin-token")) as f:
            return f.read().strip()

    def admin(self, method, path, body=None, token=None, raw=None):
        """Calls the admin API; returns (HTTP status, parsed JSON body or None)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.admin_endpoint + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + (self.admin_token if token is None else token))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        return status, (json.loads(text) if text.strip() else None)

    def meterctl(self, *args, check=True, timeout=60):
        """Runs build/bin/meterctl against this server; returns the CompletedProcess."""
        env = dict(os.environ, METERD_ADMIN_URL=self.admin_endpoint,
                   METERD_ADMIN_TOKEN=self.admin_token)
        p = subprocess.run([METERCTL] + [str(a) for a in args], capture_output=True, text=True,
                           env=env, timeout=timeout)
        report = sanitizer_report(p.stderr)
        if report:
            raise SanitizerReport("meterctl %s:\n%s" % (" ".join(map(str, args)), report))
        if check and p.returncode != 0:
            raise AssertionError("meterctl %s: rc %d\nstdout=%s\nstderr=%s"
                                 % (" ".join(map(str, args)), p.returncode, p.stdout, p.stderr))
        return p

    def start(self, timeout=20):
        self.log_path = os.path.join(self.data_dir, "meterd.stderr.log")
        args = [METERD, "serve", "--listen", "127.0.0.1:0", "--data", self.data_dir]
        if self.catalog is not None:
            args += ["--catalog", self.catalog]
        if "--admin-listen" not in self.extra_args:
            args += ["--admin-listen", "127.0.0.1:0"]
        args += self.store_args + self.extra_args
        self._log = open(self.log_path, "ab")
        self._log_offset = self._log.tell()  # stop() checks what this process writes
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            if line.startswith("meterd: admin API listening on "):
                self.admin_port = int(line.strip().rsplit(":", 1)[1])
            if line.startswith("meterd: listening on "):
                self.port = int(line.strip().rsplit(":", 1)[1])
                return self
        self.stop()
        raise RuntimeError("meterd did not start; stderr:\n" + open(self.log_path).read())

    def stop(self, sig=signal.SIGTERM):
        """Stops the server; raises SanitizerReport if its stderr holds a sanitizer report."""
        had_process = self.proc is not None
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                # Sanitizer builds take longer to exit (LeakSanitizer scans the heap).
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        self.proc = None
        if had_process:
            self.check_sanitizers()

    def check_sanitizers(self):
        """Raises SanitizerReport if this server process's stderr holds a sanitizer report."""
        path = getattr(self, "log_path", None)
        if not path or not os.path.exists(path):
            return
        with open(path, "rb") as f:
            f.seek(getattr(self, "_log_offset", 0))
            text = f.read().decode("utf-8", "replace")
        report = sanitizer_report(text)
        if report:
            raise SanitizerReport("meterd (%s) reported in %s:\n%s" % (METERD, path, report))

    def kill(self):
        self.stop(signal.SIGKILL)

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                forget_store(self.data_dir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
