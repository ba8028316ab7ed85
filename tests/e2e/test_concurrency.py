"""Racing clients: concurrent requests for one dedup key / ClientToken produce exactly one record."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from botocore.exceptions import ClientError  # noqa: E402

from e2e_support import (  # noqa: E402
    AGENTCORE, AMI, CTR, EC2, SAAS, SELLER, ServerTestCase, dt, ledger_snapshot, new_token,
    record)

N = 8


class ConcurrencyTests(ServerTestCase):

    def _race(self, creds, call):
        """Run call(client) in N threads released together; return results or ClientErrors."""
        clients = [self.client(creds, user_agent_extra="racer-%d" % i) for i in range(N)]
        barrier = threading.Barrier(N)
        results = [None] * N

        def run(i):
            barrier.wait()
            try:
                results[i] = call(clients[i], i)
            except ClientError as e:
                results[i] = e
            except Exception as e:  # pragma: no cover - reported by the assertions
                results[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def _rows(self):
        return ledger_snapshot(self.server.data_dir)[0]

    def test_identical_batches_at_once_share_one_record(self):
        before = self._rows()
        h = self.slots.batch_hour("globex:api_calls")
        sent = record(h + 1, quantity=5)
        results = self._race(SELLER, lambda c, i: c.batch_meter_usage(
            ProductCode=SAAS, UsageRecords=[sent]))
        ids = set()
        for r in results:
            self.assertIsInstance(r, dict, r)
            res = r["Results"][0]
            self.assertEqual(res["Status"], "Success", res)
            ids.add(res["MeteringRecordId"])
        self.assertEqual(len(ids), 1, results)
        self.assertEqual(self._rows() - before, 1)

    def test_batches_with_different_quantities_at_once_one_wins(self):
        before = self._rows()
        h = self.slots.batch_hour("globex:storage_gb")
        results = self._race(SELLER, lambda c, i: c.batch_meter_usage(
            ProductCode=SAAS, UsageRecords=[record(h + i, dimension="storage_gb", quantity=i + 1)]))
        statuses = sorted(r["Results"][0]["Status"] for r in results)
        self.assertEqual(statuses, ["DuplicateRecord"] * (N - 1) + ["Success"], results)
        self.assertEqual(self._rows() - before, 1)

    def test_meter_usage_different_quantities_at_once_one_wins(self):
        before = self._rows()
        h = self.slots.meter_hour("ec2:ami:hosts")
        results = self._race(EC2, lambda c, i: c.meter_usage(
            ProductCode=AMI, UsageDimension="hosts", Timestamp=dt(h + i), UsageQuantity=i + 1))
        ok = [r for r in results if isinstance(r, dict)]
        errors = [r for r in results if not isinstance(r, dict)]
        self.assertEqual(len(ok), 1, results)
        for e in errors:
            self.assertIsInstance(e, ClientError, e)
            self.assertEqual(e.response["Error"]["Code"], "DuplicateRequestException")
        self.assertEqual(self._rows() - before, 1)

    def test_same_client_token_at_once_is_one_record(self):
        before = self._rows()
        token = new_token()
        ts = int(time.time()) - 30
        results = self._race(AGENTCORE, lambda c, i: c.meter_usage(
            ProductCode=CTR, UsageDimension="invocations", Timestamp=dt(ts), UsageQuantity=4,
            ClientToken=token))
        ids = set()
        for r in results:
            self.assertIsInstance(r, dict, r)
            ids.add(r["MeteringRecordId"])
        self.assertEqual(len(ids), 1, results)
        self.assertEqual(self._rows() - before, 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
