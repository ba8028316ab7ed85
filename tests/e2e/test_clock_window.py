"""D1 windows at a frozen business clock (`--clock manual --clock-start ...`).

The SigV4 skew check keeps using the real clock, so real clients sign as usual.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (  # noqa: E402
    AMI, CA_LICENSE, EC2, GLOBEX_ACCOUNT, SAAS, ServerTestCase, parse_iso, record)


class MonthEndGraceAt0300Tests(ServerTestCase):
    """Business clock 2026-12-01T03:00:00Z: inside the month-end grace (until 06:00)."""

    extra_args = ("--clock", "manual", "--clock-start", "2026-12-01T03:00:00Z")

    def test_previous_month_record_within_24h_is_accepted(self):
        sent = record(parse_iso("2026-11-30T23:00:00Z"), quantity=3)
        res = self.batch([sent])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)
        self.assertEcho(res, sent)

    def test_previous_month_record_25h_old_is_rejected(self):
        self.assertBatchError("TimestampOutOfBoundsException",
                              [record(parse_iso("2026-11-30T02:00:00Z"), dimension="storage_gb")])

    def test_current_month_record_is_accepted(self):
        res = self.batch([record(parse_iso("2026-12-01T02:59:00Z"), dimension="storage_gb",
                                 quantity=1)])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)

    def test_concurrent_agreements_record_in_grace(self):
        res = self.batch([record(parse_iso("2026-11-30T22:00:00Z"), dimension="seats",
                                 customer=None, account=GLOBEX_ACCOUNT, license_arn=CA_LICENSE,
                                 quantity=2)], product=None)["Results"][0]
        self.assertEqual(res["Status"], "Success", res)

    def test_future_beyond_tolerance_is_rejected(self):
        self.assertBatchError("TimestampOutOfBoundsException",
                              [record(parse_iso("2026-12-01T03:10:00Z"))])
        self.assertMeterError("TimestampOutOfBoundsException", EC2, AMI, "hosts",
                              ts=parse_iso("2026-12-01T03:10:00Z"))

    def test_meter_usage_window_follows_the_business_clock(self):
        # 5 h 50 min before the business clock: accepted, even though the real clock is far away.
        self.meter(EC2, AMI, "hosts", ts=parse_iso("2026-11-30T21:10:00Z"), quantity=1)
        # 6 h 10 min before: rejected. MeterUsage has no month-end rule; 6 h is the limit.
        self.assertMeterError("TimestampOutOfBoundsException", EC2, AMI, "vcpu_hours",
                              ts=parse_iso("2026-11-30T20:50:00Z"))
        # 1 h 30 min before, across the month boundary: accepted.
        self.meter(EC2, AMI, "vcpu_hours", ts=parse_iso("2026-12-01T01:30:00Z"), quantity=1)


class MonthEndGraceOverTests(ServerTestCase):
    """Business clock 2026-12-01T07:00:00Z: the grace period is over."""

    extra_args = ("--clock", "manual", "--clock-start", "2026-12-01T07:00:00Z")

    def test_previous_month_record_is_rejected_after_grace(self):
        self.assertBatchError("TimestampOutOfBoundsException",
                              [record(parse_iso("2026-11-30T23:00:00Z"))])

    def test_one_previous_month_record_rejects_whole_batch(self):
        good = record(parse_iso("2026-12-01T00:30:00Z"), quantity=1)
        self.assertBatchError("TimestampOutOfBoundsException",
                              [good, record(parse_iso("2026-11-30T23:59:59Z"),
                                            dimension="storage_gb")])
        # Nothing stored: another quantity for the good record's hour is accepted.
        res = self.batch([record(parse_iso("2026-12-01T00:31:00Z"), quantity=2)])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)

    def test_current_month_records_are_accepted(self):
        for ts in ("2026-12-01T00:00:00Z", "2026-12-01T06:59:59Z"):
            with self.subTest(ts=ts):
                res = self.batch([record(parse_iso(ts), dimension="storage_gb",
                                         quantity=1)])["Results"][0]
                self.assertEqual(res["Status"], "Success", res)

    def test_previous_month_noon_is_rejected_after_grace(self):
        self.assertBatchError("TimestampOutOfBoundsException",
                              [record(parse_iso("2026-11-30T12:00:00Z"))], product=SAAS)


if __name__ == "__main__":
    import unittest
    unittest.main()
