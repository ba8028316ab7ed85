"""BatchMeterUsage through boto3: every success path, per-record status and modeled error."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (  # noqa: E402
    CA_LICENSE, EC2, EXPIRED_LICENSE, GLOBEX_ACCOUNT, GLOBEX_CUSTOMER, HOOLI_CUSTOMER,
    INITECH_ACCOUNT, INITECH_CUSTOMER, INITECH_LICENSE, OTHER_PRODUCT_LICENSE, OTHER_SAAS,
    OTHER_SELLER, AMI, SAAS, SAAS_CA, SELLER, UMBRELLA_CUSTOMER, UNKNOWN_LICENSE, ServerTestCase,
    dt, find_result, floor_hour, record, tags)


class BatchMeterUsageSuccessTests(ServerTestCase):
    """Success paths and per-record statuses (D2, D5)."""

    def test_success_by_customer_identifier_echoes_record(self):
        h = self.slots.batch_hour("globex:api_calls")
        sent = record(h + 1234, quantity=7)
        out = self.batch([sent])
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", res)
        self.assertTrue(res.get("MeteringRecordId"), res)
        self.assertEcho(res, sent)
        self.assertEqual(res["UsageRecord"]["Timestamp"], dt(h + 1234))

    def test_success_by_customer_aws_account_id_legacy_product(self):
        h = self.slots.batch_hour("globex:storage_gb")
        sent = record(h + 61, dimension="storage_gb", quantity=3, customer=None,
                      account=GLOBEX_ACCOUNT)
        out = self.batch([sent])
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", res)
        self.assertTrue(res.get("MeteringRecordId"), res)
        self.assertEcho(res, sent)
        self.assertNotIn("CustomerIdentifier", {k: v for k, v in res["UsageRecord"].items() if v})

    def test_success_concurrent_agreements_account_and_license_without_product_code(self):
        h = self.slots.batch_hour("globex:ca:seats")
        sent = record(h + 5, dimension="seats", quantity=4, customer=None, account=GLOBEX_ACCOUNT,
                      license_arn=CA_LICENSE)
        out = self.batch([sent], product=None)
        res = out["Results"][0]
        self.assertEqual(res["Status"], "Success", res)
        self.assertTrue(res.get("MeteringRecordId"), res)
        self.assertEcho(res, sent)
        self.assertEqual(res["UsageRecord"]["LicenseArn"], CA_LICENSE)
        self.assertEqual(res["UsageRecord"]["CustomerAWSAccountId"], GLOBEX_ACCOUNT)
        # Idempotent by (account, license, dimension, hour) as well.
        again = self.batch([sent], product=None)["Results"][0]
        self.assertEqual(again["Status"], "Success", again)
        self.assertEqual(again["MeteringRecordId"], res["MeteringRecordId"])

    def test_second_customer_with_own_license_on_concurrent_agreements(self):
        h = self.slots.batch_hour("initech:ca:seats")
        sent = record(h + 5, dimension="seats", quantity=2, customer=None, account=INITECH_ACCOUNT,
                      license_arn=INITECH_LICENSE)
        res = self.batch([sent], product=None)["Results"][0]
        self.assertEqual(res["Status"], "Success", res)

    def test_idempotent_resend_returns_same_metering_record_ids(self):
        h1 = self.slots.batch_hour("globex:api_calls")
        h2 = self.slots.batch_hour("globex:api_calls")
        recs = [record(h1 + 10, quantity=11), record(h2 + 20, quantity=12)]
        first = self.batch(recs)["Results"]
        ids = {}
        for sent in recs:
            r = find_result(first, sent)
            self.assertEqual(r["Status"], "Success", r)
            ids[sent["Timestamp"]] = r["MeteringRecordId"]
        self.assertNotEqual(ids[recs[0]["Timestamp"]], ids[recs[1]["Timestamp"]])
        # Same request again: same ids.
        second = self.batch(recs)["Results"]
        for sent in recs:
            r = find_result(second, sent)
            self.assertEqual(r["Status"], "Success", r)
            self.assertEqual(r["MeteringRecordId"], ids[sent["Timestamp"]])
        # A subset, and another second within the same hour: still the same record.
        subset = [record(h2 + 3000, quantity=12)]
        r = self.batch(subset)["Results"][0]
        self.assertEqual(r["Status"], "Success", r)
        self.assertEqual(r["MeteringRecordId"], ids[recs[1]["Timestamp"]])

    def test_different_quantity_same_hour_is_duplicate_record(self):
        h = self.slots.batch_hour("globex:api_calls")
        first = self.batch([record(h + 100, quantity=5)])["Results"][0]
        self.assertEqual(first["Status"], "Success", first)
        dup = self.batch([record(h + 200, quantity=6)])["Results"][0]
        self.assertEqual(dup["Status"], "DuplicateRecord", dup)
        self.assertIn(dup.get("MeteringRecordId") or None, (None, first["MeteringRecordId"]),
                      "DuplicateRecord must not carry a new id: %r" % dup)
        # The original quantity stays billed: resending it is still Success with the first id.
        again = self.batch([record(h + 100, quantity=5)])["Results"][0]
        self.assertEqual(again["Status"], "Success", again)
        self.assertEqual(again["MeteringRecordId"], first["MeteringRecordId"])

    def test_identifier_and_account_id_of_same_buyer_share_one_dedup_key(self):
        h = self.slots.batch_hour("globex:api_calls")
        by_id = self.batch([record(h + 1, quantity=3)])["Results"][0]
        self.assertEqual(by_id["Status"], "Success", by_id)
        by_acct = self.batch([record(h + 2, quantity=3, customer=None,
                                     account=GLOBEX_ACCOUNT)])["Results"][0]
        self.assertEqual(by_acct["Status"], "Success", by_acct)
        self.assertEqual(by_acct["MeteringRecordId"], by_id["MeteringRecordId"])
        other = self.batch([record(h + 3, quantity=4, customer=None,
                                   account=GLOBEX_ACCOUNT)])["Results"][0]
        self.assertEqual(other["Status"], "DuplicateRecord", other)

    def test_records_in_one_batch_are_applied_in_order(self):
        h = self.slots.batch_hour("globex:storage_gb")
        recs = [record(h + 1, dimension="storage_gb", quantity=1),
                record(h + 2, dimension="storage_gb", quantity=1),
                record(h + 3, dimension="storage_gb", quantity=2)]
        results = self.batch(recs)["Results"]
        r1, r2, r3 = (find_result(results, s) for s in recs)
        self.assertEqual(r1["Status"], "Success", results)
        self.assertEqual(r2["Status"], "Success", results)
        self.assertEqual(r1["MeteringRecordId"], r2["MeteringRecordId"])
        self.assertEqual(r3["Status"], "DuplicateRecord", results)

    def test_region_is_part_of_the_dedup_key(self):
        h = self.slots.batch_hour("globex:api_calls")
        sent = record(h + 9, quantity=2)
        east = self.batch([sent], region="us-east-1")["Results"][0]
        west = self.batch([sent], region="us-west-2")["Results"][0]
        self.assertEqual(east["Status"], "Success", east)
        self.assertEqual(west["Status"], "Success", west)
        self.assertNotEqual(east["MeteringRecordId"], west["MeteringRecordId"])
        # A different quantity in us-west-2 is a duplicate there.
        dup = self.batch([record(h + 9, quantity=3)], region="us-west-2")["Results"][0]
        self.assertEqual(dup["Status"], "DuplicateRecord", dup)

    def test_customer_not_subscribed_mixed_with_success(self):
        h = self.slots.batch_hour("globex:api_calls")
        ok = record(h + 30, quantity=1)
        unsubscribed = record(h + 30, customer=INITECH_CUSTOMER)
        unknown_id = record(h + 30, customer="cust-nobody-9999")
        unknown_acct = record(h + 30, customer=None, account="123456789012")
        unsub_acct = record(h + 30, dimension="storage_gb", customer=None, account=INITECH_ACCOUNT)
        recs = [unsubscribed, ok, unknown_id, unknown_acct, unsub_acct]
        results = self.batch(recs)["Results"]
        r = find_result(results, ok)
        self.assertEqual(r["Status"], "Success", results)
        self.assertTrue(r.get("MeteringRecordId"))
        for sent in (unsubscribed, unknown_id, unknown_acct, unsub_acct):
            r = find_result(results, sent)
            self.assertEqual(r["Status"], "CustomerNotSubscribed", r)
            self.assertFalse(r.get("MeteringRecordId"), r)
            self.assertEcho(r, sent)

    def test_unsubscribe_pending_within_grace_is_success_and_after_grace_not_subscribed(self):
        h = self.slots.batch_hour("pending")
        umbrella = record(h + 40, customer=UMBRELLA_CUSTOMER, quantity=9)
        hooli = record(h + 40, customer=HOOLI_CUSTOMER, quantity=9)
        results = self.batch([umbrella, hooli])["Results"]
        r = find_result(results, umbrella)
        self.assertEqual(r["Status"], "Success", r)
        self.assertTrue(r.get("MeteringRecordId"), r)
        r = find_result(results, hooli)
        self.assertEqual(r["Status"], "CustomerNotSubscribed", r)
        self.assertFalse(r.get("MeteringRecordId"), r)

    def test_usage_allocations_with_tags(self):
        h = self.slots.batch_hour("globex:api_calls")
        allocs = [
            {"AllocatedUsageQuantity": 5, "Tags": tags(("team", "blue"))},
            {"AllocatedUsageQuantity": 3, "Tags": tags(("team", "red"), ("env", "prod"))},
            {"AllocatedUsageQuantity": 0, "Tags": tags(("team", "green"), ("env", "dev"),
                                                      ("cost-center", "cc:42/a@b.c"))},
            {"AllocatedUsageQuantity": 2},
        ]
        sent = record(h + 77, quantity=10, allocations=allocs)
        res = self.batch([sent])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)
        self.assertTrue(res.get("MeteringRecordId"))
        self.assertEcho(res, sent)

    def test_five_tags_in_one_allocation_is_fine(self):
        h = self.slots.batch_hour("globex:storage_gb")
        allocs = [{"AllocatedUsageQuantity": 1,
                   "Tags": tags(("k1", "v"), ("k2", "v"), ("k3", "v"), ("k4", "v"), ("k5", "v"))}]
        res = self.batch([record(h, dimension="storage_gb", quantity=1,
                                 allocations=allocs)])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)

    def test_quantity_omitted_means_zero(self):
        h = self.slots.batch_hour("globex:storage_gb")
        first = self.batch([record(h + 1, dimension="storage_gb", omit_quantity=True)])["Results"][0]
        self.assertEqual(first["Status"], "Success", first)
        zero = self.batch([record(h + 2, dimension="storage_gb", quantity=0)])["Results"][0]
        self.assertEqual(zero["Status"], "Success", zero)
        self.assertEqual(zero["MeteringRecordId"], first["MeteringRecordId"])

    def test_empty_customer_identifier_means_absent(self):
        h = self.slots.batch_hour("globex:api_calls")
        sent = record(h + 8, customer="", account=GLOBEX_ACCOUNT, quantity=1)
        res = self.batch([sent])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)

    def test_empty_usage_record_list(self):
        out = self.client(SELLER).batch_meter_usage(UsageRecords=[], ProductCode=SAAS)
        self.assertRequestId(out)
        self.assertEqual(out.get("Results"), [], out)
        self.assertEqual(out.get("UnprocessedRecords"), [], out)

    def test_twenty_five_records_in_one_batch(self):
        h = self.slots.batch_hour("globex:storage_gb")
        # 25 records of one key (distinct seconds of one hour, same quantity): one record,
        # 25 times Success with the same id.
        recs = [record(h + i, dimension="storage_gb", quantity=3) for i in range(25)]
        results = self.batch(recs)["Results"]
        self.assertEqual(len(results), 25)
        ids = {r["MeteringRecordId"] for r in results if r["Status"] == "Success"}
        self.assertEqual(len(ids), 1, results)
        self.assertTrue(all(r["Status"] == "Success" for r in results), results)


class BatchMeterUsageErrorTests(ServerTestCase):
    """Request-level errors: the whole batch fails and nothing of it is stored."""

    def _assert_not_stored(self, sent, product=SAAS):
        """Sending the record again with another quantity succeeds: nothing was kept."""
        again = dict(sent)
        again["Quantity"] = sent.get("Quantity", 0) + 1000
        res = self.batch([again], product=product)["Results"][0]
        self.assertEqual(res["Status"], "Success", res)

    def test_invalid_product_code_unknown(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("InvalidProductCodeException", [record(h)], product="nosuchproduct")

    def test_invalid_product_code_of_another_seller(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("InvalidProductCodeException", [record(h)], product=OTHER_SAAS)

    def test_invalid_product_code_other_seller_metering_my_product(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("InvalidProductCodeException", [record(h)], product=SAAS,
                              creds=OTHER_SELLER)

    def test_invalid_product_code_not_saas(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("InvalidProductCodeException", [record(h, dimension="hosts")],
                              product=AMI)

    def test_invalid_product_code_license_of_another_sellers_product(self):
        h = self.slots.batch_hour("globex:other:seats")
        self.assertBatchError("InvalidProductCodeException",
                              [record(h, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                                      license_arn=OTHER_PRODUCT_LICENSE)], product=None)

    def test_invalid_usage_dimension_unknown_and_case_sensitive(self):
        h = self.slots.batch_hour("globex:api_calls")
        good = record(h + 1, quantity=1)
        self.assertBatchError("InvalidUsageDimensionException",
                              [good, record(h + 1, dimension="no_such_dimension")])
        self.assertBatchError("InvalidUsageDimensionException",
                              [good, record(h + 1, dimension="API_CALLS")])
        self._assert_not_stored(good)

    def test_invalid_usage_allocations_sum_mismatch(self):
        h = self.slots.batch_hour("globex:api_calls")
        good = record(h + 2, quantity=1)
        bad = record(h + 2, dimension="storage_gb", quantity=10, allocations=[
            {"AllocatedUsageQuantity": 4, "Tags": tags(("team", "a"))},
            {"AllocatedUsageQuantity": 5, "Tags": tags(("team", "b"))}])
        self.assertBatchError("InvalidUsageAllocationsException", [good, bad])
        self._assert_not_stored(good)

    def test_invalid_usage_allocations_same_tags_twice(self):
        h = self.slots.batch_hour("globex:api_calls")
        bad = record(h + 3, quantity=2, allocations=[
            {"AllocatedUsageQuantity": 1, "Tags": tags(("team", "a"), ("env", "x"))},
            {"AllocatedUsageQuantity": 1, "Tags": tags(("team", "a"), ("env", "x"))}])
        self.assertBatchError("InvalidUsageAllocationsException", [bad])

    def test_invalid_usage_allocations_two_untagged_buckets(self):
        h = self.slots.batch_hour("globex:api_calls")
        bad = record(h + 4, quantity=2, allocations=[
            {"AllocatedUsageQuantity": 1}, {"AllocatedUsageQuantity": 1}])
        self.assertBatchError("InvalidUsageAllocationsException", [bad])

    def test_invalid_tag_more_than_five_in_one_allocation(self):
        h = self.slots.batch_hour("globex:api_calls")
        good = record(h + 5, quantity=1)
        bad = record(h + 5, dimension="storage_gb", quantity=1, allocations=[
            {"AllocatedUsageQuantity": 1,
             "Tags": tags(*[("k%d" % i, "v") for i in range(6)])}])
        self.assertBatchError("InvalidTagException", [good, bad])
        self._assert_not_stored(good)

    def test_invalid_tag_more_than_five_keys_across_allocations(self):
        h = self.slots.batch_hour("globex:api_calls")
        bad = record(h + 6, quantity=2, allocations=[
            {"AllocatedUsageQuantity": 1, "Tags": tags(("a", "1"), ("b", "1"), ("c", "1"))},
            {"AllocatedUsageQuantity": 1, "Tags": tags(("d", "1"), ("e", "1"), ("f", "1"))}])
        self.assertBatchError("InvalidTagException", [bad])

    def test_invalid_tag_pattern_and_length(self):
        h = self.slots.batch_hour("globex:api_calls")
        for key, value in (("bad{key", "v"), ("k", "bad~value"), ("x" * 101, "v"),
                           ("k", "y" * 257)):
            with self.subTest(key=key[:10], value=value[:10]):
                bad = record(h + 7, quantity=1, allocations=[
                    {"AllocatedUsageQuantity": 1, "Tags": tags((key, value))}])
                self.assertBatchError("InvalidTagException", [bad])

    def test_invalid_customer_identifier_both_and_neither(self):
        h = self.slots.batch_hour("globex:api_calls")
        good = record(h + 8, quantity=1)
        both = record(h + 8, dimension="storage_gb", customer=GLOBEX_CUSTOMER,
                      account=GLOBEX_ACCOUNT)
        neither = record(h + 8, dimension="storage_gb", customer=None)
        empty = record(h + 8, dimension="storage_gb", customer="")
        for bad in (both, neither, empty):
            with self.subTest(bad=bad):
                self.assertBatchError("InvalidCustomerIdentifierException", [good, bad])
        self._assert_not_stored(good)

    def test_invalid_customer_identifier_on_concurrent_agreements_product(self):
        h = self.slots.batch_hour("globex:ca:seats")
        self.assertBatchError("InvalidCustomerIdentifierException",
                              [record(h, dimension="seats", customer=GLOBEX_CUSTOMER)],
                              product=SAAS_CA)

    def test_invalid_license_missing_on_concurrent_agreements_product(self):
        h = self.slots.batch_hour("globex:ca:seats")
        self.assertBatchError("InvalidLicenseException",
                              [record(h, dimension="seats", customer=None, account=GLOBEX_ACCOUNT)],
                              product=SAAS_CA)

    def test_invalid_license_unknown(self):
        h = self.slots.batch_hour("globex:ca:seats")
        self.assertBatchError("InvalidLicenseException",
                              [record(h, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                                      license_arn=UNKNOWN_LICENSE)], product=None)

    def test_invalid_license_of_another_account(self):
        h = self.slots.batch_hour("globex:ca:seats")
        good = record(h + 1, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                      license_arn=CA_LICENSE)
        bad = record(h + 1, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                     license_arn=INITECH_LICENSE)
        self.assertBatchError("InvalidLicenseException", [good, bad], product=None)
        self._assert_not_stored(good, product=None)

    def test_invalid_license_outside_activation_period(self):
        h = self.slots.batch_hour("globex:ca:seats")
        self.assertBatchError("InvalidLicenseException",
                              [record(h, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                                      license_arn=EXPIRED_LICENSE)], product=None)

    def test_invalid_license_two_products_in_one_batch(self):
        h = self.slots.batch_hour("globex:ca:seats")
        recs = [record(h, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                       license_arn=CA_LICENSE),
                record(h, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                       license_arn=OTHER_PRODUCT_LICENSE)]
        self.assertBatchError("InvalidLicenseException", recs, product=None)

    def test_validation_product_code_with_license_arn(self):
        h = self.slots.batch_hour("globex:ca:seats")
        self.assertBatchError("ValidationException",
                              [record(h, dimension="seats", customer=None, account=GLOBEX_ACCOUNT,
                                      license_arn=CA_LICENSE)], product=SAAS_CA)

    def test_validation_no_product_code_and_no_license(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("ValidationException", [record(h, quantity=1)], product=None)

    def test_validation_more_than_25_records(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("ValidationException",
                              [record(h + i, quantity=1) for i in range(26)])

    def test_timestamp_out_of_bounds_rejects_whole_batch_and_stores_nothing(self):
        h = self.slots.batch_hour("globex:api_calls")
        good = record(h + 9, quantity=1)
        now = int(time.time())
        too_old = record(now - 25 * 3600, dimension="storage_gb")
        self.assertBatchError("TimestampOutOfBoundsException", [good, too_old])
        in_future = record(now + 10 * 60, dimension="storage_gb")
        self.assertBatchError("TimestampOutOfBoundsException", [good, in_future])
        self._assert_not_stored(good)

    def test_timestamp_window_edges(self):
        now = int(time.time())
        # 24 h 10 min ago: rejected.
        self.assertBatchError("TimestampOutOfBoundsException",
                              [record(now - 24 * 3600 - 600, customer=UMBRELLA_CUSTOMER)])
        # 2 min ahead: inside the 5 min tolerance.
        res = self.batch([record(now + 120, customer=UMBRELLA_CUSTOMER,
                                 dimension="storage_gb")])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)
        # 23 h 50 min ago: accepted if still in this month (D1).
        ts = now - 23 * 3600 - 3000
        if dt(ts).month == dt(now).month or dt(now).day == 1 and dt(now).hour < 6:
            res = self.batch([record(ts, customer=UMBRELLA_CUSTOMER)])["Results"][0]
            self.assertEqual(res["Status"], "Success", res)

    def test_disabled_api_in_region(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("DisabledApiException", [record(h)], region="eu-south-2")

    def test_access_denied_for_workload_credentials(self):
        h = self.slots.batch_hour("globex:api_calls")
        self.assertBatchError("AccessDeniedException", [record(h)], creds=EC2)

    def test_request_error_does_not_store_valid_records_of_the_batch(self):
        h = self.slots.batch_hour("globex:storage_gb")
        good = record(h + 11, dimension="storage_gb", quantity=5)
        self.assertBatchError("InvalidUsageDimensionException",
                              [good, record(h + 11, dimension="nope")])
        res = self.batch([record(h + 11, dimension="storage_gb", quantity=6)])["Results"][0]
        self.assertEqual(res["Status"], "Success", res)


if __name__ == "__main__":
    import unittest
    unittest.main()
