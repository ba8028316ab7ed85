"""Acceptance tests of the test clock and of fault injection (docs/CONTROL-PLANE.md "Test clock",
"Fault injection"), through real boto3 clients:

(a) on `--clock manual`, a registration token resolves until `meterctl clock advance` moves the
    business clock past its TTL, then ResolveCustomer answers ExpiredTokenException; the clock
    only moves forward, and on the system clock the clock cannot be moved at all;
(b) injected faults exercise boto3's own retry logic: throttles that botocore's standard retry
    mode gets through (the ledger holds every record once), internal errors that exhaust it,
    unprocessed records that a resend stores, latency, per-caller rules, and seeded repeatable
    sequences. Outcomes are checked against the counts of GET /v1/faults, never assumed."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (ServerTestCase,   # noqa: E402
    GLOBEX_ACCOUNT, GLOBEX_CUSTOMER, OTHER_SAAS, OTHER_SELLER, SAAS, SELLER, iso, query_store)
from meterd_harness import METERCTL  # noqa: E402
from test_admin_api import (AdminMixin, T0_ISO, boto_client, parse_time,   # noqa: E402
                            rec)

from botocore.exceptions import ClientError  # noqa: E402

SAAS_ANSWER = {"CustomerIdentifier": GLOBEX_CUSTOMER, "ProductCode": SAAS,
               "CustomerAWSAccountId": GLOBEX_ACCOUNT}
OTHER_SELLER_ACCOUNT = "222233334444"

# A seed under which the rule {"throttleRate": 0.5} throttles the first matched call and lets
# the second through (found by trying seeds; the test checks it through the rule's counts).
RETRY_SEED = 11


def require_meterctl():
    if not os.access(METERCTL, os.X_OK):
        raise AssertionError("meterctl binary not built: %s (cmake --build build)" % METERCTL)


# =============================================================================================
class ManualClockTokenTests(AdminMixin, ServerTestCase):
    """A registration token on a frozen business clock, moved by meterctl."""

    extra_args = ("--clock", "manual", "--clock-start", T0_ISO)

    @classmethod
    def setUpClass(cls):
        require_meterctl()
        super().setUpClass()

    def test_token_expires_when_the_clock_moves_past_its_ttl(self):
        self.assertEqual(self.api("GET", "/v1/settings", status=200)["tokenTtlHours"], 4)
        p = self.server.meterctl("tokens", "issue", "--product", SAAS, "--account",
                                 GLOBEX_ACCOUNT)
        token = p.stdout.strip()
        issued_at = self.clock_now()
        self.assertEqual(self.resolve(token), SAAS_ANSWER)

        # The real clock does not matter: the business clock is frozen until moved.
        time.sleep(1.1)
        self.assertEqual(self.clock_now(), issued_at)

        self.server.meterctl("clock", "advance", "3h59m")
        self.assertEqual(self.clock_now(), issued_at + 4 * 3600 - 60)
        self.assertEqual(self.resolve(token), SAAS_ANSWER)
        listed = {t["token"]: t for t in self.api("GET", "/v1/registration-tokens")}
        self.assertIs(listed[token]["expired"], False, listed[token])

        self.server.meterctl("clock", "advance", "2m")
        self.assertEqual(self.clock_now(), issued_at + 4 * 3600 + 60)
        resp = self.assertBotoError("ExpiredTokenException", self.boto().resolve_customer,
                                    status=400, RegistrationToken=token)
        self.assertTrue(resp["Error"].get("Message"), resp)
        listed = {t["token"]: t for t in self.api("GET", "/v1/registration-tokens")}
        self.assertIs(listed[token]["expired"], True, listed[token])
        # Still expired later; a token issued now resolves.
        self.server.meterctl("clock", "advance", "1d")
        self.assertBotoError("ExpiredTokenException", self.boto().resolve_customer,
                             RegistrationToken=token)
        fresh = self.issue_token()["token"]
        self.assertEqual(self.resolve(fresh), SAAS_ANSWER)

    def test_clock_only_moves_forward(self):
        now = self.clock_now()
        js = self.api_error("PUT", "/v1/clock", {"now": iso(now - 1)}, status=409,
                            code="Conflict")
        self.assertIn("forward", js["message"])
        self.api_error("PUT", "/v1/clock", {"now": "2020-01-01T00:00:00Z"}, status=409,
                       code="Conflict")
        self.assertEqual(self.clock_now(), now)
        st, js = self.server.admin("POST", "/v1/clock/advance", {"seconds": -60})
        self.assertIn(st, (400, 409), js)
        self.assertEqual(self.clock_now(), now)
        p = self.server.meterctl("clock", "set", iso(now - 3600), check=False)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertEqual(self.clock_now(), now)

        got = self.api("PUT", "/v1/clock", {"now": iso(now + 600)}, status=200)
        self.assertEqual(got["mode"], "manual")
        self.assertEqual(parse_time(got["now"]), now + 600)
        got = self.api("POST", "/v1/clock/advance", {"seconds": 60}, status=200)
        self.assertEqual(parse_time(got["now"]), now + 660)
        self.assertEqual(parse_time(self.api("GET", "/v1/status")["clock"]["now"]), now + 660)


class SystemClockTests(AdminMixin, ServerTestCase):
    """On the system clock the clock cannot be moved: 409 Conflict."""

    @classmethod
    def setUpClass(cls):
        require_meterctl()
        super().setUpClass()

    def test_clock_routes_are_conflict(self):
        before = time.time()
        clock = self.api("GET", "/v1/clock", status=200)
        self.assertEqual(clock["mode"], "system", clock)
        self.assertLess(abs(parse_time(clock["now"]) - before), 60, clock)
        with self.assertNothingChanged():
            self.api_error("PUT", "/v1/clock", {"now": "2099-01-01T00:00:00Z"}, status=409,
                           code="Conflict")
            self.api_error("POST", "/v1/clock/advance", {"seconds": 3600}, status=409,
                           code="Conflict")
            p = self.server.meterctl("clock", "advance", "4h", check=False)
            self.assertEqual(p.returncode, 4, p.stderr)
        self.assertLess(abs(parse_time(self.api("GET", "/v1/clock")["now"]) - time.time()), 60)


# =============================================================================================
class FaultInjectionTests(AdminMixin, ServerTestCase):
    """Fault rules against real boto3 clients. Every test uses its own buyer account, so the
    ledger rows of a test are exactly those of its customer."""

    def setUp(self):
        self.api("DELETE", "/v1/faults", status=200)
        self.addCleanup(self.server.admin, "DELETE", "/v1/faults")

    # helpers ------------------------------------------------------------------------------
    def buyer(self, product=SAAS):
        account, customer = self.new_buyer("fault buyer")
        self.api("POST", "/v1/subscriptions", {"account": account, "product": product},
                 status=201)
        return customer

    def records(self, customer, n=3):
        base = int(time.time()) // 3600 * 3600 - 3600
        return [rec(base - 3600 * i, customer, "api_calls", i + 1) for i in range(n)]

    def stored(self, customer):
        """(dimension, timestamp seconds, quantity) of the ledger rows of `customer`."""
        rows = query_store(self.server.data_dir,
                           "SELECT dimension, timestamp_ms, quantity FROM usage_records "
                           "WHERE customer_identifier = ? ORDER BY timestamp_ms", [customer])
        return [(d, ts // 1000, q) for d, ts, q in rows]

    def expected_rows(self, records):
        return sorted(((r["Dimension"], int(r["Timestamp"].timestamp()), r["Quantity"])
                       for r in records), key=lambda row: row[1])

    def set_rule(self, **rule):
        return self.api("POST", "/v1/faults", rule, status=200)["rules"]

    def rule_counts(self, operation, caller=None):
        for r in self.api("GET", "/v1/faults", status=200)["rules"]:
            if r["operation"] == operation and (r.get("caller") or None) == caller:
                return r["counts"]
        raise AssertionError("no rule for %s/%s" % (operation, caller))

    # tests --------------------------------------------------------------------------------
    def test_boto3_standard_retries_get_through_injected_throttles(self):
        customer = self.buyer()
        records = self.records(customer, 3)
        self.set_rule(operation="BatchMeterUsage", throttleRate=0.5, seed=RETRY_SEED)
        client = boto_client(self.server.endpoint, SELLER, max_attempts=10)
        out = client.batch_meter_usage(ProductCode=SAAS, UsageRecords=records)
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success"] * 3, out)
        self.assertEqual(out["UnprocessedRecords"], [], out)
        retries = out["ResponseMetadata"]["RetryAttempts"]
        self.assertGreaterEqual(retries, 1, "no retry: the seed throttled nothing")
        counts = self.rule_counts("BatchMeterUsage")
        self.assertGreaterEqual(counts["throttled"], 1, counts)
        self.assertEqual(counts["throttled"], retries, counts)
        self.assertEqual(counts["calls"], retries + 1, counts)
        self.assertEqual(counts["internalErrors"], 0, counts)
        self.assertEqual(counts["unprocessedRecords"], 0, counts)
        # Every record stored exactly once, although the request was sent retries + 1 times.
        self.assertEqual(self.stored(customer), self.expected_rows(records))

    def test_internal_errors_exhaust_boto3_retries_and_store_nothing(self):
        customer = self.buyer()
        records = self.records(customer, 2)
        self.set_rule(operation="BatchMeterUsage", internalErrorRate=1, seed=1)
        client = boto_client(self.server.endpoint, SELLER, max_attempts=2)
        resp = self.assertBotoError("InternalServiceErrorException", client.batch_meter_usage,
                                    status=500, ProductCode=SAAS, UsageRecords=records)
        attempts = resp["ResponseMetadata"].get("RetryAttempts", 0) + 1
        self.assertGreaterEqual(attempts, 2, resp["ResponseMetadata"])
        counts = self.rule_counts("BatchMeterUsage")
        self.assertEqual(counts["internalErrors"], attempts, counts)
        self.assertEqual(counts["calls"], attempts, counts)
        self.assertEqual(counts["throttled"], 0, counts)
        self.assertEqual(self.stored(customer), [])

    def test_unprocessed_records_are_not_stored_until_resent(self):
        customer = self.buyer()
        records = self.records(customer, 3)
        self.set_rule(operation="BatchMeterUsage", unprocessedRate=1, seed=3)
        out = self.boto(attempts=1).batch_meter_usage(ProductCode=SAAS, UsageRecords=records)
        self.assertEqual(out["Results"], [], out)
        unprocessed = out["UnprocessedRecords"]
        self.assertEqual(len(unprocessed), 3, out)
        self.assertEqual(sorted((u["Timestamp"], u["Quantity"]) for u in unprocessed),
                         sorted((r["Timestamp"], r["Quantity"]) for r in records))
        self.assertTrue(all(u["CustomerIdentifier"] == customer and
                            u["Dimension"] == "api_calls" for u in unprocessed), unprocessed)
        counts = self.rule_counts("BatchMeterUsage")
        self.assertEqual((counts["calls"], counts["unprocessedRecords"]), (1, 3), counts)
        self.assertEqual(self.stored(customer), [])

        self.api("DELETE", "/v1/faults", status=200)
        out = self.boto(attempts=1).batch_meter_usage(ProductCode=SAAS,
                                                      UsageRecords=unprocessed)
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success"] * 3, out)
        self.assertEqual(out["UnprocessedRecords"], [], out)
        self.assertEqual(self.stored(customer), self.expected_rows(records))

    def test_latency_delays_the_answer(self):
        customer = self.buyer()
        self.set_rule(operation="BatchMeterUsage", latencyMs=300, seed=4)
        client = self.boto(attempts=1)
        start = time.monotonic()
        out = client.batch_meter_usage(ProductCode=SAAS, UsageRecords=self.records(customer, 1))
        elapsed = time.monotonic() - start
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success"], out)
        self.assertGreaterEqual(elapsed, 0.3, "answered after %.3f s" % elapsed)
        counts = self.rule_counts("BatchMeterUsage")
        self.assertEqual((counts["calls"], counts["delayed"]), (1, 1), counts)
        # Another operation has no rule: not delayed, not counted.
        self.assertEqual(self.resolve(self.issue_token()["token"]), SAAS_ANSWER)
        self.assertEqual(self.rule_counts("BatchMeterUsage")["calls"], 1)

    def test_a_rule_for_one_caller_does_not_affect_another(self):
        acme_customer = self.buyer(SAAS)
        other_customer = self.buyer(OTHER_SAAS)
        self.set_rule(operation="BatchMeterUsage", caller=SELLER[0], throttleRate=1, seed=5)
        self.assertBotoError("ThrottlingException", self.boto(SELLER, attempts=1).batch_meter_usage,
                             status=400, ProductCode=SAAS,
                             UsageRecords=self.records(acme_customer, 1))
        out = self.boto(OTHER_SELLER, attempts=1).batch_meter_usage(
            ProductCode=OTHER_SAAS, UsageRecords=self.records(other_customer, 1))
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success"], out)
        counts = self.rule_counts("BatchMeterUsage", SELLER[0])
        self.assertEqual((counts["calls"], counts["throttled"]), (1, 1), counts)
        self.assertEqual(self.stored(acme_customer), [])
        self.assertEqual(len(self.stored(other_customer)), 1)

        # A rule for an account id matches that account's keys only.
        self.api("DELETE", "/v1/faults", status=200)
        self.set_rule(operation="BatchMeterUsage", caller=OTHER_SELLER_ACCOUNT, throttleRate=1)
        self.assertBotoError("ThrottlingException",
                             self.boto(OTHER_SELLER, attempts=1).batch_meter_usage,
                             ProductCode=OTHER_SAAS,
                             UsageRecords=self.records(other_customer, 2)[1:])
        out = self.boto(SELLER, attempts=1).batch_meter_usage(
            ProductCode=SAAS, UsageRecords=self.records(acme_customer, 1))
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success"], out)

        # A rule for a caller wins over the rule for everyone.
        self.api("DELETE", "/v1/faults", status=200)
        self.set_rule(operation="BatchMeterUsage", throttleRate=1)
        self.set_rule(operation="BatchMeterUsage", caller=SELLER[0], throttleRate=0)
        out = self.boto(SELLER, attempts=1).batch_meter_usage(
            ProductCode=SAAS, UsageRecords=self.records(acme_customer, 2)[1:])
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success"], out)
        self.assertBotoError("ThrottlingException",
                             self.boto(OTHER_SELLER, attempts=1).batch_meter_usage,
                             ProductCode=OTHER_SAAS,
                             UsageRecords=self.records(other_customer, 2)[1:])
        self.assertEqual(self.rule_counts("BatchMeterUsage", SELLER[0])["calls"], 1)
        self.assertEqual(self.rule_counts("BatchMeterUsage")["throttled"], 1)

    def test_same_seed_gives_the_same_sequence(self):
        customer = self.buyer()
        records = [rec(r["Timestamp"].timestamp(), customer, dim, 1)
                   for r in self.records(customer, 2) for dim in ("api_calls", "storage_gb")]
        rule = {"operation": "BatchMeterUsage", "throttleRate": 0.3, "internalErrorRate": 0.2,
                "unprocessedRate": 0.5, "seed": 42}
        client = self.boto(attempts=1)

        def run():
            self.set_rule(**rule)   # replaces the rule: its generator restarts from the seed
            outcomes = []
            for _ in range(12):
                try:
                    out = client.batch_meter_usage(ProductCode=SAAS, UsageRecords=records)
                except ClientError as e:
                    outcomes.append(e.response["Error"]["Code"])
                    continue
                outcomes.append(tuple(sorted((u["Dimension"], u["Timestamp"].isoformat())
                                             for u in out["UnprocessedRecords"])))
            return outcomes, self.rule_counts("BatchMeterUsage")

        first, first_counts = run()
        second, second_counts = run()
        self.assertEqual(second, first)
        self.assertEqual(second_counts, first_counts)
        kinds = {o if isinstance(o, str) else "ok" for o in first}
        self.assertEqual(kinds, {"ThrottlingException", "InternalServiceErrorException", "ok"},
                         first)
        self.assertEqual(first_counts["calls"], 12, first_counts)
        self.assertEqual(first_counts["throttled"], first.count("ThrottlingException"))
        self.assertEqual(first_counts["internalErrors"],
                         first.count("InternalServiceErrorException"))
        self.assertEqual(first_counts["unprocessedRecords"],
                         sum(len(o) for o in first if not isinstance(o, str)))
        # A different seed gives a different sequence (for these two seeds).
        rule["seed"] = 43
        third, _ = run()
        self.assertNotEqual(third, first)


if __name__ == "__main__":
    unittest.main()
