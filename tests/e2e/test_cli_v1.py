"""The AWS CLI v1 (aws-cli/1.x, same botocore as boto3, newest model) against meterd."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (  # noqa: E402
    AGENTCORE, AMI, CA_LICENSE, CTR, EC2, ECS, EXAMPLE_CATALOG, GLOBEX_ACCOUNT, INITECH_CUSTOMER,
    INITECH_EC2, INITECH_LICENSE, OTHER_SAAS, SAAS, SELLER, TEMP_EC2, CliTestCase, cli_record,
    iso, new_token, tags, to_epoch)


class CliV1Tests(CliTestCase):
    cli_major = 1

    # BatchMeterUsage ------------------------------------------------------------------------
    def test_batch_success_by_customer_identifier(self):
        h = self.slots.batch_hour("globex:api_calls")
        rec = cli_record(h + 1234, quantity=3)
        out = self.aws_ok("batch-meter-usage", {"ProductCode": SAAS, "UsageRecords": [rec]})
        self.assertEqual(out.get("UnprocessedRecords"), [], out)
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", out)
        self.assertTrue(res.get("MeteringRecordId"), out)
        echo = res["UsageRecord"]
        self.assertEqual(to_epoch(echo["Timestamp"]), h + 1234, echo)
        self.assertEqual(echo["CustomerIdentifier"], rec["CustomerIdentifier"])
        self.assertEqual(echo["Dimension"], "api_calls")
        self.assertEqual(echo["Quantity"], 3)

    def test_batch_success_account_and_license_without_product_code(self):
        h = self.slots.batch_hour("globex:ca:seats")
        rec = cli_record(h + 1, dimension="seats", quantity=2, customer=None,
                         account=GLOBEX_ACCOUNT, license_arn=CA_LICENSE)
        out = self.aws_ok("batch-meter-usage", {"UsageRecords": [rec]})
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", out)
        self.assertEqual(res["UsageRecord"]["LicenseArn"], CA_LICENSE)
        self.assertEqual(res["UsageRecord"]["CustomerAWSAccountId"], GLOBEX_ACCOUNT)

    def test_batch_success_account_id_on_legacy_product(self):
        h = self.slots.batch_hour("globex:storage_gb")
        rec = cli_record(h + 1, dimension="storage_gb", customer=None, account=GLOBEX_ACCOUNT)
        out = self.aws_ok("batch-meter-usage", {"ProductCode": SAAS, "UsageRecords": [rec]})
        self.assertEqual(out["Results"][0]["Status"], "Success", out)

    def test_batch_resend_same_id_then_duplicate_record(self):
        h = self.slots.batch_hour("globex:api_calls")
        params = {"ProductCode": SAAS, "UsageRecords": [cli_record(h + 5, quantity=4)]}
        first = self.aws_ok("batch-meter-usage", params)["Results"][0]
        again = self.aws_ok("batch-meter-usage", params)["Results"][0]
        self.assertEqual(again["Status"], "Success")
        self.assertEqual(again["MeteringRecordId"], first["MeteringRecordId"])
        changed = {"ProductCode": SAAS, "UsageRecords": [cli_record(h + 6, quantity=5)]}
        dup = self.aws_ok("batch-meter-usage", changed)["Results"][0]
        self.assertEqual(dup["Status"], "DuplicateRecord", dup)

    def test_batch_customer_not_subscribed_mixed_with_success(self):
        h = self.slots.batch_hour("globex:storage_gb")
        recs = [cli_record(h + 7, dimension="storage_gb", customer=INITECH_CUSTOMER),
                cli_record(h + 7, dimension="storage_gb")]
        out = self.aws_ok("batch-meter-usage", {"ProductCode": SAAS, "UsageRecords": recs})
        by_cust = {r["UsageRecord"]["CustomerIdentifier"]: r for r in out["Results"]}
        self.assertEqual(by_cust[INITECH_CUSTOMER]["Status"], "CustomerNotSubscribed", out)
        self.assertEqual(by_cust[recs[1]["CustomerIdentifier"]]["Status"], "Success", out)

    def test_batch_usage_allocations(self):
        h = self.slots.batch_hour("globex:api_calls")
        rec = cli_record(h + 8, quantity=6, allocations=[
            {"AllocatedUsageQuantity": 4, "Tags": tags(("team", "blue"))},
            {"AllocatedUsageQuantity": 2}])
        out = self.aws_ok("batch-meter-usage", {"ProductCode": SAAS, "UsageRecords": [rec]})
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", out)
        self.assertEqual(res["UsageRecord"]["UsageAllocations"], rec["UsageAllocations"])

    def test_batch_timestamp_out_of_bounds(self):
        now = int(time.time())
        self.aws_error("TimestampOutOfBoundsException", "batch-meter-usage",
                       {"ProductCode": SAAS, "UsageRecords": [cli_record(now - 25 * 3600)]})

    def test_batch_invalid_product_code_of_another_seller(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("InvalidProductCodeException", "batch-meter-usage",
                       {"ProductCode": OTHER_SAAS, "UsageRecords": [cli_record(h)]})

    def test_batch_invalid_usage_dimension(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("InvalidUsageDimensionException", "batch-meter-usage",
                       {"ProductCode": SAAS, "UsageRecords": [cli_record(h, dimension="Api_Calls")]})

    def test_batch_invalid_customer_identifier_both(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("InvalidCustomerIdentifierException", "batch-meter-usage",
                       {"ProductCode": SAAS,
                        "UsageRecords": [cli_record(h, account=GLOBEX_ACCOUNT)]})

    def test_batch_invalid_license(self):
        h = self.slots.batch_hour("globex:ca:seats")
        self.aws_error("InvalidLicenseException", "batch-meter-usage",
                       {"UsageRecords": [cli_record(h, dimension="seats", customer=None,
                                                    account=GLOBEX_ACCOUNT,
                                                    license_arn=INITECH_LICENSE)]})

    def test_batch_invalid_usage_allocations(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("InvalidUsageAllocationsException", "batch-meter-usage",
                       {"ProductCode": SAAS, "UsageRecords": [cli_record(h, quantity=3, allocations=[
                           {"AllocatedUsageQuantity": 1}])]})

    def test_batch_invalid_tag(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("InvalidTagException", "batch-meter-usage",
                       {"ProductCode": SAAS, "UsageRecords": [cli_record(h, quantity=1, allocations=[
                           {"AllocatedUsageQuantity": 1,
                            "Tags": tags(*[("k%d" % i, "v") for i in range(6)])}])]})

    def test_batch_disabled_api_in_region(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("DisabledApiException", "batch-meter-usage",
                       {"ProductCode": SAAS, "UsageRecords": [cli_record(h)]}, region="eu-south-2")

    def test_batch_access_denied_for_workload(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.aws_error("AccessDeniedException", "batch-meter-usage",
                       {"ProductCode": SAAS, "UsageRecords": [cli_record(h)]}, creds=EC2)

    # MeterUsage -----------------------------------------------------------------------------
    def _mu(self, product, dimension, ts, quantity=1, **extra):
        p = {"ProductCode": product, "UsageDimension": dimension, "Timestamp": iso(ts),
             "UsageQuantity": quantity}
        p.update(extra)
        return p

    def test_meter_ec2_success_and_same_hour_same_id(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        a = self.aws_ok("meter-usage", self._mu(AMI, "hosts", h + 10, 2), creds=EC2)
        self.assertTrue(a.get("MeteringRecordId"), a)
        b = self.aws_ok("meter-usage", self._mu(AMI, "hosts", h + 20, 2), creds=EC2)
        self.assertEqual(a["MeteringRecordId"], b["MeteringRecordId"])
        self.aws_error("DuplicateRequestException", "meter-usage",
                       self._mu(AMI, "hosts", h + 30, 3), creds=EC2)

    def test_meter_ecs_success(self):
        h = self.slots.meter_hour("ecs:ctr:task_hours")
        out = self.aws_ok("meter-usage", self._mu(CTR, "task_hours", h + 10), creds=ECS)
        self.assertTrue(out.get("MeteringRecordId"), out)

    def test_meter_client_token(self):
        h1 = self.slots.meter_hour("ecs:ctr:nodes")
        h2 = self.slots.meter_hour("ecs:ctr:nodes")
        token = new_token()
        a = self.aws_ok("meter-usage", self._mu(CTR, "nodes", h1, ClientToken=token), creds=ECS)
        b = self.aws_ok("meter-usage", self._mu(CTR, "nodes", h1, ClientToken=token), creds=ECS)
        self.assertEqual(a, b)
        self.aws_error("IdempotencyConflictException", "meter-usage",
                       self._mu(CTR, "nodes", h2, ClientToken=token), creds=ECS)

    def test_meter_agentcore_two_tokens_two_records(self):
        ts = int(time.time()) - 60
        a = self.aws_ok("meter-usage", self._mu(CTR, "invocations", ts, 3,
                                                ClientToken=new_token()), creds=AGENTCORE)
        b = self.aws_ok("meter-usage", self._mu(CTR, "invocations", ts, 3,
                                                ClientToken=new_token()), creds=AGENTCORE)
        self.assertNotEqual(a["MeteringRecordId"], b["MeteringRecordId"])

    def test_meter_dry_run(self):
        h = self.slots.meter_hour("ec2:ami:vcpu_hours")
        self.aws_error("DryRunOperation", "meter-usage",
                       self._mu(AMI, "vcpu_hours", h, 1, DryRun=True), creds=EC2)
        # Nothing stored.
        self.aws_ok("meter-usage", self._mu(AMI, "vcpu_hours", h, 2), creds=EC2)

    def test_meter_customer_not_entitled(self):
        h = self.slots.meter_hour("initech:ami:hosts")
        self.aws_error("CustomerNotEntitledException", "meter-usage",
                       self._mu(AMI, "hosts", h), creds=INITECH_EC2)

    def test_meter_invalid_product_code_saas(self):
        h = self.slots.meter_hour("ec2:saas")
        self.aws_error("InvalidProductCodeException", "meter-usage",
                       self._mu(SAAS, "api_calls", h), creds=EC2)

    def test_meter_timestamp_out_of_bounds(self):
        now = int(time.time())
        self.aws_error("TimestampOutOfBoundsException", "meter-usage",
                       self._mu(AMI, "hosts", now - 6 * 3600 - 600), creds=EC2)

    def test_meter_access_denied_for_seller(self):
        h = self.slots.meter_hour("seller")
        self.aws_error("AccessDeniedException", "meter-usage", self._mu(AMI, "hosts", h),
                       creds=SELLER)

    def test_meter_temporary_credentials(self):
        h = self.slots.meter_hour("temp:ami:hosts")
        out = self.aws_ok("meter-usage", self._mu(AMI, "hosts", h), creds=TEMP_EC2)
        self.assertTrue(out.get("MeteringRecordId"), out)
        self.aws_error("UnrecognizedClientException", "meter-usage",
                       self._mu(AMI, "hosts", h), creds=TEMP_EC2, token=False)

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

    # Auth -----------------------------------------------------------------------------------
    def test_invalid_signature_and_unknown_key(self):
        h = self.slots.batch_hour("globex:api_calls")
        params = {"ProductCode": SAAS, "UsageRecords": [cli_record(h)]}
        self.aws_error("InvalidSignatureException", "batch-meter-usage", params,
                       creds=(SELLER[0], "x" * 40))
        self.aws_error("UnrecognizedClientException", "batch-meter-usage", params,
                       creds=("AKIANOBODY0000000001", SELLER[1]))


class ExampleCatalogCliV1Tests(CliTestCase):
    """The server starts with the unmodified example catalog; one BatchMeterUsage succeeds."""

    cli_major = 1
    catalog = EXAMPLE_CATALOG

    def test_batch_meter_usage_with_example_catalog(self):
        h = self.slots.batch_hour("globex:api_calls")
        out = self.aws_ok("batch-meter-usage",
                          {"ProductCode": SAAS, "UsageRecords": [cli_record(h + 42, quantity=1)]})
        self.assertEqual(out["Results"][0]["Status"], "Success", out)
        self.assertTrue(out["Results"][0].get("MeteringRecordId"), out)

    def test_meter_usage_with_example_catalog(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        out = self.aws_ok("meter-usage", {"ProductCode": AMI, "UsageDimension": "hosts",
                                          "Timestamp": iso(h), "UsageQuantity": 1}, creds=EC2)
        self.assertTrue(out.get("MeteringRecordId"), out)


if __name__ == "__main__":
    import unittest
    unittest.main()
