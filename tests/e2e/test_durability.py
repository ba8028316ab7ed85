"""D16: what meterd acknowledged survives a restart (SIGTERM) and a crash (SIGKILL), and the
dedup state (BatchMeterUsage keys, MeterUsage hourly keys, ClientTokens) survives with it."""
import os
import shutil
import signal
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (OwnDataDirTestCase,   # noqa: E402
    AMI, CA_LICENSE, CTR, EC2, ECS, GLOBEX_ACCOUNT, SAAS, SELLER, UMBRELLA_CUSTOMER, Meterd,
    ServerTestCase, Slots, find_result, ledger_snapshot, new_token, record, require_binary)


class _RestartBase(OwnDataDirTestCase):
    """Each test runs its own servers on a data dir it owns."""

    data_dir_prefix = "meterd-e2e-durable-"

    def start_server(self):
        srv = Meterd(data_dir=self.data_dir)
        srv.start()
        self.addCleanup(srv.stop)
        type(self).server = srv
        type(self)._clients = {}
        return srv


class RestartTests(_RestartBase):

    def test_sigterm_restart_keeps_records_and_dedup(self):
        srv = self.start_server()
        h1 = self.slots.batch_hour("globex:api_calls")
        h2 = self.slots.batch_hour("globex:api_calls")
        hca = self.slots.batch_hour("globex:ca:seats")
        legacy = [record(h1 + 1, quantity=5), record(h2 + 2, dimension="storage_gb", quantity=6)]
        ca = [record(hca + 3, dimension="seats", quantity=7, customer=None, account=GLOBEX_ACCOUNT,
                     license_arn=CA_LICENSE)]
        out = self.batch(legacy)["Results"]
        ids = {}
        for sent in legacy:
            r = find_result(out, sent)
            self.assertEqual(r["Status"], "Success", r)
            ids[id(sent)] = r["MeteringRecordId"]
        r = self.batch(ca, product=None)["Results"][0]
        self.assertEqual(r["Status"], "Success", r)
        ids[id(ca[0])] = r["MeteringRecordId"]
        mh = self.slots.meter_hour("ec2:ami:hosts")
        mid = self.meter(EC2, AMI, "hosts", ts=mh + 5, quantity=3)
        th1 = self.slots.meter_hour("ecs:ctr:nodes")
        th2 = self.slots.meter_hour("ecs:ctr:nodes")
        token = new_token()
        tid = self.meter(ECS, CTR, "nodes", ts=th1 + 5, quantity=2, ClientToken=token)

        proc = srv.proc
        srv.stop(signal.SIGTERM)
        self.assertNotEqual(proc.returncode, -signal.SIGKILL,
                            "meterd did not exit within 10 s of SIGTERM")

        self.start_server()
        out = self.batch(legacy)["Results"]
        for sent in legacy:
            r = find_result(out, sent)
            self.assertEqual(r["Status"], "Success", r)
            self.assertEqual(r["MeteringRecordId"], ids[id(sent)])
        r = self.batch(ca, product=None)["Results"][0]
        self.assertEqual((r["Status"], r.get("MeteringRecordId")), ("Success", ids[id(ca[0])]))
        changed = [record(h1 + 100, quantity=50)]
        r = self.batch(changed)["Results"][0]
        self.assertEqual(r["Status"], "DuplicateRecord", r)
        changed_ca = [record(hca + 3, dimension="seats", quantity=70, customer=None,
                             account=GLOBEX_ACCOUNT, license_arn=CA_LICENSE)]
        r = self.batch(changed_ca, product=None)["Results"][0]
        self.assertEqual(r["Status"], "DuplicateRecord", r)
        # MeterUsage hourly key.
        self.assertEqual(self.meter(EC2, AMI, "hosts", ts=mh + 50, quantity=3), mid)
        self.assertMeterError("DuplicateRequestException", EC2, AMI, "hosts", ts=mh + 60,
                              quantity=4)
        # ClientToken.
        self.assertEqual(self.meter(ECS, CTR, "nodes", ts=th1 + 5, quantity=2, ClientToken=token),
                         tid)
        self.assertMeterError("IdempotencyConflictException", ECS, CTR, "nodes", ts=th2 + 5,
                              quantity=2, ClientToken=token, status=409)


