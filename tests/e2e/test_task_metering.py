"""Container task metering (D11, docs/BEHAVIOUR-DECISIONS.md "Container task metering"): the
first successful RegisterUsage of a (workload, product) opens a run at the business clock; a
catalog `stoppedAt` closes it when meterd loads the catalog; the run becomes `task_hours` ledger
rows (source `RegisterUsage`), one per UTC hour, in seconds (60 s minimum); ended hours are
written by a background pass (every second in these tests) while the run is open; nothing is billed twice across
restarts.

Every test owns a data dir and runs meterd with a frozen business clock (`--clock manual
--clock-start`), restarting it to move the clock. SigV4 keeps using the real clock. The ledger
(table `usage_records` of the store: `DATA/meterd.db`, or the data dir's PostgreSQL database) is
only read, never written.
"""
import base64
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (OwnDataDirTestCase, POSTGRESQL, query_store,   # noqa: E402
    CTR, ECS, TEST_CATALOG, Meterd, ServerTestCase, iso, require_binary)
from meterd_harness import ECS_TASK, FARGATE, FARGATE_TASK  # noqa: E402

EKS_POD = "eks-pod-globex-west-0001"
PASS_SECONDS = 1         # --task-metering-interval-seconds for these servers
POLL_SECONDS = 10        # generous for a pass every second
SETTLE_SECONDS = 3       # > two background passes: long enough for a duplicate to show up
HOUR = 3600


