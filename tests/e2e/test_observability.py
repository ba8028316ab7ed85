"""Observability (docs/OBSERVABILITY.md) against the real meterd: /metrics scraped before and
after real boto3 calls moves by exactly the calls made; the JSON access log has one line per
call with the documented fields and no secret anywhere; /healthz and /readyz, also with the
store failing (a full tmpfs, as in test_store_faults.py)."""
import json
import os
import re
import shutil
import socket
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from tests.e2e.e2e_support import (
    AMI, EC2, GLOBEX_CUSTOMER, INITECH_CUSTOMER, SAAS, SELLER, Meterd, ServerTestCase, record,
    sqlite_only)
from tests.e2e.test_store_faults import SmallDiskServer, can_mount

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """The Prometheus text format 0.0.4 as {(name, ((label, value), ...)): float}; checks that
    every sample's family has HELP and TYPE lines before it."""
    samples, typed = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            typed[name] = kind
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        name, labels, value = m.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        if family not in typed:
            raise AssertionError("sample %s without a TYPE line" % name)
        pairs = tuple(sorted(
            (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for k, v in _LABEL.findall(labels or "")))
        samples[(name, pairs)] = float(value)
    return samples


def get(url, token=None):
    """(status, headers, body text) of a GET."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class MetricsMixin:
    def scrape(self):
        status, headers, body = get(self.server.admin_endpoint + "/metrics",
                                    self.server.admin_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return parse_exposition(body)

    @staticmethod
    def value(samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def assertMoved(self, before, after, expected):
        """expected: {(name, labels dict as tuple): delta}; each sample moved by exactly that."""
        for (name, labels), delta in expected.items():
            with self.subTest(metric=name, labels=labels):
                moved = self.value(after, name, **dict(labels)) - self.value(before, name,
                                                                             **dict(labels))
                self.assertEqual(moved, delta, "%s%s moved by %s, expected %s"
                                 % (name, dict(labels), moved, delta))


class ObservabilityTests(MetricsMixin, ServerTestCase):
    throttle = True  # MeterUsage gets one token per account and 100 s (below)

    @classmethod
    def setUpClass(cls):
        cls.log_dir = tempfile.mkdtemp(prefix="meterd-obs-")
        cls.addClassCleanup(shutil.rmtree, cls.log_dir, True)
        cls.access_log = os.path.join(cls.log_dir, "access.log")
        cls.extra_args = ("--throttle-meter-usage", "0.01", "--throttle-burst-seconds", "100",
                          "--access-log", cls.access_log, "--log-format", "json")
        super().setUpClass()

    def access_lines(self):
        with open(self.access_log) as f:
            return [json.loads(line) for line in f.read().splitlines()]

    def call_batch(self, records):
        return self.client(SELLER).batch_meter_usage(ProductCode=SAAS, UsageRecords=records)

    def too_large_request(self):
        """A body over the 1 MiB limit, refused before it is read whole (400 ValidationException,
        D7)."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
                      b"X-Amz-Target: AWSMPMeteringService.MeterUsage\r\n"
                      b"Content-Length: 2000000\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return int(reply.split(b" ", 2)[1])

    # --- metrics ---------------------------------------------------------------------------
    def test_every_metric_moves_by_exactly_the_calls_made(self):
        h1 = self.slots.batch_hour("globex:api_calls")
        h2 = self.slots.batch_hour("globex:api_calls")
        hi = self.slots.batch_hour("initech:api_calls")
        hm = self.slots.meter_hour("ec2:ami:hosts")
        before = self.scrape()

        # Two records accepted; then one of them again with another quantity (DuplicateRecord)
        # next to a customer who is not subscribed (CustomerNotSubscribed).
        out = self.call_batch([record(h1, quantity=1), record(h2, quantity=2)])
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success", "Success"])
        out = self.call_batch([record(h1, quantity=5),
                               record(hi, customer=INITECH_CUSTOMER, quantity=1)])
        self.assertEqual(sorted(r["Status"] for r in out["Results"]),
                         ["CustomerNotSubscribed", "DuplicateRecord"])
        # A validation error (no ProductCode and no LicenseArn).
        self.assertBatchError("ValidationException", [record(h1, quantity=1)], product=None)
        # MeterUsage: the one token is spent, the next call is throttled.
        self.meter(EC2, AMI, "hosts", ts=hm)
        resp = self.assertMeterError("ThrottlingException", EC2, AMI, "hosts", ts=hm)
        # botocore retries retryable errors (its max_attempts=1 is one retry): every attempt
        # is a call meterd answered.
        throttled = 1 + resp["ResponseMetadata"].get("RetryAttempts", 0)
        # An injected fault (500) on BatchMeterUsage for the seller.
        self.server.admin("DELETE", "/v1/faults")
        self.addCleanup(self.server.admin, "DELETE", "/v1/faults")
        st, _ = self.server.admin("POST", "/v1/faults", {
            "operation": "BatchMeterUsage", "caller": SELLER[0], "internalErrorRate": 1,
            "seed": 7})
        self.assertEqual(st, 200)
        resp = self.assertBatchError("InternalServiceErrorException", [record(h2, quantity=2)],
                                     status=500)
        injected = 1 + resp["ResponseMetadata"].get("RetryAttempts", 0)
        self.server.admin("DELETE", "/v1/faults")
        # A body too large to read.
        self.assertEqual(self.too_large_request(), 400)

        # The audit events of these calls are units of their own, submitted just after each
        # answer (docs/AUDIT.md): the writer's queue is empty once they are committed. (On a
        # remote store a group takes a few round trips, so a scrape right after the last answer
        # can meet one queued.)
        after = self.scrape()
        deadline = time.time() + 10
        while self.value(after, "meterd_store_writer_queue_depth") != 0 and time.time() < deadline:
            time.sleep(0.05)
            after = self.scrape()
        req = "meterd_api_requests_total"
        records = "meterd_api_records_total"
        B, M = "BatchMeterUsage", "MeterUsage"
        self.assertMoved(before, after, {
            (req, (("operation", B), ("outcome", "Success"))): 2,
            (req, (("operation", B), ("outcome", "ValidationException"))): 1,
            # The body too large to read: no operation known, D7's ValidationException.
            (req, (("operation", "unknown"), ("outcome", "ValidationException"))): 1,
            (req, (("operation", B), ("outcome", "InternalServiceErrorException"))): injected,
            (req, (("operation", M), ("outcome", "Success"))): 1,
            (req, (("operation", M), ("outcome", "ThrottlingException"))): throttled,
            (records, (("operation", B), ("status", "Success"))): 2,
            (records, (("operation", B), ("status", "DuplicateRecord"))): 1,
            (records, (("operation", B), ("status", "CustomerNotSubscribed"))): 1,
            (records, (("operation", B), ("status", "Unprocessed"))): 0,
            (records, (("operation", M), ("status", "Success"))): 1,
            ("meterd_api_throttled_total", (("operation", M),)): throttled,
            ("meterd_api_throttled_total", (("operation", B),)): 0,
            ("meterd_api_injected_faults_total", (("operation", B),)): injected,
            ("meterd_api_injected_faults_total", (("operation", M),)): 0,
            ("meterd_api_request_duration_seconds_count", (("operation", B),)): 3 + injected,
            ("meterd_api_request_duration_seconds_count", (("operation", M),)): 1 + throttled,
            ("meterd_api_request_duration_seconds_bucket", (("le", "+Inf"), ("operation", B))):
                3 + injected,
            # Two groups at least carried the accepted batches and the MeterUsage record; the
            # fault and the refusals never reached the store.
            ("meterd_store_errors_total", ()): 0,
        })
        # Group commits: the 3 metering writes (two batches and one MeterUsage) are units of
        # some groups; every group is counted in both histograms and as ok.
        units = "meterd_store_group_commit_units"
        groups = (self.value(after, units + "_count") - self.value(before, units + "_count"))
        self.assertGreaterEqual(groups, 1)
        self.assertGreaterEqual(self.value(after, units + "_sum") -
                                self.value(before, units + "_sum"), 3)
        self.assertEqual(self.value(after, "meterd_store_group_commit_duration_seconds_count") -
                         self.value(before, "meterd_store_group_commit_duration_seconds_count"),
                         groups)
        self.assertEqual(self.value(after, "meterd_store_group_commits_total", result="ok") -
                         self.value(before, "meterd_store_group_commits_total", result="ok"),
                         groups)
        self.assertEqual(self.value(after, "meterd_store_writer_queue_depth"), 0)
        # Latency: the sum moved by a positive amount; every bucket is cumulative.
        self.assertGreater(
            self.value(after, "meterd_api_request_duration_seconds_sum", operation=B) -
            self.value(before, "meterd_api_request_duration_seconds_sum", operation=B), 0)
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in after.items()
                          if k[0] == "meterd_api_request_duration_seconds_bucket" and
                          dict(k[1])["operation"] == B))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))

    def test_connection_metrics_count_connections(self):
        before = self.scrape()
        for _ in range(3):  # three connections, each closed
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=10):
                pass
        held = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        self.addCleanup(held.close)
        deadline = time.time() + 10
        while True:
            after = self.scrape()
            accepted = (self.value(after, "meterd_http_connections_accepted_total",
                                   listener="api") -
                        self.value(before, "meterd_http_connections_accepted_total",
                                   listener="api"))
            if accepted >= 4 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(accepted, 4)
        self.assertGreaterEqual(self.value(after, "meterd_http_connections_open", listener="api"),
                                1)
        self.assertEqual(self.value(after, "meterd_http_connections_rejected_total",
                                    listener="api"), 0)
        # The scrapes themselves are admin connections.
        self.assertGreaterEqual(self.value(after, "meterd_http_connections_accepted_total",
                                           listener="admin"), 2)
        self.assertGreaterEqual(self.value(after, "meterd_catalog_version"), 1)

    def test_metrics_need_the_bearer_token(self):
        status, _, body = get(self.server.admin_endpoint + "/metrics")
        self.assertEqual(status, 401, body)
        status, _, body = get(self.server.admin_endpoint + "/metrics", "wrong-token-0000000000")
        self.assertEqual(status, 401, body)

    # --- logs -------------------------------------------------------------------------------
    def test_access_log_has_one_json_line_per_call_with_the_documented_fields(self):
        h = self.slots.batch_hour("globex:storage_gb")
        first = len(self.access_lines())
        out = self.call_batch([record(h, dimension="storage_gb", quantity=3)])
        ok_id = out["ResponseMetadata"]["RequestId"]
        resp = self.assertBatchError("ValidationException", [record(h, quantity=1)], product=None)
        err_id = resp["ResponseMetadata"]["RequestId"]
        self.assertEqual(self.too_large_request(), 400)
        lines = self.access_lines()[first:]
        self.assertEqual(len(lines), 3, lines)
        fields = {"time", "request_id", "operation", "region", "access_key_id", "account",
                  "workload_id", "source_ip", "user_agent", "status", "error_type",
                  "error_message", "latency_ms", "throttled", "fault_injected", "records"}
        for line in lines:
            self.assertEqual(set(line), fields, line)
            self.assertRegex(line["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            self.assertIsInstance(line["latency_ms"], float)
            self.assertGreaterEqual(line["latency_ms"], 0)
        ok, err, refused = lines
        self.assertEqual(ok["request_id"], ok_id)
        self.assertEqual(ok["operation"], "BatchMeterUsage")
        self.assertEqual(ok["region"], "us-east-1")
        self.assertEqual(ok["access_key_id"], SELLER[0])
        self.assertEqual(ok["account"], "111122223333")
        self.assertEqual(ok["source_ip"], "127.0.0.1")
        self.assertIn("Boto3", ok["user_agent"])
        self.assertEqual((ok["status"], ok["error_type"]), (200, ""))
        self.assertEqual(ok["records"], {"success": 1, "duplicate": 0,
                                         "customer_not_subscribed": 0, "unprocessed": 0})
        self.assertEqual(err["request_id"], err_id)
        self.assertEqual((err["status"], err["error_type"]), (400, "ValidationException"))
        self.assertTrue(err["error_message"])
        self.assertEqual((refused["status"], refused["error_type"]), (400, "ValidationException"))
        self.assertEqual(refused["operation"], "")
        self.assertTrue(refused["request_id"])
        self.assertTrue(refused["error_type"])

    def test_no_secret_in_the_access_log_or_the_server_log(self):
        self.call_batch([record(self.slots.batch_hour("globex:api_calls"), quantity=1)])
        with open(self.access_log) as f:
            access = f.read()
        with open(self.server.log_path) as f:
            server_log = f.read()
        self.assertTrue(access.strip())
        secrets = [("seller secret", SELLER[1]), ("EC2 secret", EC2[1])]
        if len(EC2) > 2:
            secrets.append(("EC2 session token", EC2[2]))
        for label, value in secrets + [("admin token", self.server.admin_token)]:
            self.assertNotIn(value, access, "%s in the access log" % label)
        # The server log: JSON lines, except the admin token announced once at first start.
        announce = [line for line in server_log.splitlines()
                    if line.startswith("meterd: new admin API token")]
        self.assertEqual(len(announce), 1)
        rest = [line for line in server_log.splitlines() if line not in announce and line]
        for label, value in secrets + [("admin token", self.server.admin_token)]:
            self.assertNotIn(value, "\n".join(rest), "%s in the server log" % label)
        for line in rest:
            if sanitizer_noise(line):
                continue
            entry = json.loads(line)
            self.assertEqual({"time", "level", "msg"} - set(entry), set(), entry)

    # --- health -------------------------------------------------------------------------------
    def test_healthz_and_readyz_answer_without_a_token(self):
        status, _, body = get(self.server.admin_endpoint + "/healthz")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))
        status, _, body = get(self.server.admin_endpoint + "/readyz")
        self.assertEqual(status, 200, body)
        ready = json.loads(body)
        self.assertEqual(ready["status"], "ready")
        self.assertEqual({name: c["ok"] for name, c in ready["checks"].items()},
                         {"catalog": True, "api": True, "store": True})


