"""MeterUsage through boto3: success from each workload kind, dedup (D3), ClientToken (D4),
DryRun (D13), windows (D1), regions (D9) and every modeled error."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (  # noqa: E402
    AGENTCORE, AMI, CTR, EC2, ECS, EKS_WEST, INITECH_EC2, SAAS, SELLER, TEMP_EC2,
    ServerTestCase, new_token, tags)


class MeterUsageSuccessTests(ServerTestCase):

    def test_success_from_ec2_instance(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        rid = self.meter(EC2, AMI, "hosts", ts=h + 600, quantity=2)
        self.assertIsInstance(rid, str)

    def test_success_from_ecs_task(self):
        h = self.slots.meter_hour("ecs:ctr:task_hours")
        self.meter(ECS, CTR, "task_hours", ts=h + 10, quantity=1)

    def test_success_from_eks_pod_in_its_region(self):
        h = self.slots.meter_hour("eks:ctr:nodes")
        self.meter(EKS_WEST, CTR, "nodes", ts=h + 10, quantity=3, region="us-west-2")

    def test_invalid_endpoint_region_for_eks_pod_signing_for_another_region(self):
        h = self.slots.meter_hour("eks:ctr:task_hours")
        self.assertMeterError("InvalidEndpointRegionException", EKS_WEST, CTR, "task_hours",
                              ts=h + 10, region="us-east-1")
        # The same call in the pod's region is fine (nothing was stored by the failure).
        self.meter(EKS_WEST, CTR, "task_hours", ts=h + 10, quantity=5, region="us-west-2")

    def test_success_with_usage_allocations(self):
        h = self.slots.meter_hour("ec2:ami:vcpu_hours")
        self.meter(EC2, AMI, "vcpu_hours", ts=h + 5, quantity=8, UsageAllocations=[
            {"AllocatedUsageQuantity": 6, "Tags": tags(("team", "blue"), ("env", "prod"))},
            {"AllocatedUsageQuantity": 2}])

    def test_quantity_omitted_means_zero(self):
        h = self.slots.meter_hour("ecs:ctr:nodes")
        rid = self.meter(ECS, CTR, "nodes", ts=h + 1, quantity=None)
        self.assertEqual(self.meter(ECS, CTR, "nodes", ts=h + 2, quantity=0), rid)

    def test_temporary_credentials_with_session_token(self):
        h = self.slots.meter_hour("temp:ami:hosts")
        self.meter(TEMP_EC2, AMI, "hosts", ts=h + 1, quantity=1)

    def test_temporary_credentials_without_session_token_are_unrecognized(self):
        h = self.slots.meter_hour("temp:ami:vcpu_hours")
        self.assertMeterError("UnrecognizedClientException", TEMP_EC2, AMI, "vcpu_hours",
                              ts=h + 1, token=False, status=403)

    def test_temporary_credentials_with_wrong_session_token_are_unrecognized(self):
        h = self.slots.meter_hour("temp:ami:vcpu_hours")
        self.assertMeterError("UnrecognizedClientException", TEMP_EC2, AMI, "vcpu_hours",
                              ts=h + 1, token="FwoGZXIvYXdzEGlobexSessionTokenXXXX", status=403)

    def test_session_token_for_long_term_key_is_unrecognized(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        self.assertMeterError("UnrecognizedClientException", EC2, AMI, "hosts", ts=h + 1,
                              token="FwoGZXIvYXdzEGlobexSessionToken0001", status=403)

    def test_window_edges(self):
        now = int(time.time())
        # 5 h 50 min ago: accepted (hour not used by any other test of this class).
        self.meter(ECS, CTR, "invocations", ts=now - 5 * 3600 - 50 * 60, quantity=1)
        # 6 h 10 min ago and 10 min ahead: rejected.
        self.assertMeterError("TimestampOutOfBoundsException", ECS, CTR, "invocations",
                              ts=now - 6 * 3600 - 10 * 60)
        self.assertMeterError("TimestampOutOfBoundsException", ECS, CTR, "invocations",
                              ts=now + 10 * 60)
        # 2 min ahead: inside the 5 min tolerance.
        self.meter(ECS, CTR, "task_hours", ts=now + 120, quantity=1)


class MeterUsageIdempotencyTests(ServerTestCase):

    def test_same_hour_same_quantity_returns_same_id(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        first = self.meter(EC2, AMI, "hosts", ts=h + 60, quantity=4)
        # Another second of the same hour, a new (auto-generated) ClientToken: same record.
        again = self.meter(EC2, AMI, "hosts", ts=h + 3000, quantity=4)
        self.assertEqual(first, again)

    def test_same_hour_different_quantity_is_duplicate_request(self):
        h = self.slots.meter_hour("ec2:ami:vcpu_hours")
        first = self.meter(EC2, AMI, "vcpu_hours", ts=h + 60, quantity=4)
        self.assertMeterError("DuplicateRequestException", EC2, AMI, "vcpu_hours", ts=h + 61,
                              quantity=5)
        # The original is still there.
        self.assertEqual(self.meter(EC2, AMI, "vcpu_hours", ts=h + 62, quantity=4), first)

    def test_hours_and_workloads_are_distinct_keys(self):
        h1 = self.slots.meter_hour("ecs:ctr:task_hours")
        h2 = self.slots.meter_hour("ecs:ctr:task_hours")
        a = self.meter(ECS, CTR, "task_hours", ts=h1 + 1, quantity=1)
        b = self.meter(ECS, CTR, "task_hours", ts=h2 + 1, quantity=2)
        self.assertNotEqual(a, b)
        # Another EC2 instance of the same buyer, same product/dimension/hour: its own record.
        h = self.slots.meter_hour("ec2:ami:hosts")
        self.slots.used.setdefault("temp:ami:hosts", set()).add(h)
        x = self.meter(EC2, AMI, "hosts", ts=h + 1, quantity=1)
        y = self.meter(TEMP_EC2, AMI, "hosts", ts=h + 1, quantity=7)
        self.assertNotEqual(x, y)

    def test_client_token_same_parameters_returns_same_id(self):
        h = self.slots.meter_hour("ecs:ctr:nodes")
        token = new_token()
        first = self.meter(ECS, CTR, "nodes", ts=h + 5, quantity=3, ClientToken=token)
        again = self.meter(ECS, CTR, "nodes", ts=h + 5, quantity=3, ClientToken=token)
        self.assertEqual(first, again)

    def test_client_token_reused_with_other_parameters_is_409(self):
        h1 = self.slots.meter_hour("ecs:ctr:invocations")
        h2 = self.slots.meter_hour("ecs:ctr:invocations")
        token = new_token()
        self.meter(ECS, CTR, "invocations", ts=h1 + 5, quantity=3, ClientToken=token)
        self.assertMeterError("IdempotencyConflictException", ECS, CTR, "invocations",
                              ts=h2 + 5, quantity=3, ClientToken=token, status=409)
        # Nothing was stored for hour 2 by the conflicting call.
        self.meter(ECS, CTR, "invocations", ts=h2 + 5, quantity=9)

    def test_agentcore_distinct_client_tokens_in_same_hour_are_distinct_records(self):
        ts = int(time.time()) - 120
        t1, t2 = new_token(), new_token()
        a = self.meter(AGENTCORE, CTR, "invocations", ts=ts, quantity=5, ClientToken=t1)
        b = self.meter(AGENTCORE, CTR, "invocations", ts=ts, quantity=7, ClientToken=t2)
        self.assertNotEqual(a, b)
        # Same token again: the first answer.
        self.assertEqual(self.meter(AGENTCORE, CTR, "invocations", ts=ts, quantity=5,
                                    ClientToken=t1), a)
        # Same token, other parameters: 409.
        self.assertMeterError("IdempotencyConflictException", AGENTCORE, CTR, "invocations",
                              ts=ts, quantity=6, ClientToken=t1, status=409)
        # Same quantity and timestamp with a third token: a third record.
        c = self.meter(AGENTCORE, CTR, "invocations", ts=ts, quantity=5, ClientToken=new_token())
        self.assertNotIn(c, (a, b))

    def test_dry_run_is_412_and_stores_nothing(self):
        h = self.slots.meter_hour("ec2:ami:hosts")
        self.assertMeterError("DryRunOperation", EC2, AMI, "hosts", ts=h + 1, quantity=1,
                              DryRun=True, status=412)
        # Nothing stored: another quantity in that hour is accepted.
        rid = self.meter(EC2, AMI, "hosts", ts=h + 2, quantity=2)
        # Dry run of a call that would succeed (same quantity) -> 412 again, nothing new.
        self.assertMeterError("DryRunOperation", EC2, AMI, "hosts", ts=h + 3, quantity=2,
                              DryRun=True, status=412)
        # Dry run of a call that would fail -> that error.
        self.assertMeterError("DuplicateRequestException", EC2, AMI, "hosts", ts=h + 4,
                              quantity=3, DryRun=True)
        self.assertMeterError("InvalidUsageDimensionException", EC2, AMI, "no_such_dim",
                              ts=h + 4, quantity=3, DryRun=True)
        self.assertMeterError("CustomerNotEntitledException", INITECH_EC2, AMI, "hosts",
                              ts=h + 4, quantity=3, DryRun=True)
        self.assertEqual(self.meter(EC2, AMI, "hosts", ts=h + 5, quantity=2), rid)

    def test_dry_run_with_client_token_is_not_remembered(self):
        h = self.slots.meter_hour("ec2:ami:vcpu_hours")
        token = new_token()
        self.assertMeterError("DryRunOperation", EC2, AMI, "vcpu_hours", ts=h + 1, quantity=1,
                              DryRun=True, ClientToken=token, status=412)
        # The token was not consumed by the dry run: a real call with other params succeeds.
        rid = self.meter(EC2, AMI, "vcpu_hours", ts=h + 1, quantity=2, ClientToken=token)
        # DryRun is not part of the fingerprint: same params + DryRun -> would succeed -> 412.
        self.assertMeterError("DryRunOperation", EC2, AMI, "vcpu_hours", ts=h + 1, quantity=2,
                              DryRun=True, ClientToken=token, status=412)
        # Same token, other params (another hour), dry run -> the conflict the real call gets.
        h2 = self.slots.meter_hour("ec2:ami:vcpu_hours")
        self.assertMeterError("IdempotencyConflictException", EC2, AMI, "vcpu_hours", ts=h2 + 1,
                              quantity=2, DryRun=True, ClientToken=token, status=409)
        self.assertEqual(self.meter(EC2, AMI, "vcpu_hours", ts=h + 1, quantity=2,
                                    ClientToken=token), rid)


class MeterUsageErrorTests(ServerTestCase):

    def test_customer_not_entitled_unsubscribed(self):
        h = self.slots.meter_hour("initech:ami:hosts")
        self.assertMeterError("CustomerNotEntitledException", INITECH_EC2, AMI, "hosts", ts=h)

    def test_customer_not_entitled_never_subscribed(self):
        h = self.slots.meter_hour("initech:ctr:nodes")
        self.assertMeterError("CustomerNotEntitledException", INITECH_EC2, CTR, "nodes", ts=h)

    def test_invalid_product_code_saas_product(self):
        h = self.slots.meter_hour("ec2:saas")
        self.assertMeterError("InvalidProductCodeException", EC2, SAAS, "api_calls", ts=h)

    def test_invalid_product_code_unknown(self):
        h = self.slots.meter_hour("ec2:unknown")
        self.assertMeterError("InvalidProductCodeException", EC2, "nosuchproduct", "hosts", ts=h)

    def test_invalid_usage_dimension(self):
        h = self.slots.meter_hour("err:dimension")
        self.assertMeterError("InvalidUsageDimensionException", EC2, AMI, "no_such_dim", ts=h)
        self.assertMeterError("InvalidUsageDimensionException", EC2, AMI, "HOSTS", ts=h)

    def test_invalid_usage_allocations(self):
        h = self.slots.meter_hour("ec2:ami:vcpu_hours")
        self.assertMeterError("InvalidUsageAllocationsException", EC2, AMI, "vcpu_hours", ts=h,
                              quantity=10, UsageAllocations=[
                                  {"AllocatedUsageQuantity": 3, "Tags": tags(("a", "1"))},
                                  {"AllocatedUsageQuantity": 3, "Tags": tags(("a", "2"))}])
        self.assertMeterError("InvalidUsageAllocationsException", EC2, AMI, "vcpu_hours", ts=h,
                              quantity=2, UsageAllocations=[
                                  {"AllocatedUsageQuantity": 1, "Tags": tags(("a", "1"))},
                                  {"AllocatedUsageQuantity": 1, "Tags": tags(("a", "1"))}])
        # Nothing stored by the failures.
        self.meter(EC2, AMI, "vcpu_hours", ts=h, quantity=77)

    def test_invalid_tag(self):
        h = self.slots.meter_hour("err:tag")
        self.assertMeterError("InvalidTagException", EC2, AMI, "hosts", ts=h, quantity=1,
                              UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": tags(
                                  *[("k%d" % i, "v") for i in range(6)])}])
        self.assertMeterError("InvalidTagException", EC2, AMI, "hosts", ts=h, quantity=1,
                              UsageAllocations=[{"AllocatedUsageQuantity": 1,
                                                 "Tags": tags(("bad{key", "v"))}])

    def test_timestamp_out_of_bounds(self):
        now = int(time.time())
        self.assertMeterError("TimestampOutOfBoundsException", EC2, AMI, "hosts",
                              ts=now - 6 * 3600 - 600)
        self.assertMeterError("TimestampOutOfBoundsException", EC2, AMI, "hosts", ts=now + 600)
        self.assertMeterError("TimestampOutOfBoundsException", EC2, AMI, "hosts",
                              ts=now - 30 * 86400)

    def test_access_denied_for_seller(self):
        h = self.slots.meter_hour("seller")
        self.assertMeterError("AccessDeniedException", SELLER, AMI, "hosts", ts=h)

    def test_disabled_api_in_region(self):
        h = self.slots.meter_hour("err:disabled")
        self.assertMeterError("DisabledApiException", EC2, AMI, "hosts", ts=h,
                              region="ap-east-1")

    def test_invalid_endpoint_region_for_ec2_instance(self):
        h = self.slots.meter_hour("err:region")
        self.assertMeterError("InvalidEndpointRegionException", EC2, AMI, "hosts", ts=h,
                              region="eu-west-1")

    def test_validation_client_token_too_long(self):
        h = self.slots.meter_hour("err:validation")
        self.assertMeterError("ValidationException", EC2, AMI, "hosts", ts=h,
                              ClientToken="x" * 65)


if __name__ == "__main__":
    import unittest
    unittest.main()
