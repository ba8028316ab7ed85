"""Several meterd nodes on one PostgreSQL database (issue 6), through boto3.

- Two nodes, many clients sending overlapping identical and conflicting records to both at once:
  afterwards every dedup key is stored once and every answer agrees with what was stored.
  The usage rollups both nodes added to equal the sums over the ledger, and each node's audit
  trail holds every call of both.
- PostgreSQL restarted (crash-like: immediate shutdown) under load: only retryable errors while
  it is down (and /readyz answers 503 naming the store), automatic recovery, every acknowledged
  record present, retries of the failed requests bill each record once, and the rollups still
  equal the ledger (a commit cut off wrote both or neither).

The PostgreSQL server is tests/lib/pg_server.py's, started in a temp dir for each test class.
Run: METERD_BIN=build/bin/meterd python3 -m unittest discover -s tests/pg -t .
"""
import json
import os
import random
import signal
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from botocore.exceptions import ClientError  # noqa: E402

import pg_server  # noqa: E402
from e2e_support import (  # noqa: E402
    AGENTCORE, AMI, CTR, EC2, GLOBEX_CUSTOMER, SAAS, SELLER, UMBRELLA_CUSTOMER, Meterd,
    ServerTestCase, Slots, dt, new_token, record, require_binary)

# What a client may see while the database is down: the store failed, try again.
RETRYABLE = {"InternalServiceErrorException", "ThrottlingException"}
METERING_SOURCE = "metering-marketplace.amazonaws.com"


