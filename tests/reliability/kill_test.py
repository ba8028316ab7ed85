#!/usr/bin/env python3
"""Crash-durability kill test (D16): meterd is SIGKILLed at random moments under load.

C client threads each work through their own known sequence of units (a pure function of the
seed, the client number and the unit number):
  - BatchMeterUsage: 1..25 records of acmesaas01 for Globex (by CustomerIdentifier or by
    CustomerAWSAccountId), every record a distinct dedup key (D2): each batch is signed for its
    own SigV4 region `kill-<run>-<client>-<n>`, and inside a batch (dimension, hour) differ;
  - MeterUsage from the AgentCore workload with its own ClientToken `kill-<run>-<client>-<n>`
    (D3/D4: each token is a new record).
Now and then (--refused-fraction) a client also sends a request meterd refuses before the store
(its body altered after signing: InvalidSignatureException), whose answer must wait for its audit
event too. Requests are botocore-signed raw HTTP over a keep-alive connection per client, so every
attempt is seen. A unit is resent (identical body, signed afresh) until it gets an HTTP answer: a
connection error or a timeout is an unknown outcome; a 5xx or a ThrottlingException is a
retryable answer, as an SDK treats it. Now and then a client also replays a unit that was
already acknowledged (a response an SDK never saw), which must get the idempotent answer.

A killer thread waits a seeded uniform delay (0.2-1.5 s) after each (re)start, SIGKILLs meterd,
checks the store (integrity; every record acknowledged before the kill is there) and restarts
meterd on the same data dir (a new port; the clients follow it). After K kills the clients each
finish `--tail-units` more units, meterd is stopped with SIGTERM and the store is checked:
  lost        acknowledged records not in usage_records with the acknowledged id and content
  duplicated  rows beyond one per sent record (by natural key and by MeteringRecordId)
  unexpected  rows that no acknowledged record accounts for (never sent, or never acknowledged)
  idempotency every later answer for a unit gives the first acknowledged ids; a row written by
              an earlier, unanswered attempt is counted as `idempotent_hits` (a retry that got the
              stored answer); a row written by a request that got an error answer is a violation
  integrity   `ok` after every kill and at the end: SQLite's PRAGMA integrity_check on a copy of
              the db (the embedded ledger: `meterd dump --verify`); PostgreSQL's amcheck (every
              index holds every row, heaps verified)
  rollups     the usage rollups (hour, day, month) are the sums over the ledger at the end
  audit       every call that got an HTTP answer (its x-amzn-RequestId) has its audit event (D17,
              docs/AUDIT.md: the answer waits for the event's commit) after every kill and at the
              end: `audit_events_lost` counts the answered calls without one
and a summary line is printed:
  kills=20 units=... records_acknowledged=... lost=0 duplicated=0 unexpected=0 retries=...
  integrity=ok seed=... audit_events_lost=0 (then extra counters)
Exit status 0 only when nothing was violated.

  METERD_BIN=build/bin/meterd python3 tests/reliability/kill_test.py --kills 20 --clients 4
  scripts/kill-test.sh --kills 100 --clients 8      # the full form

The store backend is the harness's, $METERD_STORE_BACKEND: sqlite (default; DATA/meterd.db,
read through a private copy, or the embedded ledger DATA/ledger/, read through `meterd dump`)
or postgresql (a database of a PostgreSQL server that the harness starts, tests/lib/pg_server.py;
only meterd is killed, PostgreSQL keeps running).

As a library: `KillTest(kills=20).run()` returns a `Result` (`.ok`, `.summary`, `.violations`);
`KillTest.close()` stops the server by PID and removes the data dir (call it in tearDown).
"""
import argparse
import calendar
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
LIB = os.path.join(REPO, "tests", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import meterd_harness as H  # noqa: E402
import pg_server  # noqa: E402

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

# --- catalog facts (tests/fixtures/catalog.test.json) ---------------------------------------
SELLER = Credentials(*H.SELLER)
AGENTCORE = Credentials(*H.AGENTCORE)
SAAS = "acmesaas01"
SAAS_DIMENSIONS = ("api_calls", "storage_gb")
GLOBEX_CUSTOMER = "cust-globex-0001"
GLOBEX_ACCOUNT = "444455556666"
CTR = "acmectr001"
AGENTCORE_WORKLOAD = "agentcore-runtime-globex-0001"
AGENTCORE_REGION = "us-east-1"
AGENTCORE_DIMENSION = "invocations"
SELLER_ACCOUNT = "111122223333"


# --- time windows (D1), mirrored from src/metering/rules.cc ----------------------------------
def _month_start(epoch):
    t = time.gmtime(epoch)
    return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))


