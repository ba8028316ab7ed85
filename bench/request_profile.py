#!/usr/bin/env python3
"""bench/request_profile.py: where the CPU time of one request goes, per meterd thread.

Starts meterd on a fresh data dir (127.0.0.1, a free port, throttling off, the chosen store),
drives it with meterd-bench for --duration seconds per operation (MeterUsage, then 25-record
BatchMeterUsage, 32 connections), reads every thread's CPU time from /proc/PID/task/*/stat
before and after each run, and prints CPU microseconds per request by thread group (HTTP event
loops, the store's writer, its syncer, RocksDB's flush and compaction threads, SQLite's
checkpointer, the rest). With --perf, `perf record` runs on meterd during each run and the
report lists the writer's and the event loops' heaviest symbols (self time), to show what inside
each thread costs. meterd is stopped by its PID; the data dir is removed.

  python3 bench/request_profile.py [--store embedded|sqlite] [--duration 8] [--perf]
"""
import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
TICK = os.sysconf("SC_CLK_TCK")

GROUPS = [  # thread-name prefix -> group (first match wins)
    ("meterd-http", "HTTP event loops (parse, SigV4, JSON, validation, encoding)"),
    ("meterd-writer", "store writer (apply, seal, commit: memtable inserts, WAL write)"),
    ("meterd-syncer", "store syncer (WAL fsync)"),
    ("rocksdb:high", "RocksDB flushes"),
    ("rocksdb:low", "RocksDB compactions"),
    ("meterd-ckpt", "SQLite WAL checkpointer"),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def thread_cpu(pid):
    """{thread name: CPU seconds} of every live thread of pid (user + system)."""
    out = collections.Counter()
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] += (int(fields[11]) + int(fields[12])) / TICK
    return out


def group_of(name):
    for prefix, group in GROUPS:
        if name.startswith(prefix[:15]):  # thread names are cut at 15 characters
            return group
    return "other meterd threads"


def perf_top(path, comm, n):
    rep = subprocess.run(["perf", "report", "-i", path, "--no-children", "--comm", comm,
                          "--sort", "sym", "-g", "none", "--percent-limit", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    lines = [l.strip() for l in rep.splitlines() if l.strip() and not l.startswith("#")]
    return lines[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="embedded", choices=["embedded", "sqlite"])
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--perf", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="meterd-profile-")
    catalog = os.path.join(work, "catalog.json")
    subprocess.run([os.path.join(BIN, "meterd-bench"), "catalog", "--customers", "1000",
                    "--workloads", "64", "--out", catalog], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    server = subprocess.Popen([os.path.join(BIN, "meterd"), "serve", "--listen",
                               "127.0.0.1:%d" % port, "--admin-listen", "off", "--throttle", "off",
                               "--store", args.store, "--data", os.path.join(work, "data"),
                               "--catalog", catalog, "--log-level", "warn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        print("## Request profile: store %s, %d s per operation, 32 connections, %s\n" % (
            args.store, args.duration, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
        for op, label in (("meter", "MeterUsage"), ("batch", "BatchMeterUsage (25 records)")):
            before = thread_cpu(server.pid)
            perf = None
            perf_path = os.path.join(work, "perf-%s.data" % op)
            if args.perf:
                perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p",
                                         str(server.pid), "-o", perf_path],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started = time.time()
            res = subprocess.run([os.path.join(BIN, "meterd-bench"), "run", "--endpoint",
                                  "http://127.0.0.1:%d" % port, "--op", op, "--catalog", catalog,
                                  "--records-per-request", "25", "--connections", "32",
                                  "--duration", str(args.duration), "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            wall = time.time() - started
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait()
            after = thread_cpu(server.pid)
            d = json.loads(res.stdout)
            requests = d["requests"]
            by_group = collections.Counter()
            for name, secs in after.items():
                by_group[group_of(name)] += secs - before.get(name, 0)
            total = sum(by_group.values())
            print("### %s: %s req/s, %s records/s, p50 %.2f ms, p99 %.2f ms\n" % (
                label, "{:,.0f}".format(d["requests_per_s"]), "{:,.0f}".format(d["records_per_s"]),
                d["latency_ms"]["p50"], d["latency_ms"]["p99"]))
            print("| thread group | CPU µs per request | share of meterd's CPU | cores busy |")
            print("|---|---:|---:|---:|")
            for group, secs in by_group.most_common():
                print("| %s | %.1f | %.0f%% | %.2f |" % (group, secs * 1e6 / requests,
                                                       100 * secs / total, secs / wall))
            print("| **meterd in all** | **%.1f** | 100%% | %.2f |\n" % (total * 1e6 / requests,
                                                                   total / wall))
            if perf is not None:
                for comm in ("meterd-writer", "meterd-http"):
                    print("Heaviest symbols of %s (self time, %% of all meterd samples):\n" % comm)
                    print("```")
                    for line in perf_top(perf_path, comm, 12):
                        print(line)
                    print("```\n")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
