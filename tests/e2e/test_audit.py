"""The audit trail (D17, docs/AUDIT.md) through real clients.

A session of metering calls through boto3 - successes of every operation, a validation error, a
bad signature, an unknown key, a throttled run, injected faults - and an oversized body sent on a
raw socket (no SDK sends one); every request id the clients saw must appear exactly once in the
audit trail with the error code the client saw (none on success), and nothing else may be there.
Admin changes (accepted and refused) appear as meterd-admin events; the lookup filters, the
cursor, the export and meterctl audit are checked against the same events; no secret appears.
Retention is checked with the test clock: events past auditRetentionDays are pruned in the
background."""
import datetime
import json
import os
import socket
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from e2e_support import (  # noqa: E402
    AMI, CTR, EC2, ECS, GLOBEX_ACCOUNT, GLOBEX_CUSTOMER, SAAS, SELLER, TEST_CATALOG, ClientError,
    ServerTestCase, dt, floor_hour)
from meterd_harness import TOKEN_GLOBEX_SAAS  # noqa: E402
from test_secrets import catalog_secrets  # noqa: E402

METERING = "metering-marketplace.amazonaws.com"
ADMIN = "meterd-admin"
UNKNOWN_KEY = ("AKIAUNKNOWNAUDIT0001", "unknownAuditSecretKey0000000000000000001")
WRONG_SECRET = "wrongAuditSecretKey00000000000000000000001"


class AuditClient:
    """Admin API reads of the audit trail, shared by the test classes."""

    def audit_events(self, **filters):
        """Every event matching `filters`, following nextCursor (pages of `limit`)."""
        events, query = [], dict(filters)
        while True:
            status, body = self.server.admin(
                "GET", "/v1/audit/events?" + urllib.parse.urlencode(query))
            self.assertEqual(status, 200, body)
            events += body["events"]
            if "nextCursor" not in body:
                return events
            query["cursor"] = body["nextCursor"]

    def await_events(self, request_ids, timeout=20):
        """Waits until every id in `request_ids` is in the trail (events are written just after
        the answer)."""
        deadline = time.time() + timeout
        while True:
            seen = {e["requestID"] for e in self.audit_events(eventSource=METERING, limit=1000)}
            missing = set(request_ids) - seen
            if not missing or time.time() > deadline:
                return missing
            time.sleep(0.1)

    def await_quiet(self):
        """Waits until every event recorded so far is committed (the recorded count is stable)."""
        last = None
        for _ in range(100):
            status, stats = self.server.admin("GET", "/v1/audit")
            self.assertEqual(status, 200, stats)
            if stats == last:
                return stats
            last = stats
            time.sleep(0.2)
        return last