def _batch_accepted(ts, now, max_age=24 * 3600, grace=6 * 3600):
    if ts > now + 300 or now - ts >= max_age:
        return False
    ms = _month_start(now)
    return ts >= ms or now < ms + grace


def batch_hours(t0, horizon=3600):
    """Hour starts whose every second BatchMeterUsage accepts from t0 until t0 + horizon."""
    top = int(t0) // 3600 * 3600
    hours = []
    for k in range(1, 23):
        h = top - 3600 * k
        if all(_batch_accepted(ts, now) for ts in (h, h + 3599) for now in (t0, t0 + horizon)):
            hours.append(h)
    return hours


# --- the known work ------------------------------------------------------------------------
class Unit:
    """One request's worth of work and everything seen for it."""

    def __init__(self, client, n, kind, target, creds, region, body, records=None, token=None,
                 quantity=None, ts=None):
        self.client, self.n, self.kind = client, n, kind
        self.target, self.creds, self.region = target, creds, region
        self.body = body
        self.records = records or []  # batch: [(dimension, hour, ts, quantity, by_account)]
        self.token, self.quantity, self.ts = token, quantity, ts
        self.attempts = []   # dicts: outcome, port, status, code, request_id, ids, error
        self.ack = None      # the first acknowledging attempt
        self.ack_ids = None  # batch: [id per record]; meter: [id]
        self.replays = 0
        self.deliveries = 0  # sends until a final answer: 1 + replays

    @property
    def name(self):
        return "%s#%d.%d" % (self.kind, self.client, self.n)

    def natural_keys(self):
        if self.kind == "batch":
            return [("B", self.region, d, h) for (d, h, _, _, _) in self.records]
        return [("A", self.token)]


class Plan:
    """Client c's unit n is a function of (seed, t0, c, n) alone."""

    def __init__(self, seed, t0, batch_fraction=0.5):
        self.seed, self.t0 = seed, int(t0)
        self.run = "%08x" % (seed & 0xffffffff)
        self.batch_fraction = batch_fraction
        self.hours = batch_hours(self.t0)
        self.keys = [(d, h) for d in SAAS_DIMENSIONS for h in self.hours]
        if not self.keys:
            raise RuntimeError("no hour inside the BatchMeterUsage window (D1) right now")

    def unit(self, c, n):
        rng = random.Random("%d/%d/%d/%d" % (self.seed, self.t0, c, n))
        name = "kill-%s-%d-%d" % (self.run, c, n)
        if rng.random() < self.batch_fraction:
            size = rng.randint(1, min(25, len(self.keys)))
            records, wire = [], []
            for d, h in rng.sample(self.keys, size):
                ts = h + rng.randrange(3600)
                q = rng.randint(1, 10000)
                by_account = rng.random() < 0.2
                records.append((d, h, ts, q, by_account))
                r = {"Timestamp": ts, "Dimension": d, "Quantity": q}
                if by_account:
                    r["CustomerAWSAccountId"] = GLOBEX_ACCOUNT
                else:
                    r["CustomerIdentifier"] = GLOBEX_CUSTOMER
                wire.append(r)
            body = json.dumps({"ProductCode": SAAS, "UsageRecords": wire}).encode()
            return Unit(c, n, "batch", "BatchMeterUsage", SELLER, name, body, records=records)
        ts = self.t0 - rng.randrange(600)
        q = rng.randint(1, 1000)
        body = json.dumps({"ProductCode": CTR, "Timestamp": ts, "UsageDimension": AGENTCORE_DIMENSION,
                           "UsageQuantity": q, "ClientToken": name}).encode()
        return Unit(c, n, "meter", "MeterUsage", AGENTCORE, AGENTCORE_REGION, body, token=name,
                    quantity=q, ts=ts)


# --- the server under test ------------------------------------------------------------------
class Fatal(Exception):
    pass


class Aborted(Exception):
    pass


