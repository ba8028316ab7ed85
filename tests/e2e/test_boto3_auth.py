"""Authentication (D8) and wire conventions (D15) seen through boto3."""
import datetime
import os
import sys
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import botocore  # noqa: E402
import botocore.auth  # noqa: E402
from botocore.config import Config  # noqa: E402

from e2e_support import (  # noqa: E402
    AMI, CTR, DISABLED, EC2, ECS, EKS_WEST, OTHER_SELLER, SAAS, SELLER, ServerTestCase, dt,
    ledger_snapshot, record)


class AuthTests(ServerTestCase):

    def _batch_kwargs(self):
        h = self.slots.batch_hour("auth:globex:api_calls")
        return {"ProductCode": SAAS, "UsageRecords": [record(h + 1, quantity=1)]}

    def _meter_kwargs(self):
        h = self.slots.meter_hour("auth:ec2:hosts")
        return {"ProductCode": AMI, "UsageDimension": "hosts", "Timestamp": dt(h + 1),
                "UsageQuantity": 1}

    def test_wrong_secret_is_invalid_signature(self):
        c = self.client((SELLER[0], "wrong" + SELLER[1][5:]))
        resp = self.assertClientError("InvalidSignatureException", c.batch_meter_usage, status=403,
                                      **self._batch_kwargs())
        self.assertIn("signature", resp["Error"]["Message"].lower())
        c = self.client((EC2[0], "wrong" + EC2[1][5:]))
        self.assertClientError("InvalidSignatureException", c.meter_usage, status=403,
                               **self._meter_kwargs())

    def test_unknown_access_key_is_unrecognized_client(self):
        c = self.client(("AKIAUNKNOWNKEY000001", SELLER[1]))
        self.assertClientError("UnrecognizedClientException", c.batch_meter_usage, status=403,
                               **self._batch_kwargs())
        c = self.client(("AKIAUNKNOWNKEY000002", EC2[1]))
        self.assertClientError("UnrecognizedClientException", c.meter_usage, status=403,
                               **self._meter_kwargs())

    def test_disabled_access_key_is_unrecognized_client(self):
        self.assertClientError("UnrecognizedClientException", self.client(DISABLED).batch_meter_usage,
                               status=403, **self._batch_kwargs())

    def test_unsigned_request_is_missing_authentication_token(self):
        c = self.client(SELLER, signature_version=botocore.UNSIGNED)
        self.assertClientError("MissingAuthenticationTokenException", c.batch_meter_usage,
                               status=403, **self._batch_kwargs())

    def test_expired_signature(self):
        c = self.client(SELLER)
        past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - \
            datetime.timedelta(minutes=20)
        with mock.patch("botocore.auth.get_current_datetime", return_value=past):
            resp = self.assertClientError("InvalidSignatureException", c.batch_meter_usage,
                                          status=403, **self._batch_kwargs())
        self.assertIn("expired", resp["Error"]["Message"].lower())

    def test_wrong_signing_service_name(self):
        # A fresh client whose signer scopes the credential to another service.
        c = self.client(SELLER, region="us-east-2")
        orig = c._request_signer._signing_name
        try:
            c._request_signer._signing_name = "metering.marketplace"
            resp = self.assertClientError("InvalidSignatureException", c.batch_meter_usage,
                                          status=400, **self._batch_kwargs())
        finally:
            c._request_signer._signing_name = orig
        self.assertIn("aws-marketplace", resp["Error"]["Message"])

    def test_every_response_has_request_id_and_json_content_type(self):
        out = self.client(SELLER).batch_meter_usage(**self._batch_kwargs())
        self.assertRequestId(out)
        headers = {k.lower(): v for k, v in out["ResponseMetadata"]["HTTPHeaders"].items()}
        self.assertEqual(headers.get("content-type"), "application/x-amz-json-1.1")
        rid1 = out["ResponseMetadata"]["RequestId"]
        out = self.client(EC2).meter_usage(**self._meter_kwargs())
        self.assertRequestId(out)
        rid2 = out["ResponseMetadata"]["RequestId"]
        self.assertNotEqual(rid1, rid2)
        # Errors too (RequestId checked by assertClientError).
        resp = self.assertClientError("InvalidProductCodeException",
                                      self.client(SELLER).batch_meter_usage,
                                      ProductCode="nosuchproduct",
                                      UsageRecords=self._batch_kwargs()["UsageRecords"])
        headers = {k.lower(): v for k, v in resp["ResponseMetadata"]["HTTPHeaders"].items()}
        self.assertEqual(headers.get("content-type"), "application/x-amz-json-1.1")
        self.assertTrue(headers.get("x-amzn-requestid"))
        self.assertNotIn(resp["ResponseMetadata"]["RequestId"], (rid1, rid2))
        resp = self.assertClientError("UnrecognizedClientException",
                                      self.client(("AKIAUNKNOWNKEY000003", "x" * 40)).meter_usage,
                                      status=403, **self._meter_kwargs())

    def test_modeled_error_exception_class(self):
        """boto3 maps the __type to the modeled exception class of the client."""
        c = self.client(SELLER)
        with self.assertRaises(c.exceptions.InvalidProductCodeException):
            c.batch_meter_usage(ProductCode="nosuchproduct",
                                UsageRecords=self._batch_kwargs()["UsageRecords"])
        e = self.client(EC2)
        with self.assertRaises(e.exceptions.TimestampOutOfBoundsException):
            e.meter_usage(ProductCode=AMI, UsageDimension="hosts",
                          Timestamp=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))


