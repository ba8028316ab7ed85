"""Usage reports end to end (docs/REPORTS.md): ledger queries, aggregates and exports.

A seeded random mix of BatchMeterUsage records goes through boto3: accepted, duplicate (the same
record again, and the same hour with another quantity), refused (a buyer that is not subscribed,
whole requests refused for an out-of-window timestamp or an unknown dimension) and unprocessed
(fault injection). Then every aggregate at every granularity must equal the sum over the ledger
as GET /v1/usage pages show it, the ledger must hold exactly the records answered Success, amounts
must be exact decimals, and the exports (HTTP and meterctl) must carry the same records and sums.

A second server exports a ledger of 300,000 records (a schema-1 database built here, so the
upgrade's backfill of the rollups is tested too) while its RSS is sampled: it must stay flat. On
either store backend ($METERD_STORE_BACKEND): the schema-1 database is SQLite's meterd.db or the
data dir's PostgreSQL database (schema 1 of the PostgreSQL backend, before the ledger's seq).
"""
import collections
import csv
import datetime
import io
import json
import os
import random
import sqlite3
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal

from tests.e2e.e2e_support import (POSTGRESQL, SAAS, SELLER, TEST_CATALOG, ClientError, Meterd,
                                   ServerTestCase, dt, require_binary)
import meterd_harness as H
import pg_server
from meterd_harness import METERCTL

NOW = "2026-11-01T04:30:00Z"  # the test clock: the window spans October 31 and November 1
NOW_EPOCH = int(datetime.datetime(2026, 11, 1, 4, 30, tzinfo=datetime.timezone.utc).timestamp())
BUYERS = 60
API_CALLS_PRICE = Decimal("0.0001")  # tests/fixtures/catalog.test.json; storage_gb has none


