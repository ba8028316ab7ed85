"""D16 under fire: meterd is SIGKILLed 20 times at random moments while 4 clients meter and
retry, and restarted on the same data dir each time. Every acknowledged record is in the ledger
exactly once with its acknowledged id, nothing unsent is there, retries get the idempotent
answer, and the store passes its integrity check (after every kill and at the end): SQLite's
PRAGMA integrity_check, or on PostgreSQL ($METERD_STORE_BACKEND=postgresql: only meterd is killed,
the PostgreSQL server keeps running) amcheck of every index and table.

The bounded smoke form of tests/reliability/kill_test.py (about 30-60 s); the full form is
scripts/kill-test.sh. Reproduce a failure with METERD_KILL_SEED=<seed from the summary line>.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reliability"))

from e2e_support import require_binary  # noqa: E402

import kill_test  # noqa: E402


class KillDurabilityTests(unittest.TestCase):

    KILLS = 20
    CLIENTS = 4
    DEADLINE = 240  # seconds: a hard bound, far above the usual run

    def setUp(self):
        require_binary()

    def test_random_sigkills_under_load_lose_and_duplicate_nothing(self):
        seed = os.environ.get("METERD_KILL_SEED")
        lines = []
        run = kill_test.KillTest(kills=self.KILLS, clients=self.CLIENTS,
                                 seed=None if seed is None else int(seed),
                                 deadline=self.DEADLINE, log=lines.append)
        self.addCleanup(run.close)  # stops meterd by PID and joins the clients, even on failure
        result = run.run()
        print("\n" + result.summary, file=sys.stderr, flush=True)
        if not result.ok:
            run.keep_data = True
        detail = "%s\nviolations (first 20): %s\nlog tail:\n%s\ndata dir kept: %s" % (
            result.summary, result.violations[:20], "\n".join(lines[-30:]), result.data_dir)
        c = result.counters
        self.assertEqual(c["kills"], self.KILLS, detail)
        self.assertEqual((c["lost"], c["duplicated"], c["unexpected"]), (0, 0, 0), detail)
        self.assertEqual(c["integrity"], "ok", detail)
        self.assertEqual(c["audit_events_lost"], 0, detail)  # D17: answered calls have events
        self.assertGreater(c["calls_answered"], 0, detail)
        self.assertGreater(c["units"], 0, detail)
        self.assertEqual(c["records_acknowledged"], c["rows"], detail)
        self.assertEqual(result.violations, [], detail)


if __name__ == "__main__":
    unittest.main()