class ThrottlingTests(ServerTestCase):
    """D14, with the server's default rates. Buckets refill with the business clock: a frozen
    test clock makes the burst exact whatever the machine's speed."""

    extra_args = ("--clock", "manual")
    throttle = True

    def test_throttling_per_account_region_and_operation(self):
        """MeterUsage 10/s with bursts of 20 per (account, region): a tight loop of 60 calls
        from one buyer is throttled (400 ThrottlingException); another operation and another
        region have their own buckets; a throttled call stores nothing."""
        c = self.client(EC2)  # one attempt: we want to see the throttles
        h = self.slots.meter_hour("throttle:ec2:hosts")
        before = ledger_snapshot(self.server.data_dir)[0]
        outcomes = []
        for _ in range(60):
            try:
                c.meter_usage(ProductCode=AMI, UsageDimension="hosts", Timestamp=dt(h),
                              UsageQuantity=1)
                outcomes.append(200)
            except botocore.exceptions.ClientError as e:
                self.assertEqual(e.response["Error"]["Code"], "ThrottlingException")
                self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
                outcomes.append(400)
        self.assertEqual(outcomes, [200] * 20 + [400] * 40)
        self.assertEqual(ledger_snapshot(self.server.data_dir)[0] - before, 1)  # one hour
        # The same buyer account's other workload shares the (account, region) bucket...
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            self.client(ECS).meter_usage(ProductCode=CTR, UsageDimension="nodes", Timestamp=dt(h))
        self.assertEqual(cm.exception.response["Error"]["Code"], "ThrottlingException")
        # ...but not the seller's BatchMeterUsage, nor another region.
        self.client(SELLER).batch_meter_usage(ProductCode=SAAS, UsageRecords=[])
        self.client(EKS_WEST, region="us-west-2").meter_usage(
            ProductCode=CTR, UsageDimension="nodes", Timestamp=dt(h), UsageQuantity=1)



class SdkBackOffTests(ServerTestCase):
    """A real clock and a low rate (5/s, bucket of 5): faster than that, boto3's own retry logic
    (standard mode) is what gets every call through."""

    extra_args = ("--throttle-batch-meter-usage", "5", "--throttle-burst-seconds", "1")
    throttle = True

    def test_sdk_backs_off_and_succeeds(self):
        c = self.client(OTHER_SELLER, max_attempts=10)
        retried = 0
        for _ in range(12):
            r = c.batch_meter_usage(ProductCode="othersaas01", UsageRecords=[])
            retried += r["ResponseMetadata"].get("RetryAttempts", 0)
        self.assertGreater(retried, 0)


class RetryTests(ServerTestCase):
    """Errors that are not retryable come back on the first attempt even with retries on."""

    def test_client_errors_are_not_retried(self):
        c = self.client(EC2, max_attempts=3)
        h = self.slots.meter_hour("retry:ec2:hosts")
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            c.meter_usage(ProductCode=AMI, UsageDimension="nope", Timestamp=dt(h))
        md = cm.exception.response["ResponseMetadata"]
        self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidUsageDimensionException")
        self.assertEqual(md.get("RetryAttempts", 0), 0, md)
        self.assertIsNotNone(Config)


if __name__ == "__main__":
    unittest.main()