class ServerControl:
    """The current meterd (clients read its port; the killer replaces it)."""

    def __init__(self, data_dir, catalog):
        self.data_dir, self.catalog = data_dir, catalog
        self.cond = threading.Condition()
        self.server = None
        self.port = None
        self.generation = 0
        self.inflight = 0
        self.last_exit = None
        self.closed = False

    def start(self):
        # The embedded store: --store embedded said outright; PostgreSQL: the harness adds the
        # data dir's database (the same one at every restart).
        srv = H.Meterd(catalog=self.catalog, data_dir=self.data_dir,
                       extra_args=[] if H.POSTGRESQL else ["--store", "embedded"], throttle=False)
        try:
            srv.start(timeout=60)
        except Exception as e:
            raise Fatal("meterd did not (re)start on the data dir: %s" % e)
        with self.cond:
            closed = self.closed
            if not closed:
                self.server, self.port = srv, srv.port
                self.generation += 1
                self.cond.notify_all()
        if closed:
            srv.stop()
            raise Fatal("closed while meterd was starting")
        return srv

    def kill(self):
        """SIGKILL by PID; returns (requests in flight, exit status if meterd had already
        exited on its own, else None)."""
        with self.cond:
            srv, inflight = self.server, self.inflight
        if srv is None:
            raise Fatal("no server to kill (closed)")
        exited = srv.proc.poll()
        srv.kill()
        with self.cond:
            self.server, self.port = None, None
            self.generation += 1
            self.cond.notify_all()
        return inflight, exited

    def stop(self):
        """SIGTERM (the harness escalates to SIGKILL after 10 s); returns the exit status."""
        with self.cond:
            srv = self.server
            self.server, self.port = None, None
            self.generation += 1
            self.cond.notify_all()
        if srv is None:
            return None
        proc = srv.proc
        srv.stop(signal.SIGTERM)
        self.last_exit = proc.returncode if proc is not None else None
        return self.last_exit

    def current(self):
        with self.cond:
            return self.generation, self.port

    def wait_change(self, generation, timeout):
        """Until a server other than `generation`'s is up, or timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.generation == generation or self.port is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def begin_request(self):
        with self.cond:
            self.inflight += 1

    def end_request(self):
        with self.cond:
            self.inflight -= 1

    def close(self):
        with self.cond:
            srv = self.server
            self.closed = True
            self.server, self.port = None, None
            self.cond.notify_all()
        if srv is not None:
            srv.stop()


def store_check(data_dir, queries):
    """(integrity, one list of rows per query) of the store of `data_dir`, read while no meterd
    writes to it. SQLite: on one private copy of <data_dir>/meterd.db and its WAL (as the
    harness's query_store does), integrity the lines of PRAGMA integrity_check joined by "; ".
    Embedded ledger (<data_dir>/ledger/): on `meterd dump --verify` of it, integrity its report
    ("ok" or the problems: checksums, counters, index entries against the ledger rows).
    PostgreSQL: on the data dir's database, integrity from amcheck (pg_server.integrity_check)."""
    if H.POSTGRESQL:
        integrity = pg_server.integrity_check(H.store_url(data_dir))
        return integrity, [H.query_store(data_dir, q) for q in queries]
    if H.has_ledger(data_dir):
        # The embedded ledger: `meterd dump --verify` checks its checksums and its bookkeeping
        # and writes the SQLite layout the queries read.
        tmp = tempfile.mkdtemp(prefix="meterd-kill-dump-")
        try:
            out = os.path.join(tmp, "meterd.db")
            try:
                integrity = H.dump_ledger(data_dir, out, verify=True)
            except AssertionError as e:
                return "dump failed: %s" % e, [[] for _ in queries]
            con = sqlite3.connect(out)
            try:
                return integrity, [con.execute(q).fetchall() for q in queries]
            finally:
                con.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    with H.sqlite_copy(data_dir) as con:
        check = con.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(r[0] for r in check), [con.execute(q).fetchall() for q in queries]


# --- clients --------------------------------------------------------------------------------
class Client(threading.Thread):

    def __init__(self, test, c):
        super().__init__(name="kill-client-%d" % c, daemon=True)
        self.test, self.c = test, c
        self.units = []
        self.refused = []  # request ids of refused probes that got their HTTP answer
        self.replay_rng = random.Random("%d/replay/%d" % (test.seed, c))
        self.refused_rng = random.Random("%d/refused/%d" % (test.seed, c))
        self.conn = None
        self.conn_port = None
        self.error = None

    def run(self):
        t = self.test
        try:
            n = 0
            tail_left = None
            while not t.abort.is_set():
                if t.killer_done.is_set():
                    if tail_left is None:
                        tail_left = t.tail_units
                    if tail_left <= 0:
                        break
                    tail_left -= 1
                if t.max_units is not None and n >= t.max_units:
                    break
                unit = t.plan.unit(self.c, n)
                self.units.append(unit)
                self.deliver(unit)
                n += 1
                acked = [u for u in self.units[-50:] if u.ack is not None]
                if acked and self.replay_rng.random() < t.replay_fraction:
                    self.deliver(self.replay_rng.choice(acked), replay=True)
                if self.refused_rng.random() < t.refused_fraction:
                    self.probe_refused(unit)
        except Aborted:
            pass
        except Fatal as e:
            self.error = str(e)
            t.fail(self.error)
        except Exception:  # pragma: no cover - reported as a failure of the run
            self.error = traceback.format_exc()
            t.fail("client %d crashed:\n%s" % (self.c, self.error))
        finally:
            self._close()

    def _close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn, self.conn_port = None, None

    def probe_refused(self, unit):
        """Sends `unit` with its body altered after signing, once: meterd refuses it before the
        store (InvalidSignatureException) and stores nothing but its audit event."""
        generation, port = self.test.ctl.current()
        if port is None:
            return
        self.test.ctl.begin_request()
        try:
            status, request_id, data = self._post(port, unit, tamper=True)
        except (OSError, http.client.HTTPException):
            self._close()
            return
        finally:
            self.test.ctl.end_request()
        if status == 200 or not request_id:
            self.test.violation("refused", "%s with an altered body: HTTP %d %s"
                                % (unit.name, status, data[:200]))
            return
        self.refused.append(request_id)
        self.test.error_request_ids.add(request_id)

    def _post(self, port, unit, tamper=False):
        if self.conn is None or self.conn_port != port:
            self._close()
            self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.test.io_timeout)
            self.conn_port = port
        host = "127.0.0.1:%d" % port
        req = AWSRequest(method="POST", url="http://%s/" % host, data=unit.body, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSMPMeteringService." + unit.target})
        SigV4Auth(unit.creds, "aws-marketplace", unit.region).add_auth(req)
        headers = dict(req.headers.items())
        headers["Host"] = host
        body = unit.body + b" " if tamper else unit.body
        self.conn.request("POST", "/", body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self._close()
        return resp.status, resp.getheader("x-amzn-RequestId"), data

    def deliver(self, unit, replay=False):
        """Sends `unit` until it gets a final HTTP answer."""
        t = self.test
        unit.deliveries += 1
        deadline = time.monotonic() + t.unit_timeout
        backoff = 0.05
        while True:
            if t.abort.is_set():
                raise Aborted()
            if time.monotonic() > deadline:
                t.violation("unanswered", "%s got no final answer in %.0f s: %s"
                            % (unit.name, t.unit_timeout, unit.attempts[-3:]))
                return
            generation, port = t.ctl.current()
            if port is None:
                t.ctl.wait_change(generation, 1.0)
                continue
            attempt = {"outcome": None, "port": port, "replay": replay, "at": time.time()}
            unit.attempts.append(attempt)
            t.ctl.begin_request()
            try:
                status, request_id, data = self._post(port, unit)
            except (OSError, http.client.HTTPException) as e:
                self._close()
                attempt.update(outcome="unknown", error="%s: %s" % (type(e).__name__, e))
                t.ctl.wait_change(generation, 1.0)  # the killer restarts it on a new port
                continue
            finally:
                t.ctl.end_request()
            attempt.update(status=status, request_id=request_id)
            if status == 200:
                attempt["outcome"] = "answer"
                self.accept(unit, attempt, data, replay)
                return
            code = _error_code(data)
            attempt["code"] = code
            if status >= 500 or code == "ThrottlingException":
                attempt["outcome"] = "retryable"
                t.error_request_ids.add(request_id)
                time.sleep(backoff)
                backoff = min(1.0, backoff * 2)
                continue
            attempt["outcome"] = "error"
            t.error_request_ids.add(request_id)
            t.violation("error_answer", "%s: HTTP %d %s: %s"
                        % (unit.name, status, code, data[:300].decode("utf-8", "replace")))
            return

    def accept(self, unit, attempt, data, replay):
        t = self.test
        try:
            out = json.loads(data)
        except ValueError:
            t.violation("bad_answer", "%s: 200 with a body that is not JSON: %r" % (unit.name, data[:200]))
            return
        ids = None
        if unit.kind == "batch":
            results = out.get("Results")
            if out.get("UnprocessedRecords") != [] or not isinstance(results, list) \
                    or len(results) != len(unit.records):
                t.violation("bad_answer", "%s: %s" % (unit.name, json.dumps(out)[:500]))
                return
            ids = []
            for (d, _, ts, q, _), r in zip(unit.records, results):
                echo = r.get("UsageRecord") or {}
                if r.get("Status") != "Success" or not r.get("MeteringRecordId") \
                        or echo.get("Dimension") != d or echo.get("Quantity") != q \
                        or not _same_instant(echo.get("Timestamp"), ts):
                    t.violation("bad_answer", "%s%s: record (%s, %d, %d) answered %s"
                                % (unit.name, " (replay)" if replay else "", d, ts, q,
                                   json.dumps(r)))
                    return
                ids.append(r["MeteringRecordId"])
        else:
            rid = out.get("MeteringRecordId")
            if not rid:
                t.violation("bad_answer", "%s: %s" % (unit.name, json.dumps(out)[:300]))
                return
            ids = [rid]
        attempt["ids"] = ids
        if unit.ack is None:
            unit.ack, unit.ack_ids = attempt, ids
        else:
            if replay:
                unit.replays += 1
            if ids != unit.ack_ids:
                t.violation("idempotency", "%s: a later answer gave ids %s, the first %s"
                            % (unit.name, ids, unit.ack_ids))


def _error_code(data):
    try:
        code = json.loads(data).get("__type", "")
    except (ValueError, AttributeError):
        return "?"
    return code.rsplit("#", 1)[-1]


def _same_instant(value, ts):
    try:
        return abs(float(value) - ts) < 0.001
    except (TypeError, ValueError):
        return False


# --- the run --------------------------------------------------------------------------------
class Result:
    def __init__(self, summary, counters, violations, data_dir):
        self.summary, self.counters, self.violations = summary, counters, violations
        self.data_dir = data_dir

    @property
    def ok(self):
        return not self.violations


class KillTest:

    def __init__(self, kills=20, clients=4, seed=None, min_delay=0.2, max_delay=1.5,
                 tail_units=5, replay_fraction=0.1, batch_fraction=0.5, max_units=None,
                 refused_fraction=0.05,
                 io_timeout=10.0, unit_timeout=120.0, deadline=None, check_each_kill=True,
                 data_dir=None, keep_data=False, catalog=H.TEST_CATALOG, log=None):
        self.kills, self.clients = kills, clients
        self.seed = random.SystemRandom().randrange(1 << 32) if seed is None else int(seed)
        self.min_delay, self.max_delay = min_delay, max_delay
        self.tail_units, self.replay_fraction, self.max_units = tail_units, replay_fraction, max_units
        self.refused_fraction = refused_fraction
        self.io_timeout, self.unit_timeout, self.deadline = io_timeout, unit_timeout, deadline
        self.check_each_kill = check_each_kill
        self.keep_data = keep_data
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="meterd-kill-")
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.plan = Plan(self.seed, time.time(), batch_fraction)
        self.ctl = ServerControl(self.data_dir, catalog)
        self.abort = threading.Event()
        self.killer_done = threading.Event()
        self.lock = threading.Lock()
        self.violations = []
        self.error_request_ids = set()
        self.kill_log = []  # (kill number, inflight, integrity, missing acknowledged ids)
        self.integrity = []
        self.workers = []
        self.killer_thread = None

    # failures ---------------------------------------------------------------------------
    def violation(self, kind, detail):
        with self.lock:
            self.violations.append((kind, detail))
        self.log("kill-test: VIOLATION %s: %s" % (kind, detail))

    def fail(self, detail):
        self.violation("fatal", detail)
        self.abort.set()

    # killer -----------------------------------------------------------------------------
    def acked_ids(self):
        ids = set()
        for w in self.workers:
            for u in list(w.units):
                if u.ack_ids:
                    ids.update(u.ack_ids)
        return ids

    def answered_request_ids(self):
        """The x-amzn-RequestId of every attempt that got an HTTP answer so far."""
        ids = set()
        for w in self.workers:
            ids.update(list(w.refused))
            for u in list(w.units):
                for a in list(u.attempts):
                    if a.get("outcome") in ("answer", "retryable", "error") and a.get("request_id"):
                        ids.add(a["request_id"])
        return ids

    def audit_missing(self, answered, events):
        """The answered request ids without an audit event among `events` (rows of `event`)."""
        stored = set()
        for (text,) in events:
            try:
                stored.add(json.loads(text).get("requestID"))
            except (ValueError, AttributeError):
                pass
        return sorted(answered - stored)

    def killer(self):
        rng = random.Random("%d/killer" % self.seed)
        try:
            for k in range(1, self.kills + 1):
                if self.abort.wait(rng.uniform(self.min_delay, self.max_delay)):
                    return
                inflight, exited = self.ctl.kill()
                if exited is not None:
                    self.violation("crash", "meterd had exited on its own (status %s) before kill "
                                   "%d; stderr tail:\n%s" % (exited, k, self.stderr_tail()))
                acked = self.acked_ids()  # all answered before the kill, so all committed
                answered = self.answered_request_ids()  # so are their audit events (D17)
                integrity, missing = "unchecked", []
                if self.check_each_kill:
                    integrity, (rows, events) = store_check(
                        self.data_dir, ["SELECT record_id FROM usage_records",
                                        "SELECT event FROM audit_events"])
                    self.integrity.append(integrity)
                    if integrity != "ok":
                        self.violation("integrity", "after kill %d: %s" % (k, integrity))
                    missing = sorted(acked - {r[0] for r in rows})
                    if missing:
                        self.violation("lost", "after kill %d: %d acknowledged records are not in "
                                       "the db, e.g. %s" % (k, len(missing), missing[:5]))
                    no_event = self.audit_missing(answered, events)
                    if no_event:
                        self.violation("audit_lost", "after kill %d: %d answered calls have no "
                                       "audit event, e.g. %s" % (k, len(no_event), no_event[:5]))
                self.kill_log.append((k, inflight, integrity, len(missing)))
                self.log("kill-test: kill %d/%d (%d requests in flight, %d acknowledged so far, "
                         "integrity %s)" % (k, self.kills, inflight, len(acked), integrity))
                self.ctl.start()
        except Fatal as e:
            self.fail(str(e))
        except Exception:  # pragma: no cover
            self.fail("killer crashed:\n" + traceback.format_exc())
        finally:
            self.killer_done.set()

    def stderr_tail(self, lines=20):
        try:
            with open(os.path.join(self.data_dir, "meterd.stderr.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def run(self):
        started = time.monotonic()
        deadline = None if self.deadline is None else started + self.deadline
        self.log("kill-test: seed=%d run=%s kills=%d clients=%d delay=%.2f-%.2fs data=%s "
                 "store=%s meterd=%s"
                 % (self.seed, self.plan.run, self.kills, self.clients, self.min_delay,
                    self.max_delay, self.data_dir, H.store_url(self.data_dir) or "embedded",
                    H.METERD))
        self.ctl.start()
        self.workers = [Client(self, c) for c in range(self.clients)]
        killer = self.killer_thread = threading.Thread(target=self.killer, name="kill-killer",
                                                       daemon=True)
        for w in self.workers:
            w.start()
        killer.start()

        def left():
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        killer.join(left())
        for w in self.workers:
            w.join(left())
        if killer.is_alive() or any(w.is_alive() for w in self.workers):
            self.fail("the run did not finish within its deadline of %.0f s" % self.deadline)
            killer.join(30)
            for w in self.workers:
                w.join(30)
        exit_status = self.ctl.stop()
        if exit_status != 0:
            self.violation("shutdown", "meterd exited with %r on SIGTERM (want 0)" % exit_status)
        return self.check(time.monotonic() - started)

    # checks -----------------------------------------------------------------------------
    def check(self, elapsed):
        units = [u for w in self.workers for u in w.units]
        final_integrity, (rows, tokens, rollups, events) = store_check(self.data_dir, [
            "SELECT record_id, dedup_key, source, region, product_code, seller_account, "
            "customer_account, customer_identifier, workload_id, dimension, usage_hour_ms, "
            "timestamp_ms, quantity, request_id FROM usage_records",
            "SELECT caller, token, record_id FROM client_tokens",
            "SELECT granularity, period_ms, product_code, customer_account, dimension, unit, "
            "quantity, records FROM usage_rollups WHERE tag_key = ''",
            "SELECT event FROM audit_events"])
        self.integrity.append(final_integrity)
        if final_integrity != "ok":
            self.violation("integrity", "at the end: %s" % final_integrity)
        # D17: every answered call (whatever its answer) has its audit event.
        answered = self.answered_request_ids()
        audit_lost = self.audit_missing(answered, events)
        if audit_lost:
            self.violation("audit_lost", "at the end: %d of %d answered calls have no audit "
                           "event, e.g. %s" % (len(audit_lost), len(answered), audit_lost[:5]))

        token_of = {}
        for caller, token, rid in tokens:
            if caller == AGENTCORE_WORKLOAD:
                token_of[rid] = token
        by_key, by_id = {}, {}
        for row in rows:
            rid, _, source, region, _, _, _, _, _, dim, hour_ms = row[:11]
            if source == "BatchMeterUsage":
                key = ("B", region, dim, hour_ms // 1000)
            elif source == "MeterUsage" and rid in token_of:
                key = ("A", token_of[rid])
            else:
                key = ("?", rid)
            by_key.setdefault(key, []).append(row)
            by_id.setdefault(rid, []).append(row)

        lost = duplicated = unexpected = 0
        records_acked = retries = unknown = idempotent_hits = replays = 0
        unacked = 0
        expected = {}  # natural key -> (unit, index)
        for u in units:
            replays += u.replays
            retries += len(u.attempts) - u.deliveries
            unknown += sum(1 for a in u.attempts if a.get("outcome") == "unknown")
            if u.ack is None:
                unacked += 1
                continue
            first = u.attempts.index(u.ack)
            for i, key in enumerate(u.natural_keys()):
                expected[key] = (u, i)
            records_acked += len(u.ack_ids)
            # Who wrote the rows: the acknowledged attempt, or an earlier one without an answer.
            writers = set()
            for i, key in enumerate(u.natural_keys()):
                found = by_key.get(key, [])
                if len(found) != 1:
                    continue
                writers.add(found[0][13])
            if len(writers) > 1:
                self.violation("partial", "%s: one request's records were written by %d requests "
                               "%s" % (u.name, len(writers), sorted(writers)))
            elif writers and writers != {u.ack["request_id"]}:
                earlier_unknown = any(a.get("outcome") == "unknown" for a in u.attempts[:first])
                if earlier_unknown:
                    idempotent_hits += 1
                else:
                    self.violation("idempotency", "%s: rows written by request %s, acknowledged by "
                                   "%s, and no earlier attempt had an unknown outcome"
                                   % (u.name, sorted(writers), u.ack["request_id"]))
        if unacked:
            self.violation("unacknowledged", "%d units never got a Success answer" % unacked)

        for key, (u, i) in expected.items():
            found = by_key.get(key, [])
            want_id = u.ack_ids[i]
            if not found:
                lost += 1
                self.violation("lost", "%s record %d (%s) acknowledged as %s: no row"
                               % (u.name, i, key, want_id))
                continue
            if len(found) > 1:
                duplicated += len(found) - 1
                self.violation("duplicated", "%s record %d (%s): %d rows %s"
                               % (u.name, i, key, len(found), [r[0] for r in found]))
            row = found[0]
            problems = _row_problems(u, i, row, want_id)
            if problems:
                lost += 1
                self.violation("lost", "%s record %d acknowledged as %s: row %s differs: %s"
                               % (u.name, i, want_id, row[0], problems))
        for key, found in by_key.items():
            if key not in expected:
                unexpected += len(found)
                self.violation("unexpected", "row(s) nobody acknowledged: %s %s"
                               % (key, [r[:4] for r in found]))
        for rid, found in by_id.items():
            if len(found) > 1:
                duplicated += len(found) - 1
                self.violation("duplicated", "MeteringRecordId %s on %d rows" % (rid, len(found)))
        stored_on_error = [r for r in rows if r[13] in self.error_request_ids]
        if stored_on_error:
            self.violation("stored_on_error", "%d rows written by requests answered with an error, "
                           "e.g. %s" % (len(stored_on_error), stored_on_error[:2]))
        if len(rows) != records_acked:
            self.violation("count", "usage_records has %d rows; %d records were acknowledged"
                           % (len(rows), records_acked))
        # The rollups (reports) are written in the ledger's transactions: after any kill they
        # are still the sums over the ledger (hour, day, month; the records' whole quantities).
        totals = {}
        for row in rows:
            source, product, account, dim, hour_ms, quantity = (row[2], row[4], row[6], row[9],
                                                                row[10], row[12])
            unit = "second" if source == "RegisterUsage" else ""
            for granularity, period in ((0, hour_ms), (1, hour_ms - hour_ms % 86400000),
                                        (2, _month_start(hour_ms // 1000) * 1000)):
                total = totals.setdefault((granularity, period, product, account, dim, unit),
                                          [0, 0])
                total[0] += quantity
                total[1] += 1
        stored_totals = {tuple(r[:6]): [r[6], r[7]] for r in rollups}
        if stored_totals != totals:
            differing = sorted(k for k in set(totals) | set(stored_totals)
                               if totals.get(k) != stored_totals.get(k))
            self.violation("rollups", "%d rollup rows differ from the ledger's sums, e.g. %s: "
                           "stored %s, ledger %s" % (len(differing), differing[0],
                                                     stored_totals.get(differing[0]),
                                                     totals.get(differing[0])))

        integrity = "ok" if self.integrity and all(i == "ok" for i in self.integrity) else \
            next((i for i in self.integrity if i != "ok"), "unchecked")
        kills_done = len(self.kill_log)
        counters = dict(kills=kills_done, units=len(units), records_acknowledged=records_acked,
                        lost=lost, duplicated=duplicated, unexpected=unexpected, retries=retries,
                        integrity=integrity, seed=self.seed, audit_events_lost=len(audit_lost),
                        calls_answered=len(answered),
                        refused_answered=sum(len(w.refused) for w in self.workers),
                        unknown_outcomes=unknown,
                        idempotent_hits=idempotent_hits, replays=replays, rows=len(rows),
                        kills_mid_request=sum(1 for k in self.kill_log if k[1] > 0),
                        clients=self.clients, violations=len(self.violations),
                        elapsed="%.1fs" % elapsed)
        if kills_done != self.kills:
            self.violation("kills", "%d of %d kills happened" % (kills_done, self.kills))
            counters["violations"] = len(self.violations)
        order = ["kills", "units", "records_acknowledged", "lost", "duplicated", "unexpected",
                 "retries", "integrity", "seed", "audit_events_lost", "calls_answered",
                 "refused_answered", "unknown_outcomes", "idempotent_hits", "replays",
                 "rows", "kills_mid_request", "clients", "violations", "elapsed"]
        summary = " ".join("%s=%s" % (k, counters[k]) for k in order)
        return Result(summary, counters, list(self.violations), self.data_dir)

    def close(self):
        """Stops everything by PID and removes the data dir (unless kept). Safe to call twice."""
        self.abort.set()
        self.killer_done.set()
        self.ctl.close()
        if self.killer_thread is not None:
            self.killer_thread.join(90)  # at most one meterd start, which close() stops at once
        for w in self.workers:
            w.join(15)
        if self._own_dir and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            H.forget_store(self.data_dir)


def _row_problems(u, i, row, want_id):
    (rid, _, source, region, product, seller, cust_account, cust_id, workload, dim, hour_ms,
     ts_ms, quantity, _) = row
    want = {"record_id": want_id, "seller_account": SELLER_ACCOUNT, "customer_account": GLOBEX_ACCOUNT}
    got = {"record_id": rid, "seller_account": seller, "customer_account": cust_account}
    if u.kind == "batch":
        d, h, ts, q, by_account = u.records[i]
        want.update(source="BatchMeterUsage", region=u.region, product_code=SAAS, dimension=d,
                    usage_hour_ms=h * 1000, timestamp_ms=ts * 1000, quantity=q,
                    customer_identifier="" if by_account else GLOBEX_CUSTOMER)
        got.update(customer_identifier=cust_id)
    else:
        want.update(source="MeterUsage", region=u.region, product_code=CTR,
                    dimension=AGENTCORE_DIMENSION, usage_hour_ms=u.ts // 3600 * 3600 * 1000,
                    timestamp_ms=u.ts * 1000, quantity=u.quantity, workload_id=AGENTCORE_WORKLOAD)
        got.update(workload_id=workload)
    got.update(source=source, region=region, product_code=product, dimension=dim,
               usage_hour_ms=hour_ms, timestamp_ms=ts_ms, quantity=quantity)
    return {k: (got[k], v) for k, v in want.items() if got[k] != v}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs in the run (default 20)")
    ap.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--seed", type=int, help="seed of the work and of the kill moments")
    ap.add_argument("--min-delay", type=float, default=0.2, help="seconds after a start (0.2)")
    ap.add_argument("--max-delay", type=float, default=1.5, help="seconds after a start (1.5)")
    ap.add_argument("--tail-units", type=int, default=5,
                    help="units each client sends after the last restart (5)")
    ap.add_argument("--replay-fraction", type=float, default=0.1,
                    help="chance that a client replays an acknowledged unit after each unit (0.1)")
    ap.add_argument("--batch-fraction", type=float, default=0.5,
                    help="share of units that are BatchMeterUsage; the rest MeterUsage (0.5)")
    ap.add_argument("--refused-fraction", type=float, default=0.05,
                    help="chance that a client sends a request meterd refuses (altered after "
                         "signing) after each unit (0.05)")
    ap.add_argument("--max-units", type=int, help="cap on units per client")
    ap.add_argument("--deadline", type=float, help="fail if the run takes longer (seconds)")
    ap.add_argument("--no-check-each-kill", action="store_true",
                    help="skip the integrity/ledger check of the db after each kill")
    ap.add_argument("--data-dir", help="data dir to use (default: a new temporary one)")
    ap.add_argument("--keep-data", action="store_true", help="keep the data dir afterwards")
    ap.add_argument("--report", help="write the violations and counters as JSON here")
    args = ap.parse_args(argv)
    if not os.access(H.METERD, os.X_OK):
        print("kill-test: meterd binary not found: %s (build it, or set METERD_BIN)" % H.METERD,
              file=sys.stderr)
        return 2
    test = KillTest(kills=args.kills, clients=args.clients, seed=args.seed,
                    min_delay=args.min_delay, max_delay=args.max_delay, tail_units=args.tail_units,
                    replay_fraction=args.replay_fraction, batch_fraction=args.batch_fraction,
                    refused_fraction=args.refused_fraction,
                    max_units=args.max_units, deadline=args.deadline,
                    check_each_kill=not args.no_check_each_kill, data_dir=args.data_dir,
                    keep_data=args.keep_data)
    result = None
    try:
        result = test.run()
    except Fatal as e:
        print("kill-test: FAILED: %s (seed=%d, data dir kept: %s)" % (e, test.seed, test.data_dir),
              file=sys.stderr)
        return 1
    finally:
        test.keep_data = test.keep_data or result is None or not result.ok
        test.close()
    if args.report:
        with open(args.report, "w") as f:
            json.dump({"summary": result.summary, "counters": result.counters,
                       "violations": result.violations}, f, indent=1)
    print(result.summary, flush=True)
    if not result.ok:
        print("kill-test: FAILED with %d violations (data dir kept: %s)"
              % (len(result.violations), result.data_dir), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