class CrashTests(_RestartBase):

    REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1")

    def test_sigkill_right_after_acknowledged_responses_loses_nothing(self):
        srv = self.start_server()
        hours = []
        for _ in range(5):
            hours.append(self.slots.batch_hour("globex:all"))
        # Per region (a distinct dedup space, D2): 5 batches x 4 records.
        plans = {}
        for region in self.REGIONS:
            batches = []
            for h in hours:
                batches.append([
                    record(h + 1, dimension="api_calls", quantity=1),
                    record(h + 2, dimension="storage_gb", quantity=2),
                    record(h + 3, dimension="api_calls", quantity=3, customer=UMBRELLA_CUSTOMER),
                    record(h + 4, dimension="storage_gb", quantity=2, customer=None,
                           account=GLOBEX_ACCOUNT),
                ])
                # The 4th record is Globex by account id = same key as the 2nd (D2 maps the
                # identifier to the account): Success with the same id.
            plans[region] = batches
        clients = {r: self.client(SELLER, region=r) for r in self.REGIONS}
        acked = {}
        errors = []
        lock = threading.Lock()

        def worker(region):
            try:
                for b, recs in enumerate(plans[region]):
                    out = clients[region].batch_meter_usage(ProductCode=SAAS, UsageRecords=recs)
                    with lock:
                        for i, sent in enumerate(recs):
                            acked[(region, b, i)] = find_result(out["Results"], sent)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        meter_acked = {}

        def meter_worker():
            try:
                for dim in ("hosts", "vcpu_hours"):
                    for _ in range(4):
                        h = self.slots.meter_hour("ec2:ami:" + dim)
                        meter_acked[(dim, h)] = self.client(EC2).meter_usage(
                            ProductCode=AMI, UsageDimension=dim,
                            Timestamp=record(h)["Timestamp"], UsageQuantity=1,
                        )["MeteringRecordId"]
            except Exception as e:  # pragma: no cover
                errors.append(e)

        self.client(EC2)  # create in this thread
        threads = [threading.Thread(target=worker, args=(r,)) for r in self.REGIONS]
        threads.append(threading.Thread(target=meter_worker))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        srv.kill()
        self.assertEqual(errors, [])

        success_ids = set()
        for key, r in acked.items():
            self.assertEqual(r["Status"], "Success", (key, r))
            success_ids.add(r["MeteringRecordId"])
        # 3 distinct keys per batch (the 4th is the 2nd by account id), 5 hours, 4 regions.
        self.assertEqual(len(success_ids), 3 * 5 * len(self.REGIONS))
        for (region, b, i), r in acked.items():
            if i == 3:
                self.assertEqual(r["MeteringRecordId"], acked[(region, b, 1)]["MeteringRecordId"])
        all_ids = success_ids | set(meter_acked.values())
        self.assertEqual(len(all_ids), len(success_ids) + 8)

        count, columns = ledger_snapshot(self.data_dir)
        self.assertEqual(count, len(all_ids),
                         "usage_records rows after SIGKILL vs acknowledged records")
        holders = [c for c, vals in columns.items() if all_ids <= {str(v) for v in vals}]
        self.assertTrue(holders, "no usage_records column holds all acknowledged MeteringRecordIds")

        # Dedup still holds after the crash.
        self.start_server()
        for region in self.REGIONS:
            for b, recs in enumerate(plans[region]):
                out = self.client(SELLER, region=region).batch_meter_usage(ProductCode=SAAS,
                                                                           UsageRecords=recs)
                for i, sent in enumerate(recs):
                    r = find_result(out["Results"], sent)
                    self.assertEqual(r["Status"], "Success", r)
                    self.assertEqual(r["MeteringRecordId"], acked[(region, b, i)]["MeteringRecordId"])
            changed = [dict(plans[region][0][0], Quantity=999)]
            r = self.client(SELLER, region=region).batch_meter_usage(
                ProductCode=SAAS, UsageRecords=changed)["Results"][0]
            self.assertEqual(r["Status"], "DuplicateRecord", r)
        for (dim, h), rid in meter_acked.items():
            self.assertEqual(self.meter(EC2, AMI, dim, ts=h + 30, quantity=1), rid)
            self.assertMeterError("DuplicateRequestException", EC2, AMI, dim, ts=h + 31,
                                  quantity=2)
        self.assertEqual(ledger_snapshot(self.data_dir)[0], len(all_ids))


if __name__ == "__main__":
    import unittest
    unittest.main()
