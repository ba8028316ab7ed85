#!/usr/bin/env python3
"""bench/pg_bench.py: meterd on PostgreSQL next to meterd on its embedded SQLite store, with the
same load generator (meterd-bench) and settings as bench/compare.sh, in one run, as a markdown
table (medians of --runs runs).

    bench/pg_bench.py [--runs 3] [--duration 10] [--connections 32] [--two-nodes]

PostgreSQL runs durable (fsync and synchronous_commit on, like SQLite's synchronous=FULL) in a
temp dir, started and stopped by tests/lib/pg_server.py. --two-nodes adds runs with two meterd
nodes on the one database, each driven by its own meterd-bench (figures are the sums).
Build first (cmake --build build); servers listen on 127.0.0.1 only and are stopped by PID.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import pg_server  # noqa: E402

METERD = os.environ.get("METERD_BIN", os.path.join(ROOT, "build", "bin", "meterd"))
BENCH = os.environ.get("METERD_BENCH", os.path.join(ROOT, "build", "bin", "meterd-bench"))


class Meterd:
    def __init__(self, work, catalog, store):
        self.data = tempfile.mkdtemp(prefix="data-", dir=work)
        args = [METERD, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off",
                "--throttle", "off", "--data", self.data, "--catalog", catalog]
        if store:
            args += ["--store", store]
        self.log = open(os.path.join(self.data, "meterd.log"), "w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = None
        for line in self.proc.stdout:
            m = re.match(r"meterd: listening on 127\.0\.0\.1:(\d+)$", line.strip())
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.log.seek(0)
            raise RuntimeError("meterd did not start: " + self.log.read()[-500:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def bench(port, op, catalog, args, run_id):
    cmd = [BENCH, "run", "--endpoint", "http://127.0.0.1:%d" % port, "--op", op, "--catalog",
           catalog, "--connections", str(args.connections), "--duration", str(args.duration),
           "--run-id", run_id, "--json"]
    if op == "batch":
        cmd += ["--records-per-request", "25"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(procs):
    results = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError("meterd-bench failed: " + err[-500:])
        results.append(json.loads(out))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--two-nodes", action="store_true")
    args = ap.parse_args()
    for exe in (METERD, BENCH):
        if not os.access(exe, os.X_OK):
            sys.exit("pg_bench: %s is missing (cmake --build build)" % exe)
    reason = pg_server.missing_reason()
    if reason:
        sys.exit("pg_bench: " + reason)

    work = tempfile.mkdtemp(prefix="meterd-pg-bench-")
    catalog = os.path.join(work, "catalog.json")
    subprocess.run([BENCH, "catalog", "--customers", "1000", "--workloads", "64", "--out",
                    catalog], check=True, capture_output=True)
    stamp = "p%x" % int(time.time())
    seq = [0]
    rows = {}  # (setup, op) -> list of (req/s, records/s, p50, p99)
    pg = pg_server.PostgresServer(durable=True)
    pg.start()
    try:
        setups = [("sqlite", 1), ("postgresql", 1)] + ([("postgresql", 2)] if args.two_nodes else [])
        for r in range(args.runs):
            for store, nodes in setups:
                for op in ("meter", "batch"):
                    url = pg.create_database() if store == "postgresql" else None
                    servers = [Meterd(work, catalog, url) for _ in range(nodes)]
                    try:
                        procs = []
                        for s in servers:
                            seq[0] += 1
                            procs.append(bench(s.port, op, catalog, args, "%s-%d" % (stamp, seq[0])))
                        results = collect(procs)
                    finally:
                        for s in servers:
                            s.stop()
                    name = store if nodes == 1 else "%s, %d nodes" % (store, nodes)
                    errors = sum(sum(d.get("errors", {}).values()) if isinstance(
                        d.get("errors"), dict) else 0 for d in results)
                    figures = (sum(d["requests_per_s"] for d in results),
                               sum(d["records_per_s"] for d in results),
                               max(d["latency_ms"]["p50"] for d in results),
                               max(d["latency_ms"]["p99"] for d in results),
                               json.dumps([d.get("http_status", {}) for d in results]), errors)
                    rows.setdefault((name, op), []).append(figures)
                    print("[run %d] %s %s: %.0f req/s, %.0f records/s, p50 %.2f ms, p99 %.2f ms, "
                          "http %s" % ((r + 1, name, op) + figures[:5]), file=sys.stderr,
                          flush=True)
    finally:
        pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    print("| store | operation | requests/s | records/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, op), runs in rows.items():
        med = [statistics.median(f[i] for f in runs) for i in range(4)]
        print("| %s | %s | %.0f | %.0f | %.2f | %.2f |" % (
            name, "BatchMeterUsage (25 records)" if op == "batch" else "MeterUsage",
            med[0], med[1], med[2], med[3]))
    print("\nmedians of %d runs of %d s, %d connections, meterd-bench, on %d cores" % (
        args.runs, args.duration, args.connections, os.cpu_count()))


if __name__ == "__main__":
    main()