class AuditSessionTest(AuditClient, ServerTestCase):
    """setUpClass runs the session and records what the clients saw; tests check the trail."""

    throttle = True  # the throttled run needs the real throttle (D14)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.seen = {}  # request id -> (operation, error code the client saw or None)
        cls.admin_changes = []  # (eventName, errorCode or None)
        cls.session()

    # --- recording ---------------------------------------------------------------------------
    @classmethod
    def watch(cls, client):
        """Records every attempt `client` makes (retries included): botocore emits needs-retry
        after each response, with the RequestId and error code the client saw."""
        if getattr(client, "_audit_watched", False):
            return client

        def attempt(response=None, operation=None, **_):
            if response is None:
                raise AssertionError("%s: no answer" % operation.name)
            parsed = response[1]
            request_id = parsed.get("ResponseMetadata", {}).get("RequestId")
            if not request_id:
                raise AssertionError("%s: no RequestId in %s" % (operation.name, parsed))
            if request_id in cls.seen:
                raise AssertionError("request id %s answered twice" % request_id)
            cls.seen[request_id] = (operation.name, parsed.get("Error", {}).get("Code"))
        client.meta.events.register("needs-retry.*", attempt)
        client._audit_watched = True
        return client

    @classmethod
    def call(cls, operation, client, **kwargs):
        """One API call (its attempts are recorded by watch()) -> the final error code or None."""
        method = getattr(cls.watch(client), {"MeterUsage": "meter_usage",
                                             "BatchMeterUsage": "batch_meter_usage",
                                             "RegisterUsage": "register_usage",
                                             "ResolveCustomer": "resolve_customer"}[operation])
        try:
            method(**kwargs)
            return None
        except ClientError as e:
            return e.response["Error"]["Code"]

    @classmethod
    def admin_change(cls, method, path, body=None, token=None, expect_error=None):
        status, answer = cls.server.admin(method, path, body, token=token)
        error = answer.get("code") if status >= 400 and isinstance(answer, dict) else None
        if error != expect_error:
            raise AssertionError("%s %s -> %d %s" % (method, path, status, answer))
        return answer

    @classmethod
    def oversized_body(cls):
        """A body of 1 MiB, refused before it is read (only its length is sent)."""
        with socket.create_connection(("127.0.0.1", cls.server.port), timeout=10) as s:
            s.sendall(("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
                       "X-Amz-Target: AWSMPMeteringService.MeterUsage\r\n"
                       "Content-Length: %d\r\n\r\n" % (1 << 20)).encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        headers = {k.lower(): v for k, v in headers.items()}
        request_id = headers["x-amzn-requestid"]
        cls.seen[request_id] = (None, "ValidationException")

    # --- the session ---------------------------------------------------------------------------
    @classmethod
    def session(cls):
        hour = floor_hour(int(time.time())) - 3600
        seller, ec2 = cls.client(SELLER), cls.client(EC2)
        record = {"Timestamp": dt(hour + 1), "CustomerIdentifier": GLOBEX_CUSTOMER,
                  "Dimension": "api_calls", "Quantity": 1}
        # Successes of every operation.
        ok = [cls.call("MeterUsage", ec2, ProductCode=AMI, UsageDimension="hosts",
                       Timestamp=dt(hour + 2), UsageQuantity=1),
              cls.call("BatchMeterUsage", seller, ProductCode=SAAS, UsageRecords=[record]),
              cls.call("BatchMeterUsage", seller, ProductCode=SAAS, UsageRecords=[record]),
              cls.call("ResolveCustomer", seller, RegistrationToken=TOKEN_GLOBEX_SAAS),
              cls.call("RegisterUsage", cls.client(ECS), ProductCode=CTR, PublicKeyVersion=1)]
        if ok != [None] * 5:
            raise AssertionError("the successful calls failed: %s" % ok)
        # Validation errors (the SDK's own checks turned off), business errors.
        unchecked = cls.client(SELLER, parameter_validation=False)
        cls.call("BatchMeterUsage", unchecked, ProductCode="", UsageRecords=[record])
        cls.call("MeterUsage", ec2, ProductCode=AMI, UsageDimension="no_such_dimension",
                 Timestamp=dt(hour + 3), UsageQuantity=1)
        cls.call("ResolveCustomer", seller, RegistrationToken="no-such-token-audit-000000001")
        # A bad signature, an unknown key.
        cls.call("MeterUsage", cls.client((EC2[0], WRONG_SECRET)), ProductCode=AMI,
                 UsageDimension="hosts", Timestamp=dt(hour + 4), UsageQuantity=1)
        cls.call("BatchMeterUsage", cls.client(UNKNOWN_KEY), ProductCode=SAAS,
                 UsageRecords=[record])
        # A throttled run: a rate of 1/s with a bucket of one second.
        cls.admin_change("PATCH", "/v1/settings",
                         {"throttle": {"batchMeterUsage": 1, "burstSeconds": 1}})
        cls.admin_changes.append(("PATCH /v1/settings", None))
        run = [cls.call("BatchMeterUsage", seller, ProductCode=SAAS, UsageRecords=[record])
               for _ in range(6)]
        if "ThrottlingException" not in run:
            raise AssertionError("nothing was throttled: %s" % run)
        cls.admin_change("PATCH", "/v1/settings",
                         {"throttle": {"batchMeterUsage": 10, "burstSeconds": 2}})
        cls.admin_changes.append(("PATCH /v1/settings", None))
        # Injected faults: an internal error, then a throttle.
        for rule, expected in (({"operation": "MeterUsage", "internalErrorRate": 1},
                                "InternalServiceErrorException"),
                               ({"operation": "MeterUsage", "throttleRate": 1},
                                "ThrottlingException")):
            cls.admin_change("POST", "/v1/faults", dict(rule, seed=1))
            cls.admin_changes.append(("POST /v1/faults", None))
            got = cls.call("MeterUsage", ec2, ProductCode=AMI, UsageDimension="hosts",
                           Timestamp=dt(hour + 5), UsageQuantity=1)
            if got != expected:
                raise AssertionError("injected %s, got %s" % (expected, got))
            cls.admin_change("DELETE", "/v1/faults")
            cls.admin_changes.append(("DELETE /v1/faults", None))
        cls.oversized_body()
        # Admin changes: accepted, refused by validation, refused for a wrong token.
        cls.admin_change("POST", "/v1/accounts", {"id": "121212121212", "name": "Audit Buyer",
                                                  "roles": ["buyer"]})
        cls.admin_changes.append(("POST /v1/accounts", None))
        cls.admin_change("POST", "/v1/accounts", {"id": "121212121212", "roles": ["buyer"]},
                         expect_error="Conflict")
        cls.admin_changes.append(("POST /v1/accounts", "Conflict"))
        cls.admin_change("DELETE", "/v1/accounts/121212121212")
        cls.admin_changes.append(("DELETE /v1/accounts/{id}", None))
        cls.admin_change("DELETE", "/v1/accounts/121212121212", token="x" * 64,
                         expect_error="Unauthorized")
        cls.admin_changes.append(("DELETE /v1/accounts/{id}", "Unauthorized"))

    # --- checks ----------------------------------------------------------------------------------
    def metering_events(self):
        missing = self.await_events(self.seen)
        self.assertEqual(missing, set(), "request ids missing from the audit trail")
        self.await_quiet()
        return self.audit_events(eventSource=METERING, limit=1000)

    def test_every_call_appears_once_with_its_error_code(self):
        events = self.metering_events()
        by_id = {}
        for e in events:
            by_id.setdefault(e["requestID"], []).append(e)
        extra = [(e["eventName"], e.get("errorCode"), e["additionalEventData"])
                 for request_id, found in by_id.items() if request_id not in self.seen
                 for e in found]
        self.assertEqual(extra, [], "the trail holds calls no client saw")
        self.assertEqual(set(by_id), set(self.seen))
        codes = set()
        for request_id, (operation, code) in self.seen.items():
            with self.subTest(request_id=request_id, operation=operation):
                self.assertEqual(len(by_id[request_id]), 1, by_id[request_id])
                event = by_id[request_id][0]
                self.assertEqual(event.get("errorCode"), code, event)
                self.assertEqual(event["eventName"], operation or "Unknown", event)
                if code is None:
                    self.assertNotIn("errorMessage", event)
                else:
                    self.assertTrue(event.get("errorMessage"), event)
                codes.add(code)
        # The session did produce each kind of outcome.
        for expected in (None, "ValidationException", "InvalidSignatureException",
                         "UnrecognizedClientException", "ThrottlingException",
                         "InternalServiceErrorException", "InvalidUsageDimensionException",
                         "InvalidTokenException"):
            self.assertIn(expected, codes)

    def test_events_have_the_cloudtrail_shape(self):
        events = self.metering_events()
        for e in events:
            with self.subTest(request_id=e["requestID"]):
                for field in ("eventVersion", "eventTime", "eventSource", "eventName",
                              "userIdentity", "requestParameters", "responseElements",
                              "requestID", "eventID", "eventType", "readOnly"):
                    self.assertIn(field, e)
                self.assertEqual(e["eventSource"], METERING)
                self.assertEqual(e["eventType"], "AwsApiCall")
                self.assertRegex(e["eventTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        ok = [e for e in events if e["eventName"] == "MeterUsage" and "errorCode" not in e]
        self.assertEqual(len(ok), 1, ok)
        e = ok[0]
        self.assertEqual(e["userIdentity"]["accessKeyId"], EC2[0])
        self.assertEqual(e["userIdentity"]["accountId"], GLOBEX_ACCOUNT)
        self.assertEqual(e["recipientAccountId"], GLOBEX_ACCOUNT)
        self.assertEqual(e["awsRegion"], "us-east-1")
        self.assertEqual(e["sourceIPAddress"], "127.0.0.1")
        self.assertIn("Boto3", e["userAgent"])
        self.assertEqual(e["requestParameters"]["ProductCode"], AMI)
        self.assertTrue(e["responseElements"]["MeteringRecordId"])
        self.assertIs(e["readOnly"], False)
        resolve = [x for x in events if x["eventName"] == "ResolveCustomer"
                   and "errorCode" not in x]
        self.assertIs(resolve[0]["readOnly"], True)
        # A refused caller is recorded with the key it claimed.
        bad = [x for x in events if x.get("errorCode") == "UnrecognizedClientException"]
        self.assertEqual([x["userIdentity"]["accessKeyId"] for x in bad], [UNKNOWN_KEY[0]])
        self.assertEqual(bad[0]["userIdentity"]["type"], "Unknown")
        # RegisterUsage's signature is hidden.
        register = [x for x in events if x["eventName"] == "RegisterUsage"][0]
        self.assertEqual(register["responseElements"]["Signature"],
                         "HIDDEN_DUE_TO_SECURITY_REASONS")

    def test_admin_changes_appear(self):
        self.metering_events()
        events = self.audit_events(eventSource=ADMIN, limit=1000)
        got = sorted((e["eventName"], e.get("errorCode") or "") for e in events)
        self.assertEqual(got, sorted((name, code or "") for name, code in self.admin_changes))
        created = [e for e in events if e["eventName"] == "POST /v1/accounts"
                   and "errorCode" not in e][0]
        self.assertEqual(created["requestParameters"]["body"]["id"], "121212121212")
        self.assertEqual(created["userIdentity"]["type"], "AdminToken")
        refused = [e for e in events if e.get("errorCode") == "Unauthorized"][0]
        self.assertEqual(refused["userIdentity"]["type"], "Unknown")
        # Reads are not audited.
        self.assertFalse([e for e in events if e["eventName"].startswith("GET ")])

    def test_lookup_filters(self):
        everything = self.metering_events() + self.audit_events(eventSource=ADMIN, limit=1000)
        for filters, keep in (
                ({"eventName": "MeterUsage"}, lambda e: e["eventName"] == "MeterUsage"),
                ({"errorCode": "ThrottlingException"},
                 lambda e: e.get("errorCode") == "ThrottlingException"),
                ({"errorCode": "any"}, lambda e: "errorCode" in e),
                ({"accessKey": EC2[0]}, lambda e: e["userIdentity"].get("accessKeyId") == EC2[0]),
                ({"account": GLOBEX_ACCOUNT},
                 lambda e: e["userIdentity"].get("accountId") == GLOBEX_ACCOUNT),
                ({"eventName": "BatchMeterUsage", "errorCode": "any", "accessKey": SELLER[0]},
                 lambda e: e["eventName"] == "BatchMeterUsage" and "errorCode" in e
                 and e["userIdentity"].get("accessKeyId") == SELLER[0])):
            with self.subTest(filters=filters):
                want = [e["eventID"] for e in everything if keep(e)]
                got = [e["eventID"] for e in self.audit_events(limit=3, **filters)]
                self.assertTrue(want)
                self.assertEqual(sorted(got), sorted(want))
        # Newest first, and a time window: from inclusive, to exclusive.
        all_events = self.audit_events(limit=1000)
        # As instants: eventTime drops a zero fraction ("...:38Z" is before "...:38.124Z",
        # although it sorts after it as text).
        def instant(event):
            return datetime.datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
        times = [instant(e) for e in all_events]
        self.assertEqual(times, sorted(times, reverse=True))
        middle = all_events[len(all_events) // 2]
        older = self.audit_events(to=middle["eventTime"], limit=1000)
        newer = self.audit_events(**{"from": middle["eventTime"], "limit": 1000})
        self.assertTrue(older and newer)
        self.assertTrue(all(instant(e) < instant(middle) for e in older))
        self.assertTrue(all(instant(e) >= instant(middle) for e in newer))
        self.assertEqual(len(older) + len(newer), len(all_events))

    def test_paginating_with_the_cursor_gives_each_event_once(self):
        self.metering_events()
        whole = [e["eventID"] for e in self.audit_events(limit=1000)]
        paged = [e["eventID"] for e in self.audit_events(limit=4)]
        self.assertEqual(paged, whole)
        self.assertEqual(len(set(whole)), len(whole))

    def test_bad_queries_are_refused(self):
        for query in ("limit=0", "limit=1001", "from=yesterday", "cursor=zz", "colour=red"):
            with self.subTest(query=query):
                status, body = self.server.admin("GET", "/v1/audit/events?" + query)
                self.assertEqual(status, 400, body)
                self.assertEqual(body["code"], "InvalidArgument")
        status, body = self.server.admin("POST", "/v1/audit/events")
        self.assertEqual(status, 405, body)

    def test_export_matches_lookup(self):
        self.metering_events()
        lookup = self.audit_events(limit=1000)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "audit.jsonl")
            self.server.meterctl("audit", "export", "--out", path)
            with open(path) as f:
                lines = f.read().splitlines()
        self.assertEqual([json.loads(line) for line in lines], lookup)
        # Pages of the export follow each other (the server sends X-Meterd-Next-Cursor).
        p = self.server.meterctl("audit", "export", "--event-name", "BatchMeterUsage")
        exported = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual(exported, self.audit_events(eventName="BatchMeterUsage", limit=1000))

    def test_meterctl_audit_lookup(self):
        self.metering_events()
        p = self.server.meterctl("-o", "json", "audit", "lookup", "--event-name", "MeterUsage",
                                 "--error-code", "any", "--access-key", EC2[0])
        got = json.loads(p.stdout)["events"]
        want = self.audit_events(eventName="MeterUsage", errorCode="any", accessKey=EC2[0])
        self.assertEqual(got, want)
        self.assertTrue(got)
        p = self.server.meterctl("audit", "lookup", "--error-code", "ThrottlingException",
                                 "--limit", "2")
        lines = p.stdout.splitlines()
        self.assertIn("EVENT NAME", lines[0])
        self.assertIn("ERROR CODE", lines[0])
        self.assertEqual(len(lines), 3, p.stdout)
        self.assertIn("ThrottlingException", lines[1])
        self.assertIn("more: --cursor ", p.stderr)
        p = self.server.meterctl("audit", "lookup", "--from", "not-a-time", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)

    def test_no_secret_in_the_trail(self):
        self.metering_events()
        text = json.dumps(self.audit_events(limit=1000))
        secrets = catalog_secrets(TEST_CATALOG) + [("wrong secret", WRONG_SECRET),
                                                   ("unknown key's secret", UNKNOWN_KEY[1]),
                                                   ("admin token", self.server.admin_token)]
        for label, value in secrets:
            self.assertNotIn(value, text, label)
        self.assertNotIn("Signature=", text)
        self.assertNotIn("AWS4-HMAC-SHA256", text)


class AuditRetentionTest(AuditClient, ServerTestCase):
    """Events past the retention are pruned in the background (test clock)."""

    extra_args = ("--clock", "manual", "--clock-start", "2026-11-17T12:00:00Z",
                  "--audit-prune-interval-seconds", "1")

    def refused_call(self):
        """One call (refused: the key is unknown) -> its request id."""
        try:
            self.client(UNKNOWN_KEY).resolve_customer(RegistrationToken="any-token-0000001")
        except ClientError as e:
            return e.response["ResponseMetadata"]["RequestId"]
        raise AssertionError("the unknown key was accepted")

    def await_gone(self, request_id, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if request_id not in {e["requestID"] for e in self.audit_events(limit=1000)}:
                return True
            time.sleep(0.2)
        return False

    def test_events_are_pruned_past_the_retention(self):
        status, stats = self.server.admin("GET", "/v1/audit")
        self.assertEqual(stats["retentionDays"], 90, stats)
        first = self.refused_call()
        self.assertEqual(self.await_events([first]), set())
        self.server.meterctl("clock", "advance", "89d")
        second = self.refused_call()
        self.assertEqual(self.await_events([second]), set())
        time.sleep(2.5)  # two pruning passes: 89 days old is kept
        self.assertEqual(self.await_events([first, second]), set())
        self.server.meterctl("clock", "advance", "2d")
        self.assertTrue(self.await_gone(first), "the 91-day-old event was not pruned")
        self.assertEqual(self.await_events([second]), set())  # 2 days old: kept
        # The retention is a runtime setting.
        self.server.meterctl("settings", "set", "--audit-retention-days", "1")
        self.assertEqual(self.server.admin("GET", "/v1/settings")[1]["auditRetentionDays"], 1)
        self.assertTrue(self.await_gone(second), "the setting did not shorten the retention")
        status, stats = self.server.admin("GET", "/v1/audit")
        self.assertGreaterEqual(stats["pruned"], 2, stats)
        self.assertEqual(stats["lost"], 0, stats)
        self.assertEqual(stats["retentionDays"], 1, stats)
        # The admin changes of this test are recorded (and recent, so kept).
        names = [e["eventName"] for e in self.audit_events(eventSource=ADMIN)]
        self.assertIn("PATCH /v1/settings", names)
        self.assertIn("POST /v1/clock/advance", names)


if __name__ == "__main__":
    unittest.main()