def jwt_payload(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _query(path, sql):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def ledger_rows(data_dir):
    """All usage_records rows as dicts (by hour, then MeteringRecordId), read-only."""
    sql = ("SELECT source, dimension, quantity, usage_hour_ms, product_code, workload_id, region "
           "FROM usage_records ORDER BY usage_hour_ms, record_id")
    if POSTGRESQL or os.path.isdir(os.path.join(data_dir, "ledger")):
        rows = query_store(data_dir, sql)  # the server created the schema when it first started
    else:
        path = os.path.join(data_dir, "meterd.db")
        if not os.path.exists(path):
            return []
        try:
            rows = _query(path, sql)
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            rows = query_store(data_dir, sql)  # locked: read a private copy instead
    keys = ("source", "dimension", "quantity", "usage_hour_ms", "product_code", "workload_id",
            "region")
    return [dict(zip(keys, r)) for r in rows]


def task_rows(data_dir):
    return [r for r in ledger_rows(data_dir) if r["source"] == "RegisterUsage"]


class TaskMeteringTests(OwnDataDirTestCase):
    """Each test restarts meterd on its own data dir."""

    data_dir_prefix = "meterd-e2e-tasks-"

    def setUp(self):
        super().setUp()
        # Midnight UTC two days ago: recent, yet every hour used below has ended in real time.
        self.day = (int(time.time()) // 86400) * 86400 - 2 * 86400
        self.srv = None
        self.catalogs = 0

    # servers and catalogs -------------------------------------------------------------------
    def start_at(self, epoch, catalog=TEST_CATALOG):
        if self.srv is not None:
            self.srv.stop()
        srv = Meterd(catalog=catalog, data_dir=self.data_dir,
                     extra_args=["--clock", "manual", "--clock-start", iso(epoch),
                                 "--task-metering-interval-seconds", str(PASS_SECONDS)])
        srv.start()
        self.addCleanup(srv.stop)
        self.srv = srv
        type(self).server = srv
        type(self)._clients = {}
        return srv

    def catalog_with_stops(self, stops):
        """A copy of the test catalog where each workload id in `stops` has that stoppedAt."""
        with open(TEST_CATALOG) as f:
            cat = json.load(f)
        found = set()
        for w in cat["workloads"]:
            if w["id"] in stops:
                w["stoppedAt"] = iso(stops[w["id"]])
                found.add(w["id"])
        self.assertEqual(found, set(stops), "workloads missing from the test catalog")
        self.catalogs += 1
        path = os.path.join(self.work_dir, "catalog-%d.json" % self.catalogs)
        with open(path, "w") as f:
            json.dump(cat, f, indent=1)
        return path

    def register(self, creds=ECS, version=1, nonce=None, region="us-east-1"):
        kw = {"ProductCode": CTR, "PublicKeyVersion": version}
        if nonce is not None:
            kw["Nonce"] = nonce
        # Retries only on throttling/transient errors (D14), never on a business error.
        out = self.client(creds, region, max_attempts=5).register_usage(**kw)
        self.assertTrue(out.get("Signature"), out)
        return jwt_payload(out["Signature"])

    # ledger ---------------------------------------------------------------------------------
    def wait_for_task_rows(self, count, timeout=POLL_SECONDS):
        deadline = time.time() + timeout
        rows = task_rows(self.data_dir)
        while len(rows) < count and time.time() < deadline:
            time.sleep(0.5)
            rows = task_rows(self.data_dir)
        return rows

    def assertTaskRows(self, rows, expected, workload=ECS_TASK):
        """expected: [(hour start epoch, seconds)] in hour order."""
        got = sorted((r["usage_hour_ms"], r["quantity"]) for r in rows)
        self.assertEqual(got, [(h * 1000, q) for h, q in expected],
                         "RegisterUsage rows: %r" % rows)
        for r in rows:
            self.assertEqual(r["source"], "RegisterUsage", r)
            self.assertEqual(r["dimension"], "task_hours", r)
            self.assertEqual(r["product_code"], CTR, r)
            self.assertEqual(r["workload_id"], workload, r)

    # tests ----------------------------------------------------------------------------------
    def test_short_run_bills_the_60_second_minimum(self):
        t0 = self.day + 8 * HOUR + 5 * 60            # 08:05:00
        self.start_at(t0)
        payload = self.register(ECS, nonce="short-run")
        self.assertEqual(payload["iat"], t0, "iat must be the business clock")
        self.register(FARGATE)                        # stays open, never stopped here
        self.assertEqual(task_rows(self.data_dir), [])

        # The ECS task stopped after 30 s; an EKS pod that never registered stopped as well.
        catalog = self.catalog_with_stops({ECS_TASK: t0 + 30, EKS_POD: t0})
        self.start_at(t0 + 60, catalog)
        rows = self.wait_for_task_rows(1)
        self.assertTaskRows(rows, [(self.day + 8 * HOUR, 60)])

        # One more background pass, then a restart: still exactly that row.
        time.sleep(SETTLE_SECONDS)
        self.assertTaskRows(task_rows(self.data_dir), [(self.day + 8 * HOUR, 60)])
        self.start_at(t0 + 120, catalog)
        time.sleep(SETTLE_SECONDS)
        self.assertTaskRows(task_rows(self.data_dir), [(self.day + 8 * HOUR, 60)])
        # The Fargate run is still open and its hour has not ended: nothing billed for it.
        self.assertFalse([r for r in ledger_rows(self.data_dir)
                          if r["workload_id"] == FARGATE_TASK], ledger_rows(self.data_dir))

    def test_run_of_two_and_a_half_hours_is_split_by_utc_hour(self):
        t0 = self.day + 10 * HOUR + 20 * 60          # 10:20:00
        self.start_at(t0)
        self.assertEqual(self.register(ECS, nonce="long-run")["iat"], t0)
        # A later RegisterUsage of the same task does not open another run.
        self.start_at(t0 + 10 * 60)
        self.assertEqual(self.register(ECS, version=3)["iat"], t0 + 10 * 60)
        self.assertEqual(task_rows(self.data_dir), [])

        stop = self.day + 12 * HOUR + 50 * 60        # 12:50:00
        self.start_at(self.day + 13 * HOUR, self.catalog_with_stops({ECS_TASK: stop}))
        rows = self.wait_for_task_rows(3)
        self.assertTaskRows(rows, [(self.day + 10 * HOUR, 2400),
                                   (self.day + 11 * HOUR, 3600),
                                   (self.day + 12 * HOUR, 3000)])
        self.assertEqual(sum(r["quantity"] for r in rows), 9000)   # 2.5 h in seconds
        time.sleep(SETTLE_SECONDS)
        self.assertEqual(len(task_rows(self.data_dir)), 3, task_rows(self.data_dir))

    def test_open_run_bills_ended_hours_and_a_restart_does_not_bill_twice(self):
        t0 = self.day + 10 * HOUR + 20 * 60          # 10:20:00
        self.start_at(t0)
        self.register(ECS, nonce="middle-restart")

        # Restart at 11:30 with the task still running: hour 10:00 has ended and is billed by
        # the background pass; hour 11:00 has not.
        self.start_at(self.day + 11 * HOUR + 30 * 60)
        rows = self.wait_for_task_rows(1)
        self.assertTaskRows(rows, [(self.day + 10 * HOUR, 2400)])
        time.sleep(SETTLE_SECONDS)
        self.assertTaskRows(task_rows(self.data_dir), [(self.day + 10 * HOUR, 2400)])

        # The task stopped at 12:50; restart at 13:00.
        stop = self.day + 12 * HOUR + 50 * 60
        self.start_at(self.day + 13 * HOUR, self.catalog_with_stops({ECS_TASK: stop}))
        rows = self.wait_for_task_rows(3)
        expected = [(self.day + 10 * HOUR, 2400), (self.day + 11 * HOUR, 3600),
                    (self.day + 12 * HOUR, 3000)]
        self.assertTaskRows(rows, expected)
        time.sleep(SETTLE_SECONDS)
        self.assertTaskRows(task_rows(self.data_dir), expected)
        # And once more after another restart.
        self.start_at(self.day + 13 * HOUR + 60, self.catalog_with_stops({ECS_TASK: stop}))
        time.sleep(SETTLE_SECONDS)
        self.assertTaskRows(task_rows(self.data_dir), expected)

    def test_ended_hours_are_billed_after_a_sigkill(self):
        t0 = self.day + 16 * HOUR + 45 * 60          # 16:45:00
        self.start_at(t0)
        self.register(ECS)
        self.start_at(self.day + 17 * HOUR + 15 * 60)   # 17:15, still running
        rows = self.wait_for_task_rows(1)
        self.assertTaskRows(rows, [(self.day + 16 * HOUR, 900)])
        self.srv.kill()
        self.srv = None
        stop = self.day + 17 * HOUR + 20 * 60
        self.start_at(self.day + 17 * HOUR + 30 * 60, self.catalog_with_stops({ECS_TASK: stop}))
        rows = self.wait_for_task_rows(2)
        self.assertTaskRows(rows, [(self.day + 16 * HOUR, 900), (self.day + 17 * HOUR, 1200)])
        time.sleep(SETTLE_SECONDS)
        self.assertEqual(len(task_rows(self.data_dir)), 2, task_rows(self.data_dir))

    def test_the_minimum_is_per_run_not_per_hour(self):
        # 14:59:30 .. 15:00:45 is a 75 s run: 30 s in hour 14, 45 s in hour 15, no padding.
        t0 = self.day + 14 * HOUR + 59 * 60 + 30
        self.start_at(t0)
        self.register(ECS)
        stop = self.day + 15 * HOUR + 45
        self.start_at(self.day + 15 * HOUR + 5 * 60, self.catalog_with_stops({ECS_TASK: stop}))
        rows = self.wait_for_task_rows(2)
        self.assertTaskRows(rows, [(self.day + 14 * HOUR, 30), (self.day + 15 * HOUR, 45)])

    def test_two_tasks_are_billed_separately(self):
        t0 = self.day + 20 * HOUR + 10 * 60          # 20:10:00
        self.start_at(t0)
        self.register(ECS)
        self.start_at(t0 + 20 * 60)                  # 20:30
        self.register(FARGATE)
        catalog = self.catalog_with_stops({ECS_TASK: t0 + 30 * 60,          # 20:40 -> 1800 s
                                           FARGATE_TASK: t0 + 80 * 60})     # 21:30 -> 1800+1800
        self.start_at(self.day + 22 * HOUR, catalog)
        rows = self.wait_for_task_rows(3)
        self.assertTaskRows([r for r in rows if r["workload_id"] == ECS_TASK],
                            [(self.day + 20 * HOUR, 1800)])
        self.assertTaskRows([r for r in rows if r["workload_id"] == FARGATE_TASK],
                            [(self.day + 20 * HOUR, 1800), (self.day + 21 * HOUR, 1800)],
                            workload=FARGATE_TASK)
        self.assertEqual(len(rows), 3, rows)


if __name__ == "__main__":
    import unittest
    unittest.main()