def report_catalog():
    """The test catalog plus BUYERS buyer accounts subscribed to acmesaas01."""
    with open(TEST_CATALOG) as f:
        catalog = json.load(f)
    for i in range(BUYERS):
        account = "5%011d" % i
        catalog["accounts"].append({"id": account, "name": "buyer %d" % i, "roles": ["buyer"],
                                    "customerIdentifier": "cust-report-%04d" % i})
        catalog["subscriptions"].append({"account": account, "product": SAAS, "status": "active"})
    fd, path = tempfile.mkstemp(prefix="meterd-reports-catalog-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(catalog, f)
    return path


def period_start(granularity, epoch):
    d = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    if granularity == "hour":
        d = d.replace(minute=0, second=0)
    elif granularity == "day":
        d = d.replace(hour=0, minute=0, second=0)
    else:
        d = d.replace(day=1, hour=0, minute=0, second=0)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_of(iso):
    return int(datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


class ReportsTest(ServerTestCase):
    extra_args = ("--clock", "manual", "--clock-start", NOW)

    @classmethod
    def setUpClass(cls):
        cls.catalog = report_catalog()
        super().setUpClass()
        cls.expected = {}  # recordId -> the record as sent
        cls.answers = collections.Counter()
        cls.fill()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        os.remove(cls.catalog)

    @classmethod
    def fill(cls):
        rng = random.Random(20261101)
        client = cls.client(SELLER)
        status, _ = cls.server.admin("POST", "/v1/faults", {
            "operation": "BatchMeterUsage", "unprocessedRate": 0.15, "seed": 5})
        assert status in (200, 201), status
        hours = [NOW_EPOCH - NOW_EPOCH % 3600 - 3600 * k for k in range(0, 23)]
        free = [(b, d, h) for b in range(BUYERS) for d in ("api_calls", "storage_gb") for h in hours]
        rng.shuffle(free)
        accepted = []  # (record as sent, recordId)
        while free:
            batch, fresh = [], []
            for _ in range(25):
                roll = rng.random()
                if roll < 0.15 and accepted:
                    batch.append(dict(rng.choice(accepted)[0]))  # the same record again
                elif roll < 0.2 and accepted:
                    again = dict(rng.choice(accepted)[0])
                    again["Quantity"] += 1  # same hour, another quantity: DuplicateRecord
                    batch.append(again)
                elif roll < 0.3:
                    batch.append({"Timestamp": dt(hours[rng.randrange(len(hours))] + 60),
                                  "CustomerIdentifier": "cust-initech-0002",  # unsubscribed
                                  "Dimension": "api_calls", "Quantity": 3})
                elif free:
                    buyer, dim, hour = free.pop()
                    quantity = rng.randrange(0, 100000)
                    r = {"Timestamp": dt(hour + rng.randrange(0, 3600) if hour + 3600 <= NOW_EPOCH
                                         else hour + rng.randrange(0, NOW_EPOCH - hour)),
                         "CustomerIdentifier": "cust-report-%04d" % buyer,
                         "Dimension": dim, "Quantity": quantity}
                    if rng.random() < 0.3:
                        part = rng.randrange(0, quantity + 1)
                        r["UsageAllocations"] = [
                            {"AllocatedUsageQuantity": part,
                             "Tags": [{"Key": "team", "Value": rng.choice("abc")},
                                      {"Key": "env", "Value": rng.choice(["prod", "dev"])}]},
                            {"AllocatedUsageQuantity": quantity - part}]
                    batch.append(r)
                    fresh.append(r)
            refusal = rng.random()
            if refusal < 0.04:
                batch[0] = dict(batch[0], Timestamp=dt(NOW_EPOCH - 40 * 3600))  # out of window
            elif refusal < 0.08:
                batch[0] = dict(batch[0], Dimension="no_such_dimension")
            try:
                out = client.batch_meter_usage(ProductCode=SAAS, UsageRecords=batch)
            except ClientError as e:
                cls.answers[e.response["Error"]["Code"]] += 1
                continue
            for result in out["Results"]:
                cls.answers[result["Status"]] += 1
                if result["Status"] == "Success":
                    rid = result["MeteringRecordId"]
                    sent = dict(result["UsageRecord"])
                    if rid not in cls.expected:
                        cls.expected[rid] = sent
                        accepted.append((sent, rid))
            cls.answers["Unprocessed"] += len(out["UnprocessedRecords"])
        cls.server.admin("DELETE", "/v1/faults")

    # --- helpers --------------------------------------------------------------------------
    def get(self, path, **params):
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        status, body = self.server.admin("GET", path + ("?" + query if query else ""))
        self.assertEqual(status, 200, body)
        return body

    def ledger(self, **filters):
        records, cursor = [], None
        while True:
            page = self.get("/v1/usage", limit=1000, cursor=cursor, **filters)
            records += page["records"]
            cursor = page.get("nextCursor")
            if cursor is None:
                return records

    def download(self, path, **params):
        url = self.server.admin_endpoint + path + "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url)
        req.add_header("Authorization", "Bearer " + self.server.admin_token)
        with urllib.request.urlopen(req, timeout=120) as resp:
            self.assertEqual(resp.headers.get("Transfer-Encoding"), "chunked")
            return resp.headers.get("Content-Type"), resp.read().decode()

    # --- tests ----------------------------------------------------------------------------
    def test_the_mix_covered_every_outcome(self):
        for outcome in ("Success", "DuplicateRecord", "CustomerNotSubscribed", "Unprocessed",
                        "TimestampOutOfBoundsException", "InvalidUsageDimensionException"):
            self.assertGreater(self.answers[outcome], 0, (outcome, self.answers))
        self.assertGreater(len(self.expected), 1000, self.answers)

    def test_the_ledger_holds_exactly_the_records_answered_success(self):
        records = self.ledger()
        self.assertEqual(len(records), len(self.expected))
        by_id = {r["recordId"]: r for r in records}
        self.assertEqual(set(by_id), set(self.expected))
        for rid, sent in self.expected.items():
            got = by_id[rid]
            self.assertEqual(got["quantity"], str(sent["Quantity"]))
            self.assertEqual(got["dimension"], sent["Dimension"])
            self.assertEqual(got["customerIdentifier"], sent["CustomerIdentifier"])
            self.assertEqual(got["status"], "Success")
            self.assertEqual(epoch_of(got["timestamp"]), int(sent["Timestamp"].timestamp()))
            self.assertEqual("allocations" in got, "UsageAllocations" in sent)
        keys = [(r["timestamp"], r["recordId"]) for r in records]
        self.assertEqual([k[0] for k in keys], sorted(k[0] for k in keys))

    def test_filters_select_what_they_say(self):
        everything = self.ledger()
        account = everything[0]["customerAccount"]
        start = "2026-11-01T00:00:00Z"
        want = [r for r in everything if r["customerAccount"] == account
                and r["dimension"] == "api_calls" and r["timestamp"] >= start]
        got = self.ledger(account=account, dimension="api_calls", **{"from": start})
        self.assertEqual([r["recordId"] for r in got], [r["recordId"] for r in want])
        customer = everything[0]["customerIdentifier"]
        self.assertEqual(len(self.ledger(customer=customer)),
                         sum(1 for r in everything if r["customerIdentifier"] == customer))
        self.assertEqual(self.ledger(product="nosuchproduct"), [])
        status, body = self.server.admin("GET", "/v1/usage?status=DuplicateRecord")
        self.assertEqual((status, body["code"]), (400, "InvalidArgument"), body)
        status, body = self.server.admin("GET", "/v1/usage?cursor=forged")
        self.assertEqual(status, 400, body)

    def test_every_aggregate_equals_the_sum_of_the_ledger(self):
        records = self.ledger()
        for granularity in ("hour", "day", "month"):
            expected = collections.defaultdict(lambda: [0, 0])
            for r in records:
                key = (period_start(granularity, epoch_of(r["timestamp"])), r["product"],
                       r["customerAccount"], r["dimension"])
                expected[key][0] += int(r["quantity"])
                expected[key][1] += 1
            report = self.get("/v1/reports/usage", granularity=granularity)
            got = {}
            for row in report["rows"]:
                key = (row["period"], row["product"], row["customerAccount"], row["dimension"])
                got[key] = [int(row["quantity"]), row["records"]]
                if row["dimension"] == "api_calls":
                    # Exact: the amount is quantity x 0.0001 to the last digit, as text.
                    self.assertEqual(Decimal(row["amount"]), int(row["quantity"]) * API_CALLS_PRICE)
                    self.assertEqual(row["amount"], str(int(row["quantity"]) * API_CALLS_PRICE))
                else:
                    self.assertNotIn("amount", row)
            self.assertEqual(got, {k: v for k, v in expected.items()}, granularity)
            self.assertEqual(int(report["totals"]["quantity"]),
                             sum(int(r["quantity"]) for r in records))
            self.assertNotIn("amount", report["totals"])  # storage_gb has no price
            periods = [row["period"] for row in report["rows"]]
            self.assertEqual(periods, sorted(periods))
        months = {row["period"] for row in self.get("/v1/reports/usage", granularity="month")["rows"]}
        self.assertEqual(months, {"2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"})

    def test_groupings_filters_and_tags_add_up(self):
        records = self.ledger()
        priced = self.get("/v1/reports/usage", granularity="day", groupBy="product",
                          dimension="api_calls")
        api = [r for r in records if r["dimension"] == "api_calls"]
        self.assertEqual(sum(int(row["quantity"]) for row in priced["rows"]),
                         sum(int(r["quantity"]) for r in api))
        self.assertEqual(Decimal(priced["totals"]["amount"]),
                         sum(int(r["quantity"]) for r in api) * API_CALLS_PRICE)
        for row in priced["rows"]:
            self.assertEqual(set(row), {"period", "product", "quantity", "amount", "records"})
        window = self.get("/v1/reports/usage", granularity="hour", groupBy="customer",
                          **{"from": "2026-10-31T20:00:00Z", "to": "2026-11-01T02:00:00Z"})
        self.assertEqual(int(window["totals"]["quantity"]),
                         sum(int(r["quantity"]) for r in records
                             if "2026-10-31T20:00:00Z" <= r["timestamp"] < "2026-11-01T02:00:00Z"))
        for key in ("team", "env"):
            expected = collections.defaultdict(lambda: [0, 0])
            for r in records:
                per_value = collections.Counter()
                for allocation in r.get("allocations", []):
                    for tag in allocation.get("Tags", []):
                        if tag["Key"] == key:
                            per_value[tag["Value"]] += allocation["AllocatedUsageQuantity"]
                for value, quantity in per_value.items():
                    k = (period_start("month", epoch_of(r["timestamp"])), r["dimension"], value)
                    expected[k][0] += quantity
                    expected[k][1] += 1
            report = self.get("/v1/reports/usage", granularity="month",
                              groupBy="dimension,tag:" + key)
            got = {(row["period"], row["dimension"], row["tag"]["value"]):
                   [int(row["quantity"]), row["records"]] for row in report["rows"]}
            self.assertTrue(expected)
            self.assertEqual(got, dict(expected), key)

    def test_exports_carry_every_record_and_the_same_sums(self):
        records = self.ledger()
        total = sum(int(r["quantity"]) for r in records)
        ctype, text = self.download("/v1/usage/export", format="csv")
        self.assertTrue(ctype.startswith("text/csv"), ctype)
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        self.assertEqual(len(rows), len(records))
        self.assertEqual(sum(int(r["quantity"]) for r in rows), total)
        self.assertEqual({r["recordId"] for r in rows}, {r["recordId"] for r in records})
        with_allocations = [r for r in rows if r["allocations"]]
        self.assertTrue(with_allocations)
        json.loads(with_allocations[0]["allocations"])  # quoted JSON survives CSV
        ctype, text = self.download("/v1/usage/export", format="jsonl")
        lines = text.splitlines()
        self.assertEqual(len(lines), len(records))
        self.assertEqual([json.loads(line) for line in lines], records)
        ctype, text = self.download("/v1/reports/usage/export", format="csv", granularity="day")
        report = self.get("/v1/reports/usage", granularity="day")
        exported = list(csv.DictReader(io.StringIO(text, newline="")))
        self.assertEqual(len(exported), len(report["rows"]))
        self.assertEqual([(r["period"], r["quantity"], r["amount"] or None) for r in exported],
                         [(r["period"], r["quantity"], r.get("amount")) for r in report["rows"]])
        status, body = self.server.admin("GET", "/v1/usage/export?format=xml")
        self.assertEqual(status, 400, body)

    def test_meterctl_lists_reports_and_streams_exports(self):
        records = self.ledger()
        p = self.server.meterctl("usage", "list", "--limit", "5")
        self.assertIn("RECORD ID", p.stdout)
        self.assertEqual(len(p.stdout.strip().splitlines()), 6, p.stdout)
        self.assertIn("more: --cursor ", p.stderr)
        cursor = p.stderr.split("--cursor ")[1].split()[0]
        p = self.server.meterctl("-o", "json", "usage", "list", "--limit", "5", "--cursor", cursor)
        self.assertEqual([r["recordId"] for r in json.loads(p.stdout)["records"]],
                         [r["recordId"] for r in records[5:10]])
        p = self.server.meterctl("-o", "json", "report", "usage", "--granularity", "month")
        self.assertEqual(json.loads(p.stdout), self.get("/v1/reports/usage", granularity="month"))
        p = self.server.meterctl("report", "usage", "--granularity", "month", "--group-by",
                                 "dimension", "--dimension", "api_calls")
        self.assertIn("AMOUNT", p.stdout)
        self.assertIn("total: ", p.stdout)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "usage.jsonl")
            self.server.meterctl("usage", "export", "--format", "jsonl", "--out", out)
            with open(out) as f:
                lines = f.read().splitlines()
            self.assertEqual([json.loads(line) for line in lines], records)
            self.assertFalse(os.path.exists(out + ".partial"))
        p = self.server.meterctl("report", "export", "--granularity", "hour", "--format", "csv")
        exported = list(csv.DictReader(io.StringIO(p.stdout, newline="")))
        self.assertEqual(sum(int(r["quantity"]) for r in exported),
                         sum(int(r["quantity"]) for r in records))
        p = self.server.meterctl("usage", "export", "--format", "csv", "--from", "not-a-time",
                                 check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("InvalidArgument", p.stderr)


# The ledger of schema 1 (before rollups): the upgrade must backfill the rollups from it.
SCHEMA_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE usage_records (
  seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL UNIQUE, dedup_key TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL, region TEXT NOT NULL, product_code TEXT NOT NULL,
  seller_account TEXT NOT NULL, customer_identifier TEXT NOT NULL,
  customer_account TEXT NOT NULL, license_arn TEXT NOT NULL, workload_id TEXT NOT NULL,
  dimension TEXT NOT NULL, usage_hour_ms INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
  quantity INTEGER NOT NULL, allocations TEXT NOT NULL, request_id TEXT NOT NULL,
  received_ms INTEGER NOT NULL);
"""
# The same on the PostgreSQL backend: its schema 1 (every table: meterd creates none of a
# database at schema 1), before the ledger gained `seq` and the rollups their table.
SCHEMA_1_POSTGRESQL = """
CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version BIGINT NOT NULL);
INSERT INTO schema_version (id, version) VALUES (1, 1);
CREATE TABLE usage_records (
  record_id TEXT PRIMARY KEY, dedup_key TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
  region TEXT NOT NULL, product_code TEXT NOT NULL, seller_account TEXT NOT NULL,
  customer_identifier TEXT NOT NULL, customer_account TEXT NOT NULL, license_arn TEXT NOT NULL,
  workload_id TEXT NOT NULL, dimension TEXT NOT NULL, usage_hour_ms BIGINT NOT NULL,
  timestamp_ms BIGINT NOT NULL, quantity BIGINT NOT NULL, allocations TEXT NOT NULL,
  request_id TEXT NOT NULL, received_ms BIGINT NOT NULL);
CREATE TABLE client_tokens (caller TEXT NOT NULL, token TEXT NOT NULL, fingerprint TEXT NOT NULL,
  record_id TEXT NOT NULL, created_ms BIGINT NOT NULL, PRIMARY KEY (caller, token));
CREATE TABLE metered_runs (workload_id TEXT NOT NULL, product_code TEXT NOT NULL,
  started_ms BIGINT NOT NULL, stopped_ms BIGINT, PRIMARY KEY (workload_id, product_code));
CREATE TABLE registration_tokens (token TEXT PRIMARY KEY, seller_account TEXT NOT NULL,
  product_code TEXT NOT NULL, customer_account TEXT NOT NULL, license_arn TEXT NOT NULL,
  issued_ms BIGINT NOT NULL);
CREATE TABLE catalog_versions (version BIGINT PRIMARY KEY, document TEXT NOT NULL,
  changed_ms BIGINT NOT NULL, change TEXT NOT NULL);
CREATE TABLE workload_entitlements (workload_id TEXT NOT NULL, product_code TEXT NOT NULL,
  first_call_ms BIGINT NOT NULL, PRIMARY KEY (workload_id, product_code));
"""
LARGE = 300000
START_MS = 1790812800000  # 2026-10-01T00:00:00Z


def large_row(i):
    """Row i of the large ledger (the columns of usage_records after seq)."""
    hour = START_MS + (i // 400) * 3600000
    return (str(uuid.UUID(int=i)), "k%d" % i, "BatchMeterUsage", "us-east-1", SAAS,
            "111122223333", "cust-%d" % (i % 400), "5%011d" % (i % 400), "", "",
            "api_calls" if i % 2 else "storage_gb", hour, hour + i % 3600000,
            (i * 7919) % 100000, "", "req-%d" % i, hour + 1000)


# large_row(i) for every i at once, computed by PostgreSQL (300,000 rows through psql as
# literals would take long); LargeExportTest checks the two agree on a sample.
LARGE_ROWS_POSTGRESQL = """
INSERT INTO usage_records
SELECT '00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'), 'k' || i, 'BatchMeterUsage',
  'us-east-1', ?, '111122223333', 'cust-' || (i %% 400), '5' || lpad((i %% 400)::text, 11, '0'),
  '', '', CASE WHEN i %% 2 = 1 THEN 'api_calls' ELSE 'storage_gb' END,
  ? + (i / 400) * 3600000, ? + (i / 400) * 3600000 + i %% 3600000, (i * 7919) %% 100000, '',
  'req-' || i, ? + (i / 400) * 3600000 + 1000
