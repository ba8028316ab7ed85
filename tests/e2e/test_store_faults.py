"""A full disk is an error response, never a silent drop (D16): the data dir lives on a tiny
tmpfs that is then filled up. Needs root (mount); skipped elsewhere with the reason."""
import os
import subprocess
import tempfile
import time
import unittest

from tests.e2e.e2e_support import (
    GLOBEX_CUSTOMER, SAAS, SELLER, Meterd, ServerTestCase, ledger_snapshot, record, sqlite_only)


def can_mount():
    if os.geteuid() != 0:
        return False
    probe = tempfile.mkdtemp(prefix="meterd-mount-probe-")
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", probe], check=True)
    os.rmdir(probe)
    return ok


class SmallDiskServer:
    """Mixin: one meterd whose data dir is on its own 8 MB tmpfs (root only: see can_mount), and
    fill_disk() to take the space away for one test."""

    @classmethod
    def setUpClass(cls):
        cls.mount = tempfile.mkdtemp(prefix="meterd-tmpfs-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", cls.mount], check=True)
        cls.addClassCleanup(os.rmdir, cls.mount)
        cls.addClassCleanup(subprocess.run, ["umount", "-l", cls.mount], check=True)
        cls.data_dir = os.path.join(cls.mount, "data")
        os.makedirs(cls.data_dir)
        cls.server = Meterd(data_dir=cls.data_dir).start()
        cls._clients = {}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def fill_disk(self):
        filler = os.path.join(self.mount, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        self.addCleanup(lambda: os.path.exists(filler) and os.remove(filler))
        return filler


@sqlite_only("the data dir on a full tmpfs is where the SQLite file lives; a PostgreSQL "
             "store writes to its server's disk")
@unittest.skipUnless(can_mount(), "needs root and tmpfs mounts (CI runs as root)")
class FullDiskTests(SmallDiskServer, ServerTestCase):

    def test_full_disk_is_a_retryable_500_and_meterd_recovers_when_space_returns(self):
        now = int(time.time())
        # 12 distinct records: 2 dimensions x the last 6 hours (always inside the window).
        batch = [record(now - 3600 * h, quantity=h + 1, dimension=d, customer=GLOBEX_CUSTOMER)
                 for h in range(6) for d in ("api_calls", "storage_gb")]
        before = ledger_snapshot(self.data_dir)[0]
        filler = self.fill_disk()
        c = self.client(SELLER)  # one attempt: we want to see the error itself
        with self.assertRaises(c.exceptions.InternalServiceErrorException) as cm:
            c.batch_meter_usage(ProductCode=SAAS, UsageRecords=batch)
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.assertTrue(cm.exception.response["ResponseMetadata"]["RequestId"])
        os.remove(filler)
        self.assertEqual(ledger_snapshot(self.data_dir)[0], before)  # nothing half-written
        # Space is back: the same request goes through, with no restart of meterd.
        out = c.batch_meter_usage(ProductCode=SAAS, UsageRecords=batch)
        self.assertEqual({r["Status"] for r in out["Results"]}, {"Success"})
        self.assertEqual(ledger_snapshot(self.data_dir)[0], before + len(batch))
        # And what was acknowledged is on disk: a restart finds it, with the same ids.
        ids = [r["MeteringRecordId"] for r in out["Results"]]
        self.server.stop()
        type(self).server = Meterd(data_dir=self.data_dir).start()
        type(self)._clients = {}
        again = self.client(SELLER).batch_meter_usage(ProductCode=SAAS, UsageRecords=batch)
        self.assertEqual([r["MeteringRecordId"] for r in again["Results"]], ids)


if __name__ == "__main__":
    unittest.main()
