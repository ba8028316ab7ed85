"""The AWS CLI v2 from Debian (/usr/bin/aws, aws-cli/2.9.x) against meterd.

Its model is older: BatchMeterUsage requires ProductCode and CustomerIdentifier and knows no
CustomerAWSAccountId/LicenseArn; MeterUsage has no ClientToken (so it sends none). Only members
that model knows are used here: this is also the "old SDK" compatibility check.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (  # noqa: E402
    AMI, CTR, EC2, ECS, EKS_WEST, HOOLI_CUSTOMER, INITECH_CUSTOMER, INITECH_EC2, OTHER_SAAS, SAAS,
    SELLER, TEMP_EC2, UMBRELLA_CUSTOMER, CliTestCase, cli_record, iso, tags, to_epoch)


class CliV2Tests(CliTestCase):
    cli_major = 2

    # BatchMeterUsage ------------------------------------------------------------------------
    def test_batch_success_echoes_record(self):
        h = self.slots.batch_hour("globex:api_calls")
        rec = cli_record(h + 1234, quantity=3)
        out = self.aws_ok("batch-meter-usage", {"ProductCode": SAAS, "UsageRecords": [rec]})
        self.assertEqual(out.get("UnprocessedRecords"), [], out)
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", out)
        self.assertTrue(res.get("MeteringRecordId"), out)
        self.assertEqual(to_epoch(res["UsageRecord"]["Timestamp"]), h + 1234, res)
        self.assertEqual(res["UsageRecord"]["Quantity"], 3)
        self.assertEqual(res["UsageRecord"]["Dimension"], "api_calls")

    def test_batch_resend_same_id_then_duplicate_record(self):
        h = self.slots.batch_hour("globex:storage_gb")
        params = {"ProductCode": SAAS,
                  "UsageRecords": [cli_record(h + 5, dimension="storage_gb", quantity=4)]}
        first = self.aws_ok("batch-meter-usage", params)["Results"][0]
        self.assertEqual(first["Status"], "Success", first)
        again = self.aws_ok("batch-meter-usage", params)["Results"][0]
        self.assertEqual((again["Status"], again["MeteringRecordId"]),
                         ("Success", first["MeteringRecordId"]))
        changed = {"ProductCode": SAAS,
                   "UsageRecords": [cli_record(h + 6, dimension="storage_gb", quantity=40)]}
        dup = self.aws_ok("batch-meter-usage", changed)["Results"][0]
        self.assertEqual(dup["Status"], "DuplicateRecord", dup)

    def test_batch_per_record_statuses(self):
        h = self.slots.batch_hour("globex:api_calls")
        recs = [cli_record(h + 9, customer=INITECH_CUSTOMER),
                cli_record(h + 9, quantity=2),
                cli_record(h + 9, customer=UMBRELLA_CUSTOMER),
                cli_record(h + 9, customer=HOOLI_CUSTOMER),
                cli_record(h + 9, customer="cust-unknown-0099")]
        out = self.aws_ok("batch-meter-usage", {"ProductCode": SAAS, "UsageRecords": recs})
        status = {r["UsageRecord"]["CustomerIdentifier"]: r["Status"] for r in out["Results"]}
        self.assertEqual(status, {
            INITECH_CUSTOMER: "CustomerNotSubscribed",
            recs[1]["CustomerIdentifier"]: "Success",
            UMBRELLA_CUSTOMER: "Success",
            HOOLI_CUSTOMER: "CustomerNotSubscribed",
            "cust-unknown-0099": "CustomerNotSubscribed",
        })

    def test_batch_usage_allocations(self):
        h = self.slots.batch_hour("globex:api_calls")
        rec = cli_record(h + 10, quantity=6, allocations=[
            {"AllocatedUsageQuantity": 1, "Tags": tags(("team", "blue"), ("env", "prod"))},
            {"AllocatedUsageQuantity": 5}])
        out = self.aws_ok("batch-meter-usage", {"ProductCode": SAAS, "UsageRecords": [rec]})
        self.assertEqual(out["Results"][0]["Status"], "Success", out)
        self.assertEqual(out["Results"][0]["UsageRecord"]["UsageAllocations"],
                         rec["UsageAllocations"])

    def test_batch_errors(self):
        h = self.slots.batch_hour("globex:api_calls")
        now = int(time.time())
        cases = [
            ("InvalidUsageDimensionException", SAAS, [cli_record(h, dimension="nope")]),
            ("InvalidProductCodeException", OTHER_SAAS, [cli_record(h)]),
            ("InvalidProductCodeException", "nosuchproduct", [cli_record(h)]),
            ("InvalidTagException", SAAS, [cli_record(h, allocations=[
                {"AllocatedUsageQuantity": 1, "Tags": tags(("bad{key", "v"))}])]),
            ("InvalidUsageAllocationsException", SAAS, [cli_record(h, quantity=2, allocations=[
                {"AllocatedUsageQuantity": 3}])]),
            ("TimestampOutOfBoundsException", SAAS, [cli_record(h), cli_record(now + 900)]),
        ]
        for code, product, recs in cases:
            with self.subTest(code=code, product=product):
                self.aws_error(code, "batch-meter-usage",
                               {"ProductCode": product, "UsageRecords": recs})
        # None of them stored anything.
        out = self.aws_ok("batch-meter-usage",
                          {"ProductCode": SAAS, "UsageRecords": [cli_record(h, quantity=8)]})
        self.assertEqual(out["Results"][0]["Status"], "Success", out)

    def test_batch_disabled_api_in_region(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("DisabledApiException", "batch-meter-usage",
                       {"ProductCode": SAAS, "UsageRecords": [cli_record(h)]}, region="eu-south-2")

    # MeterUsage (no ClientToken in this model) -----------------------------------------------
    def _mu(self, product, dimension, ts, quantity=1, **extra):
        p = {"ProductCode": product, "UsageDimension": dimension, "Timestamp": iso(ts),
             "UsageQuantity": quantity}
        p.update(extra)
        return p

    def test_meter_without_client_token_dedups_by_hour(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        a = self.aws_ok("meter-usage", self._mu(AMI, "hosts", h + 10, 2), creds=EC2)
        self.assertTrue(a.get("MeteringRecordId"), a)
        b = self.aws_ok("meter-usage", self._mu(AMI, "hosts", h + 10, 2), creds=EC2)
        self.assertEqual(a, b)
        self.aws_error("DuplicateRequestException", "meter-usage",
                       self._mu(AMI, "hosts", h + 11, 5), creds=EC2)

    def test_meter_ecs_and_eks(self):
        h = self.slots.meter_hour("ecs:ctr:nodes")
        out = self.aws_ok("meter-usage", self._mu(CTR, "nodes", h), creds=ECS)
        self.assertTrue(out.get("MeteringRecordId"), out)
        h = self.slots.meter_hour("eks:ctr:nodes")
        self.aws_error("InvalidEndpointRegionException", "meter-usage",
                       self._mu(CTR, "nodes", h), creds=EKS_WEST, region="us-east-1")
        out = self.aws_ok("meter-usage", self._mu(CTR, "nodes", h), creds=EKS_WEST,
                          region="us-west-2")
        self.assertTrue(out.get("MeteringRecordId"), out)

    def test_meter_dry_run(self):
        h = self.slots.meter_hour("ec2:ami:vcpu_hours")
        self.aws_error("DryRunOperation", "meter-usage",
                       self._mu(AMI, "vcpu_hours", h, 1, DryRun=True), creds=EC2)
        self.aws_ok("meter-usage", self._mu(AMI, "vcpu_hours", h, 2), creds=EC2)

    def test_meter_errors(self):
        h = self.slots.meter_hour("errors")
        now = int(time.time())
        cases = [
            ("CustomerNotEntitledException", INITECH_EC2, self._mu(AMI, "hosts", h)),
            ("InvalidProductCodeException", EC2, self._mu(SAAS, "api_calls", h)),
            ("InvalidUsageDimensionException", EC2, self._mu(AMI, "gpus", h)),
            ("TimestampOutOfBoundsException", EC2, self._mu(AMI, "hosts", now + 600)),
            ("AccessDeniedException", SELLER, self._mu(AMI, "hosts", h)),
        ]
        for code, creds, params in cases:
            with self.subTest(code=code):
                self.aws_error(code, "meter-usage", params, creds=creds)

    def test_meter_temporary_credentials(self):
        h = self.slots.meter_hour("temp:ami:hosts")
        out = self.aws_ok("meter-usage", self._mu(AMI, "hosts", h), creds=TEMP_EC2)
        self.assertTrue(out.get("MeteringRecordId"), out)

    # Shorthand arguments instead of --cli-input-json ------------------------------------------
    def test_shorthand_arguments(self):
        h = self.slots.batch_hour("globex:storage_gb")
        out = self.aws_ok("batch-meter-usage", None, extra=[
            "--product-code", SAAS, "--usage-records",
            "Timestamp=%s,CustomerIdentifier=cust-globex-0001,Dimension=storage_gb,Quantity=2"
            % iso(h + 77)])
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", out)
        self.assertEqual(to_epoch(res["UsageRecord"]["Timestamp"]), h + 77)
        m = self.slots.meter_hour("ecs:ctr:invocations")
        args = ["--product-code", CTR, "--usage-dimension", "invocations",
                "--timestamp", iso(m + 5), "--usage-quantity", "3"]
        self.aws_error("DryRunOperation", "meter-usage", None, creds=ECS,
                       extra=args + ["--dry-run"])
        out = self.aws_ok("meter-usage", None, creds=ECS, extra=args)
        self.assertTrue(out.get("MeteringRecordId"), out)

    def test_unrecognized_client(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        self.aws_error("UnrecognizedClientException", "meter-usage", self._mu(AMI, "hosts", h),
                       creds=("AKIANOBODY0000000002", EC2[1]))
        self.aws_error("InvalidSignatureException", "meter-usage", self._mu(AMI, "hosts", h),
                       creds=(EC2[0], "y" * 40))


if __name__ == "__main__":
    import unittest
    unittest.main()