FROM generate_series(0::BIGINT, %d) AS s (i)
""" % (LARGE - 1)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class LargeExportTest(unittest.TestCase):
    """Exports of a large ledger run in constant memory (and an upgrade backfills rollups)."""

    @classmethod
    def setUpClass(cls):
        require_binary()
        cls.data_dir = tempfile.mkdtemp(prefix="meterd-reports-large-")
        cls.total = sum(large_row(i)[13] for i in range(LARGE))
        if POSTGRESQL:
            url = H.store_url(cls.data_dir)
            pg_server.execute(url, SCHEMA_1_POSTGRESQL)
            pg_server.execute(url, LARGE_ROWS_POSTGRESQL, (SAAS, START_MS, START_MS, START_MS))
            for i in (0, 1, 399, 400, 123457, LARGE - 1):  # the SQL computes large_row(i)
                stored = pg_server.query(url, "SELECT * FROM usage_records WHERE dedup_key = ?",
                                         ("k%d" % i,))
                assert stored == [large_row(i)], (stored, large_row(i))
        else:
            db = sqlite3.connect(os.path.join(cls.data_dir, "meterd.db"))
            db.executescript(SCHEMA_1)
            db.executemany(
                "INSERT INTO usage_records VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (large_row(i) for i in range(LARGE)))
            db.commit()
            db.close()
        cls.server = Meterd(data_dir=cls.data_dir)
        cls.server.start(timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        import shutil
        shutil.rmtree(cls.data_dir, ignore_errors=True)
        H.forget_store(cls.data_dir)

    def export_sampling_rss(self, fmt):
        pid = self.server.proc.pid
        url = self.server.admin_endpoint + "/v1/usage/export?format=" + fmt
        req = urllib.request.Request(url)
        req.add_header("Authorization", "Bearer " + self.server.admin_token)
        before = rss_kib(pid)
        peak = before
        lines, total, size = 0, 0, 0
        with urllib.request.urlopen(req, timeout=300) as resp:
            header = None
            pending = b""
            while True:
                block = resp.read(1 << 16)
                if not block:
                    break
                size += len(block)
                peak = max(peak, rss_kib(pid))
                pending += block
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    if fmt == "csv":
                        if header is None:
                            header = line.decode().rstrip("\r").split(",")
                            continue
                        fields = next(csv.reader([line.decode()]))
                        total += int(fields[header.index("quantity")])
                    else:
                        total += int(json.loads(line)["quantity"])
                    lines += 1
        self.assertEqual(pending, b"")
        return lines, total, size, before, peak

    def test_an_upgrade_backfills_the_rollups(self):
        status, body = self.server.admin("GET", "/v1/reports/usage?granularity=month")
        self.assertEqual(status, 200, body)
        self.assertEqual(int(body["totals"]["quantity"]), self.total)
        self.assertEqual(sum(row["records"] for row in body["rows"]), LARGE)

    def test_exports_of_a_large_ledger_run_in_constant_memory(self):
        for fmt in ("csv", "jsonl"):
            lines, total, size, before, peak = self.export_sampling_rss(fmt)
            self.assertEqual(lines, LARGE, fmt)
            self.assertEqual(total, self.total, fmt)
            # The body is tens of MB; the server's memory may grow by its page caches only.
            self.assertGreater(size, 50 << 20, fmt)
            if os.environ.get("ASAN_OPTIONS") is not None:
                # AddressSanitizer keeps freed memory in quarantine (256 MB by default), so RSS
                # says nothing about reuse there; the release run (ctest) asserts it.
                continue
            self.assertLess((peak - before) * 1024, 32 << 20,
                            "%s: RSS %d KiB -> %d KiB for %d bytes" % (fmt, before, peak, size))