def node_readyz(node):
    """(HTTP status, parsed body) of GET /readyz (no token needed)."""
    try:
        with urllib.request.urlopen(node.admin_endpoint + "/readyz", timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def month_start_ms(millis):
    d = dt(millis // 1000)
    return int(d.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()) * 1000


def _skip_reason():
    return pg_server.missing_reason()


@unittest.skipIf(_skip_reason() is not None, _skip_reason() or "")
class PgNodesTestCase(ServerTestCase):
    """A PostgreSQL server and `nodes` meterd servers on one database of it."""

    nodes = 2
    durable = False

    @classmethod
    def setUpClass(cls):
        require_binary()
        cls.pg = pg_server.PostgresServer(durable=cls.durable)
        cls.pg.start()
        cls.db_url = cls.pg.create_database()
        cls.servers = []
        for _ in range(cls.nodes):
            node = Meterd(extra_args=["--store", cls.db_url])
            node.start()
            cls.servers.append(node)
        cls.server = cls.servers[0]
        cls.slots = Slots()
        cls._clients = {}
        cls._clients_lock = threading.Lock()

    @classmethod
    def tearDownClass(cls):
        for node in getattr(cls, "servers", []):
            node.cleanup()
        pg = getattr(cls, "pg", None)
        if pg is not None:
            pg.cleanup()

    @classmethod
    def node_client(cls, creds, node):
        """A boto3 client of node `node` (clients are shared between threads: boto3 clients
        are thread-safe)."""
        with cls._clients_lock:
            return cls.client(creds, endpoint=cls.servers[node].endpoint)

    def rows(self, sql, params=()):
        return pg_server.query(self.db_url, sql, params)

    def assertRollupsEqualTheLedger(self):
        """The hourly, daily and monthly totals (tag_key '') are the sums over the ledger."""
        ledger = {}
        for product, account, dimension, hour_ms, quantity in self.rows(
                "SELECT product_code, customer_account, dimension, usage_hour_ms, quantity "
                "FROM usage_records"):
            for granularity, period in ((0, hour_ms), (1, hour_ms - hour_ms % 86400000),
                                        (2, month_start_ms(hour_ms))):
                total = ledger.setdefault((granularity, period, product, account, dimension),
                                          [0, 0])
                total[0] += quantity
                total[1] += 1
        rollups = {(g, p, product, account, dimension): [q, n]
                   for g, p, product, account, dimension, q, n in self.rows(
                       "SELECT granularity, period_ms, product_code, customer_account, dimension, "
                       "quantity, records FROM usage_rollups WHERE tag_key = ''")}
        self.assertGreater(len(ledger), 0)
        self.assertEqual(rollups, ledger)


class TwoNodesOneDatabaseTests(PgNodesTestCase):

    CLIENTS = 12
    ROUNDS = 25

    def test_overlapping_records_at_both_nodes_are_billed_once(self):
        # The dedup keys fought over: a few BatchMeterUsage keys (customer, dimension, hour) and
        # MeterUsage keys (dimension, hour) of one EC2 workload.
        batch_keys = []
        for dimension in ("api_calls", "storage_gb"):
            for _ in range(3):
                hour = self.slots.batch_hour("pg:" + dimension)
                for customer in (GLOBEX_CUSTOMER, UMBRELLA_CUSTOMER):
                    batch_keys.append((customer, dimension, hour))
        meter_keys = []
        for dimension in ("hosts", "vcpu_hours"):
            for _ in range(2):
                meter_keys.append((dimension, self.slots.meter_hour("pg:ec2:" + dimension)))
        # ClientTokens shared by several clients: each stands for one MeterUsage payload; a
        # client sometimes sends it with the other quantity (an IdempotencyConflict or, if the
        # token's first use failed, a record of its own).
        tokens = [(new_token(), random.choice(meter_keys)) for _ in range(6)]

        answers = []  # (kind, key, quantity, token, outcome, record id)
        lock = threading.Lock()
        barrier = threading.Barrier(self.CLIENTS)
        failures = []

        def client(i):
            rng = random.Random(i)
            try:
                barrier.wait()
                for _ in range(self.ROUNDS):
                    node = rng.randrange(self.nodes)
                    if rng.random() < 0.5:
                        keys = rng.sample(batch_keys, rng.randint(1, 5))
                        quantities = [rng.choice((1, 2)) for _ in keys]
                        out = self.node_client(SELLER, node).batch_meter_usage(
                            ProductCode=SAAS,
                            UsageRecords=[record(h + 60, dimension=d, quantity=q, customer=c)
                                          for (c, d, h), q in zip(keys, quantities)])
                        self.assertEqual(out.get("UnprocessedRecords"), [], out)
                        with lock:
                            for r, key, q in zip(out["Results"], keys, quantities):
                                answers.append(("batch", key, q, None, r["Status"],
                                                r.get("MeteringRecordId")))
                        continue
                    if rng.random() < 0.5:
                        token, key = rng.choice(tokens)
                    else:
                        token, key = new_token(), rng.choice(meter_keys)
                    q = rng.choice((1, 2))
                    dimension, hour = key
                    try:
                        out = self.node_client(EC2, node).meter_usage(
                            ProductCode=AMI, UsageDimension=dimension, Timestamp=dt(hour + 60),
                            UsageQuantity=q, ClientToken=token)
                        outcome, rid = "Success", out["MeteringRecordId"]
                    except ClientError as e:
                        outcome, rid = e.response["Error"]["Code"], None
                    with lock:
                        answers.append(("meter", key, q, token, outcome, rid))
            except Exception as e:  # reported below, with the thread's name
                failures.append("client %d: %r" % (i, e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(len(answers), self.CLIENTS * self.ROUNDS)

        # What is stored: one row per dedup key (the unique key), found by its parts.
        stored_batch, stored_meter = {}, {}
        for source, customer, dimension, hour_ms, rid, quantity in self.rows(
                "SELECT source, customer_identifier, dimension, usage_hour_ms, record_id, "
                "quantity FROM usage_records"):
            if source == "BatchMeterUsage":
                key = (customer, dimension, hour_ms // 1000)
                self.assertNotIn(key, stored_batch)
                stored_batch[key] = (rid, quantity)
            else:
                key = (dimension, hour_ms // 1000)
                self.assertNotIn(key, stored_meter)
                stored_meter[key] = (rid, quantity)
        self.assertEqual(self.rows("SELECT count(*) - count(DISTINCT dedup_key) FROM "
                                   "usage_records"), [(0,)])
        stored_tokens = {token: rid for token, rid in self.rows(
            "SELECT token, record_id FROM client_tokens")}

        # Every answer agrees with what is stored.
        succeeded = set()
        token_answers = {}
        for kind, key, quantity, token, outcome, rid in answers:
            stored = (stored_batch if kind == "batch" else stored_meter).get(key)
            if outcome == "Success":
                succeeded.add((kind, key))
                self.assertEqual(stored, (rid, quantity), (kind, key, quantity, token))
                if token is not None:
                    self.assertEqual(stored_tokens.get(token), rid, token)
                    token_answers.setdefault(token, set()).add(quantity)
            elif outcome in ("DuplicateRecord", "DuplicateRequestException"):
                self.assertIsNotNone(stored, key)
                self.assertNotEqual(stored[1], quantity, (kind, key))
            elif outcome == "IdempotencyConflictException":
                self.assertIn(token, stored_tokens)  # the token holds another request
            else:
                self.fail("unexpected answer %r for %r" % (outcome, (kind, key, quantity)))
        # The races really happened: conflicting records and reused tokens were refused.
        outcomes = {a[4] for a in answers}
        for expected in ("Success", "DuplicateRecord", "DuplicateRequestException",
                         "IdempotencyConflictException"):
            self.assertIn(expected, outcomes)
        # A token answers one payload only; every stored key was answered Success at least once.
        for token, quantities in token_answers.items():
            self.assertEqual(len(quantities), 1, token)
        self.assertEqual(succeeded, {("batch", k) for k in stored_batch}
                         | {("meter", k) for k in stored_meter})
        # Both nodes really served (and raced): each answered requests.
        for node in self.servers:
            self.assertIsNone(node.proc.poll())

        # Reports: the rollups both nodes added to (often the same rows at once) are exact.
        self.assertRollupsEqualTheLedger()
        # The audit trail: one event per call, whichever node took it, and each node's lookup
        # shows all of them (events are written just after the answers).
        calls = self.CLIENTS * self.ROUNDS
        deadline = time.monotonic() + 20
        while (self.rows("SELECT count(*) FROM audit_events WHERE event_source = ?",
                         (METERING_SOURCE,))[0][0] < calls and time.monotonic() < deadline):
            time.sleep(0.2)
        for node in self.servers:
            events, query = [], "eventSource=%s&limit=1000" % METERING_SOURCE
            while True:
                status, body = node.admin("GET", "/v1/audit/events?" + query)
                self.assertEqual(status, 200, body)
                events += body["events"]
                if "nextCursor" not in body:
                    break
                query = "eventSource=%s&limit=1000&cursor=%s" % (METERING_SOURCE,
                                                                 body["nextCursor"])
            self.assertEqual(len(events), calls)
            self.assertEqual(len({e["eventID"] for e in events}), calls)


class PostgresRestartUnderLoadTests(PgNodesTestCase):

    durable = True  # the database's acknowledged commits must survive its crash
    CLIENTS = 6

    def test_restart_under_load_only_retryable_errors_and_nothing_acknowledged_lost(self):
        ts = self.slots.meter_hour("pg:agentcore:invocations") + 60
        stop = threading.Event()
        lock = threading.Lock()
        acknowledged = {}  # token -> record id
        failed = []  # tokens whose request failed (retryable)
        other_errors = []
        phase = {"down": False}
        successes_after_restart = [0]

        def client(i):
            while not stop.is_set():
                token = new_token()
                try:
                    out = self.node_client(AGENTCORE, i % self.nodes).meter_usage(
                        ProductCode=CTR, UsageDimension="invocations", Timestamp=dt(ts),
                        UsageQuantity=1, ClientToken=token)
                    with lock:
                        acknowledged[token] = out["MeteringRecordId"]
                        if phase.get("restarted"):
                            successes_after_restart[0] += 1
                except ClientError as e:
                    code = e.response["Error"]["Code"]
                    with lock:
                        if code not in RETRYABLE:
                            other_errors.append(code)
                        failed.append((token, code, phase["down"]))
                except Exception as e:  # a broken connection to meterd: not allowed either
                    with lock:
                        other_errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.CLIENTS)]
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            with lock:
                before_down = len(acknowledged)
            # A crash of the database (immediate shutdown: no checkpoint; recovery from the WAL
            # at the next start), kept down for a while, then started again.
            phase["down"] = True
            self.pg.stop(signal.SIGQUIT)
            time.sleep(2)
            # Not ready while the store fails (/readyz probes it through the writer).
            status, body = node_readyz(self.servers[0])
            self.assertEqual(status, 503, body)
            self.assertFalse(body["checks"]["store"]["ok"], body)
            self.pg.start()
            phase["down"] = False
            phase["restarted"] = True
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with lock:
                    if successes_after_restart[0] >= 20:
                        break
                time.sleep(0.2)
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join()

        self.assertEqual(other_errors, [])
        self.assertGreater(before_down, 0)
        # The outage was seen (requests failed, retryably) and did not last: see above.
        self.assertTrue(any(down for _, _, down in failed), "no request met the outage")
        self.assertGreaterEqual(successes_after_restart[0], 20, "no recovery after the restart")
        # Every acknowledged record is in the database, with the answered id.
        stored = {token: rid for token, rid in self.rows(
            "SELECT t.token, u.record_id FROM client_tokens t JOIN usage_records u "
            "ON u.record_id = t.record_id WHERE t.caller = ?", (self._agentcore_workload(),))}
        missing = [t for t in acknowledged if stored.get(t) != acknowledged[t]]
        self.assertEqual(missing, [], "acknowledged but not stored")
        # The failed requests, retried now, are billed once each: those that did commit before
        # the connection broke answer with their stored record.
        client = self.node_client(AGENTCORE, 0)
        for token, _, _ in failed:
            out = client.meter_usage(ProductCode=CTR, UsageDimension="invocations",
                                     Timestamp=dt(ts), UsageQuantity=1, ClientToken=token)
            rid = out["MeteringRecordId"]
            if token in stored:
                self.assertEqual(rid, stored[token])
        count = self.rows("SELECT count(*), count(DISTINCT dedup_key) FROM usage_records "
                          "WHERE source = 'MeterUsage'")[0]
        self.assertEqual(count[0], count[1])
        self.assertEqual(count[0], len(set(acknowledged) | {t for t, _, _ in failed}))
        self.assertRollupsEqualTheLedger()
        # Ready again once the last failed group is older than the readiness window (10 s).
        deadline = time.monotonic() + 30
        while node_readyz(self.servers[0])[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual(node_readyz(self.servers[0])[0], 200)

    def _agentcore_workload(self):
        rows = self.rows("SELECT DISTINCT caller FROM client_tokens")
        self.assertEqual(len(rows), 1, rows)
        return rows[0][0]


if __name__ == "__main__":
    unittest.main()