def sanitizer_noise(line):
    """Lines a sanitizer build's runtime may print (not meterd's log)."""
    return line.startswith("==") or line.startswith("SUMMARY:")


@unittest.skipUnless(can_mount(), "needs root and tmpfs mounts (CI runs as root)")
@sqlite_only("the full disk is meterd's data dir, which holds a SQLite store; a PostgreSQL "
             "store fails when its server does (tests/pg stops PostgreSQL under load)")
class ReadyzStoreFailureTests(MetricsMixin, SmallDiskServer, ServerTestCase):
    """A full disk fails a group commit: /readyz answers 503 naming the store, the error is
    counted, and readiness comes back once space is back and the window has passed."""

    def readyz(self):
        status, _, body = get(self.server.admin_endpoint + "/readyz")
        return status, json.loads(body)

    def test_readyz_fails_while_the_store_fails(self):
        self.assertEqual(self.readyz()[0], 200)
        before = self.scrape()
        now = int(time.time())
        batch = [record(now - 3600 * h, quantity=h + 1, customer=GLOBEX_CUSTOMER)
                 for h in range(1, 6)]
        filler = self.fill_disk()
        c = self.client(SELLER)
        with self.assertRaises(c.exceptions.InternalServiceErrorException) as cm:
            c.batch_meter_usage(ProductCode=SAAS, UsageRecords=batch)
        attempts = 1 + cm.exception.response["ResponseMetadata"].get("RetryAttempts", 0)
        # Scraped before /readyz: its probe is a group of its own, which a full disk may fail.
        after = self.scrape()
        status, ready = self.readyz()
        self.assertEqual(status, 503, ready)
        self.assertEqual(ready["status"], "unavailable")
        self.assertFalse(ready["checks"]["store"]["ok"], ready)
        self.assertIn("group commit failed", ready["checks"]["store"]["detail"])
        self.assertTrue(ready["checks"]["catalog"]["ok"], ready)
        # Every attempt failed its group; the audit events of those calls are written after the
        # answers, in groups that the full disk fails too (alone, or together with a request).
        store_errors = (self.value(after, "meterd_store_errors_total") -
                        self.value(before, "meterd_store_errors_total"))
        self.assertGreaterEqual(store_errors, attempts)
        self.assertLessEqual(store_errors, 2 * attempts)
        self.assertEqual(self.value(after, "meterd_store_group_commits_total", result="error") -
                         self.value(before, "meterd_store_group_commits_total", result="error"),
                         store_errors)
        self.assertEqual(self.value(after, "meterd_api_requests_total",
                                    operation="BatchMeterUsage",
                                    outcome="InternalServiceErrorException") -
                         self.value(before, "meterd_api_requests_total",
                                    operation="BatchMeterUsage",
                                    outcome="InternalServiceErrorException"), attempts)
        # /healthz: the process is alive all along.
        self.assertEqual(get(self.server.admin_endpoint + "/healthz")[0], 200)
        # Space is back: ready again once the failure is older than the 10 s window.
        os.remove(filler)
        deadline = time.time() + 20
        while self.readyz()[0] != 200 and time.time() < deadline:
            time.sleep(0.5)
        self.assertEqual(self.readyz()[0], 200)
        out = c.batch_meter_usage(ProductCode=SAAS, UsageRecords=batch)
        self.assertEqual({r["Status"] for r in out["Results"]}, {"Success"})


if __name__ == "__main__":
    unittest.main()
