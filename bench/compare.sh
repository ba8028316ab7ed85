#!/usr/bin/env bash
# bench/compare.sh: meterd side by side with its two ceilings (nginx answering a constant body:
# the HTTP ceiling; meterd-store-bench: the storage ceiling) and with moto, on this machine, with
# one load generator (meterd-bench) and one set of settings, as one markdown table that marks
# each performance target met or missed.
#
#   bench/compare.sh [--runs 3] [--duration 10] [--with-10m [--preload 10000000]
#                    [--preload-days 30]] [--out FILE]
#
# Every measurement runs --runs times and the table shows medians (one run's figure on a 2-core
# VM moves by 10-20 %). Servers listen on 127.0.0.1 only, on free ports, and are stopped by PID.
# The raw JSON of every run stays in the work dir (printed at the end); data dirs are removed.
# --with-10m first writes 10 M ledger rows with meterd-store-bench (about 2 minutes, ~5 GB) and
# then measures BatchMeterUsage ingest on that store against the empty-store rate. The rows are a
# ledger's history of --preload-days days (0: all in the measured run's hours, the worst case;
# see meterd-store-bench).
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."
root=$PWD

runs=3
duration=10
with_10m=0
out=""
connections=32
records_per_request=25
preload=10000000
preload_days=30
# The catalog meterd serves and meterd-bench signs with.
customers=1000
workloads=64
# moto keeps one backend per real region, so its load stays in us-east-1; a larger catalog
# gives that one region enough distinct records for the whole run.
moto_customers=100000

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}
positive_int() { [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] || { echo "compare: $1 wants a positive integer" >&2; exit 2; }; }
while (($#)); do
  case $1 in
    --runs) positive_int "$1" "${2:-}"; runs=$2; shift 2 ;;
    --duration) positive_int "$1" "${2:-}"; duration=$2; shift 2 ;;
    --with-10m) with_10m=1; shift ;;
    --preload) [[ ${2:-} =~ ^[1-9][0-9]{0,8}$ ]] || usage; preload=$2; shift 2 ;;
    --preload-days) [[ ${2:-} =~ ^[0-9]{1,3}$ ]] || usage; preload_days=$2; shift 2 ;;
    --out) [[ -n ${2:-} ]] || usage; out=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "compare: unknown option $1" >&2; usage ;;
  esac
done
[[ -z $out || $out == /* ]] || out=$caller_dir/$out

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "compare: $*"; exit 1; }

# --- build -----------------------------------------------------------------------------------
[[ -f build/build.ninja ]] || cmake -S . -B build -G Ninja >/dev/null
log "building (cmake --build build)"
cmake --build build >/dev/null || die "build failed (run cmake --build build to see why)"
meterd=$root/build/bin/meterd
store_bench=$root/build/bin/meterd-store-bench
bench=${METERD_BENCH:-$root/build/bin/meterd-bench}
for b in "$meterd" "$store_bench" "$bench"; do [[ -x $b ]] || die "$b is missing"; done
command -v nginx >/dev/null || die "needs nginx (apt-get install nginx)"
command -v moto_server >/dev/null || die "needs moto_server (the Python moto package)"

# --- work dir, servers, cleanup ----------------------------------------------------------------
work=$(mktemp -d /tmp/meterd-compare.XXXXXX)
mkdir -p "$work/raw" "$work/logs"
declare -A servers=()  # pid -> name: every process this script started and has not stopped

stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "servers[$pid]"
}
cleanup() {
  local pid
  for pid in "${!servers[@]}"; do stop_pid "$pid"; done
  rm -rf "$work"/data-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits until 127.0.0.1:$1 accepts connections while process $2 lives.
wait_port() {
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_nginx() {
  local dir=$work/nginx
  mkdir -p "$dir/tmp"
  nginx_port=$(free_port)
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  client_body_buffer_size 1m;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      default_type application/x-amz-json-1.1;
      return 200 '{"Results":[],"UnprocessedRecords":[]}';
    }
  }
}
EOF
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >"$work/logs/nginx.out" 2>&1 &
  nginx_pid=$!
  servers[$nginx_pid]=nginx
  wait_port "$nginx_port" "$nginx_pid" || die "nginx did not start: $(tail -3 "$dir/error.log")"
}

# Starts meterd on data dir $1 (the durable embedded store); sets meterd_pid and meterd_port.
start_meterd() {
  local data=$1 logf
  logf=$work/logs/meterd-${1##*/}-$RANDOM.log
  mkdir -p "$data"
  "$meterd" serve --listen 127.0.0.1:0 --admin-listen off --throttle off --data "$data" \
    --catalog "$catalog" >"$logf" 2>&1 &
  meterd_pid=$!
  servers[$meterd_pid]=meterd
  meterd_port=""
  for _ in $(seq 300); do
    meterd_port=$(sed -n 's/^meterd: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$logf")
    [[ -n $meterd_port ]] && return 0
    kill -0 "$meterd_pid" 2>/dev/null || die "meterd exited: $(tail -3 "$logf")"
    sleep 0.1
  done
  die "meterd did not start: $(tail -3 "$logf")"
}

start_moto() {
  moto_port=$(free_port)
  moto_server -H 127.0.0.1 -p "$moto_port" >"$work/logs/moto-$RANDOM.log" 2>&1 &
  moto_pid=$!
  servers[$moto_pid]=moto
  wait_port "$moto_port" "$moto_pid" || die "moto_server did not start"
}

# bench_run NAME PORT OP [meterd-bench options...]: one load run, its JSON in raw/NAME.json.
# A failed run leaves no JSON (the table shows n/a) and the comparison goes on.
bench_run() {
  local name=$1 port=$2 op=$3
  shift 3
  run_seq=$((run_seq + 1))
  local args=(run --endpoint "http://127.0.0.1:$port" --op "$op" --catalog "$catalog"
    --connections "$connections" --run-id "$stamp-$run_seq" --json)
  [[ $op == batch ]] && args+=(--records-per-request "$records_per_request")
  [[ " $* " == *" --requests "* ]] || args+=(--duration "$duration")
  if "$bench" "${args[@]}" "$@" >"$work/raw/$name.json" 2>"$work/logs/$name.err"; then
    log "  $name: $(summary "$work/raw/$name.json")"
  else
    log "  $name: FAILED: $(tail -2 "$work/logs/$name.err")"
    rm -f "$work/raw/$name.json"
  fi
}

summary() {
  python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
if "records_per_unit" in d:  # meterd-store-bench
    print("%.0f records/s, unit p99 %.1f ms" % (d["records_per_s"], d["p99_ms"]))
else:
    l = d.get("latency_ms", {})
    print("%.0f req/s, %.0f records/s, p50 %.2f ms, p99 %.2f ms, http %s%s" % (
        d["requests_per_s"], d["records_per_s"], l.get("p50", 0), l.get("p99", 0),
        json.dumps(d.get("http_status", {})),
        ", errors " + json.dumps(d["errors"]) if d.get("errors") else ""))
EOF
}

# Half of the median peak request rate of runs raw/$1-*.json (0 when none succeeded).
half_peak() {
  python3 - "$work/raw" "$1" <<'EOF'
import glob, json, statistics, sys
rates = [json.load(open(f))["requests_per_s"]
         for f in glob.glob("%s/%s-[0-9]*.json" % (sys.argv[1], sys.argv[2]))]
print(max(1, int(statistics.median(rates) / 2)) if rates else 0)
EOF
}

# Run ids become part of the records' regions: distinct per run, so that runs on one store
# (the 10 M runs, the memory runs) never repeat a record.
stamp=c$(printf '%x' "$(date +%s)")
run_seq=0
catalog=$work/catalog.json
moto_catalog=$work/catalog-moto.json
"$bench" catalog --customers "$customers" --workloads "$workloads" --out "$catalog" \
  >"$work/logs/catalog.out" 2>&1 || die "meterd-bench catalog failed: $(tail -2 "$work/logs/catalog.out")"
"$bench" catalog --customers "$moto_customers" --out "$moto_catalog" >>"$work/logs/catalog.out" 2>&1 ||
  die "meterd-bench catalog failed: $(tail -2 "$work/logs/catalog.out")"

estimate=$((runs * (6 * duration + 15) + 2 * runs * (duration + 2) + duration +
  (3 * duration > 30 ? 3 * duration : 30)))
log "work dir $work; about $((estimate / 60 + 1)) min$([[ $with_10m == 1 ]] && echo ' plus the 10 M preload')"
start_nginx

# --- peaks: every side in each round, so that a slow moment of the machine hits all of them ----
for r in $(seq "$runs"); do
  log "round $r of $runs"
  bench_run "nginx-meter-$r" "$nginx_port" meter
  bench_run "nginx-batch-$r" "$nginx_port" batch

  if "$store_bench" --data "$work/data-store-$r" --duration "$duration" --inflight "$connections" \
    --records-per-unit "$records_per_request" --json >"$work/raw/store-$r.json" \
    2>"$work/logs/store-$r.err"; then
    log "  store-$r: $(summary "$work/raw/store-$r.json")"
  else
    log "  store-$r: FAILED: $(tail -2 "$work/logs/store-$r.err")"
    rm -f "$work/raw/store-$r.json"
  fi
  rm -rf "$work/data-store-$r"

  for op in meter batch; do
    start_meterd "$work/data-meterd-$op-$r"
    bench_run "meterd-$op-$r" "$meterd_port" "$op"
    stop_pid "$meterd_pid"
    rm -rf "$work/data-meterd-$op-$r"
  done

  start_moto
  # (An assignment before a function call lasts for that call only.)
  catalog=$moto_catalog bench_run "moto-batch-$r" "$moto_port" batch --region us-east-1
  stop_pid "$moto_pid"
done
stop_pid "$nginx_pid"

# --- latency at half the peak rate: what a caller sees when meterd is not saturated ----------
for op in meter batch; do
  rate=$(half_peak "meterd-$op")
  [[ $rate -gt 0 ]] || continue
  log "$op at half peak: $rate requests/s"
  for r in $(seq "$runs"); do
    start_meterd "$work/data-meterd-$op-half-$r"
    bench_run "meterd-$op-half-$r" "$meterd_port" "$op" --rate "$rate"
    stop_pid "$meterd_pid"
    rm -rf "$work/data-meterd-$op-half-$r"
  done
done

# --- memory: meterd's RSS every second during a BatchMeterUsage run at full speed ---------------
# A warm-up run first, 3 x --duration (at least 30 s): the store's block cache and memtables (one
# budget of 128 MiB) and the allocator's arenas fill during the first few hundred thousand
# records, and that is not growth.
# The measured run follows on the same meterd.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
# sampled_run NAME SECONDS: a full-speed BatchMeterUsage run against meterd, RSS into raw/NAME-rss-kib.txt.
sampled_run() {
  run_seq=$((run_seq + 1))
  "$bench" run --endpoint "http://127.0.0.1:$meterd_port" --op batch --catalog "$catalog" \
    --records-per-request "$records_per_request" --connections "$connections" \
    --duration "$2" --run-id "$stamp-$run_seq" --json \
    >"$work/raw/$1.json" 2>"$work/logs/$1.err" &
  local bench_pid=$!
  servers[$bench_pid]="meterd-bench"  # stopped on the way out if this script is interrupted
  : >"$work/raw/$1-rss-kib.txt"
  while kill -0 "$bench_pid" 2>/dev/null; do
    sleep 1
    kill -0 "$bench_pid" 2>/dev/null || break
    rss_kib "$meterd_pid" >>"$work/raw/$1-rss-kib.txt"
  done
  local rc=0
  wait "$bench_pid" || rc=$?
  unset "servers[$bench_pid]"
  if ((rc == 0)); then
    log "  $1: $(summary "$work/raw/$1.json")"
    log "    RSS KiB per second: $(tr '\n' ' ' <"$work/raw/$1-rss-kib.txt")"
  else
    log "  $1: FAILED: $(tail -2 "$work/logs/$1.err")"
    rm -f "$work/raw/$1.json"
  fi
}
log "memory: meterd's RSS during BatchMeterUsage runs"
start_meterd "$work/data-meterd-rss"
rss_kib "$meterd_pid" >"$work/raw/rss-idle-kib.txt"
sampled_run meterd-batch-warmup $((3 * duration > 30 ? 3 * duration : 30))
sampled_run meterd-batch-memory "$duration"
stop_pid "$meterd_pid"
rm -rf "$work/data-meterd-rss"

# --- the disk: what one durable commit costs at least ------------------------------------------
# Every acknowledged request waits for one fdatasync of its group (the WAL's), so the
# disk's fdatasync latency is the floor of the request latency, whatever the CPU does.
log "disk: fdatasync latency of a 4 KiB write in the data dir's file system"
python3 - "$work" >"$work/raw/fsync.json" <<'PY'
import json, os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
lat = []
for i in range(500):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1000)
os.close(fd)
os.unlink(path)
lat.sort()
print(json.dumps({"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "max": lat[-1]}))
PY
log "  fdatasync ms: $(cat "$work/raw/fsync.json")"

# --- 10 M stored: ingest on a big ledger against the empty-store rate -------------------------
if [[ $with_10m == 1 ]]; then
  log "10 M: preloading $preload rows with meterd-store-bench (minutes; its RSS every 5 s)"
  "$store_bench" --data "$work/data-10m" --preload "$preload" --preload-days "$preload_days" \
    --duration "$duration" \
    --inflight "$connections" --records-per-unit "$records_per_request" --json \
    >"$work/raw/store-10m.json" 2>"$work/logs/store-10m.err" &
  preload_pid=$!
  servers[$preload_pid]="meterd-store-bench"
  : >"$work/raw/store-10m-rss-kib.txt"
  while kill -0 "$preload_pid" 2>/dev/null; do
    sleep 5
    rss_kib "$preload_pid" >>"$work/raw/store-10m-rss-kib.txt"
  done
  preload_rc=0
  wait "$preload_pid" || preload_rc=$?
  unset "servers[$preload_pid]"
  if ((preload_rc == 0)); then
    log "  $(grep preloaded "$work/logs/store-10m.err" || true)"
    log "  store-$preload: $(summary "$work/raw/store-10m.json")"
    # The same store and meterd for every run: copying GBs per run would take longer than the
    # runs. Each run's id keeps its records apart from the others'. As for the empty store's
    # memory runs, a warm-up run first (its cache and memtables fill: not growth), then the
    # measured runs, whose RSS is sampled throughout.
    start_meterd "$work/data-10m"
    sampled_run meterd-batch-10m-warmup $((3 * duration > 30 ? 3 * duration : 30))
    for r in $(seq "$runs"); do
      sampled_run "meterd-batch-10m-$r" "$duration"
    done
    stop_pid "$meterd_pid"
  else
    log "  the preload failed: $(tail -2 "$work/logs/store-10m.err")"
    rm -f "$work/raw/store-10m.json"
  fi
  rm -rf "$work/data-10m"
fi

# --- the table ----------------------------------------------------------------------------------
python3 - "$work" "$runs" "$duration" "$with_10m" "$connections" "$records_per_request" \
  >"$work/table.md" <<'EOF'
import datetime, glob, json, os, platform, statistics, sys

work, runs, duration, with_10m, connections, per_request = sys.argv[1:]
raw = os.path.join(work, "raw")
warnings = []


def load(name):
    try:
        with open(os.path.join(raw, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def series(prefix, fn):
    """fn over every run raw/PREFIX-<n>.json, in run order."""
    out = []
    for r in range(1, int(runs) + 1):
        d = load("%s-%d" % (prefix, r))
        if d is None:
            continue
        status = d.get("http_status") or {}
        bad = {k: v for k, v in status.items() if str(k) != "200"}
        if bad or d.get("errors"):
            warnings.append("%s-%d: http %s errors %s" % (
                prefix, r, json.dumps(status), json.dumps(d.get("errors") or {})))
        out.append(fn(d))
    return out


def med(values):
    return statistics.median(values) if values else None


def rps(d):
    return d["requests_per_s"]


def recs(d):
    return d["records_per_s"]


def p99(d):
    return d["latency_ms"]["p99"]


def answered(d):
    # Records answered in Results, whatever their status: moto answers CustomerNotSubscribed
    # for customers it was never told about, and that is still the work of a call.
    s = d.get("record_status") or {}
    n = sum(s.get(k, 0) for k in ("Success", "DuplicateRecord", "CustomerNotSubscribed"))
    return n / d["seconds"] if d.get("seconds") else 0.0


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return "{:,.{}f}".format(v, digits)


def cell(values, digits=0):
    if not values:
        return "n/a", "n/a"
    return fmt(med(values), digits), " / ".join(fmt(v, digits) for v in values)


rows = []


def row(what, values, digits=0):
    m, all_ = cell(values, digits)
    rows.append("| %s | %s | %s |" % (what, m, all_))
    return med(values)


def peak_latency(what, prefix):
    # Warnings are gathered once per run, by the throughput rows.
    p50 = med([d["latency_ms"]["p50"] for d in map(load, names(prefix)) if d])
    p99 = med([d["latency_ms"]["p99"] for d in map(load, names(prefix)) if d])
    rows.append("| %s p50 / p99 at peak (ms) | %s / %s | |" % (what, fmt(p50, 2), fmt(p99, 2)))


def names(prefix):
    return ["%s-%d" % (prefix, r) for r in range(1, int(runs) + 1)]


nginx_meter = row("nginx, MeterUsage-shaped, req/s (HTTP ceiling)", series("nginx-meter", rps))
nginx_batch = row("nginx, BatchMeterUsage-shaped, req/s", series("nginx-batch", rps))
store = row("store alone, records/s (25-record units, %s in flight; storage ceiling)" % connections,
            series("store", lambda d: d["records_per_s"]))
meter = row("meterd MeterUsage req/s", series("meterd-meter", rps))
peak_latency("meterd MeterUsage", "meterd-meter")
meter_half = row("meterd MeterUsage p99 at half peak (ms)", series("meterd-meter-half", p99), 2)
batch_rps = row("meterd BatchMeterUsage req/s", series("meterd-batch", rps))
batch = row("meterd BatchMeterUsage records/s", series("meterd-batch", recs))
peak_latency("meterd BatchMeterUsage", "meterd-batch")
batch_half = row("meterd BatchMeterUsage p99 at half peak (ms)", series("meterd-batch-half", p99), 2)
moto = row("moto BatchMeterUsage records/s", series("moto-batch", answered), 1)

def samples(name):
    try:
        with open(os.path.join(raw, name)) as f:
            return [int(line) / 1024 for line in f if line.strip()]
    except (OSError, ValueError):
        return []


rss_idle = samples("rss-idle-kib.txt")
rss_warm = samples("meterd-batch-warmup-rss-kib.txt")
rss = samples("meterd-batch-memory-rss-kib.txt")
rss_first, rss_last = (rss[0], rss[-1]) if rss else (None, None)
rows.append("| meterd RSS first / last during a BatchMeterUsage run after a warm-up run (MiB) "
            "| %s / %s | idle %s, warm-up %s → %s, %d samples |" % (
                fmt(rss_first, 1), fmt(rss_last, 1), fmt(rss_idle[0] if rss_idle else None, 1),
                fmt(rss_warm[0] if rss_warm else None, 1),
                fmt(rss_warm[-1] if rss_warm else None, 1), len(rss)))

fsync = load("fsync")
if fsync:
    rows.append("| disk: fdatasync of a 4 KiB write, p50 / p99 (ms): the floor of a durable "
                "commit's latency | %s / %s | max %s |" % (
                    fmt(fsync["p50"], 2), fmt(fsync["p99"], 2), fmt(fsync["max"], 2)))

at_10m = None
if with_10m == "1":
    s10 = load("store-10m")
    if s10:
        days = s10.get("preload_days", 0)
        rows.append("| 10 M preload (meterd-store-bench) | %s s | %s rows, %s |" % (
            fmt(s10.get("preload_seconds"), 0), fmt(s10.get("preload_records")),
            "a history of %d days before the run's hours" % days if days
            else "all in the run's 6 hours (worst case)"))
        rows.append("| store alone at 10 M, records/s | %s | |" % fmt(s10["records_per_s"]))
    at_10m = row("meterd BatchMeterUsage records/s at 10 M stored (after a warm-up run)",
                 series("meterd-batch-10m", recs))
    pre = samples("store-10m-rss-kib.txt")
    if pre:
        rows.append("| store-bench RSS over the 10 M preload, first / last / max (MiB) | %s / %s / %s "
                    "| %d samples, every 5 s |" % (fmt(pre[0], 1), fmt(pre[-1], 1), fmt(max(pre), 1),
                                                  len(pre)))
    rss10 = [v for r in range(1, int(runs) + 1) for v in samples("meterd-batch-10m-%d-rss-kib.txt" % r)]
    if rss10:
        rows.append("| meterd RSS during BatchMeterUsage at 10 M stored, first / last (MiB) | %s / %s "
                    "| %d samples |" % (fmt(rss10[0], 1), fmt(rss10[-1], 1), len(rss10)))


def ratio(a, b):
    return a / b if a is not None and b else None


targets = []


def target(what, value, threshold, ok, shown):
    verdict = "n/a" if value is None else ("met" if ok(value) else "**missed**")
    targets.append("| %s | %s | %s | %s |" % (what, shown(value) if value is not None else "n/a",
                                              threshold, verdict))


times = lambda v: "%.2f×" % v
ms = lambda v: "%.2f ms" % v
# The references of the same run, as ratios (no threshold: what the ceilings and the peer are).
rows.append("| ratio: MeterUsage req/s / nginx MeterUsage-shaped req/s | %s | HTTP ceiling |"
            % (times(ratio(meter, nginx_meter)) if ratio(meter, nginx_meter) else "n/a"))
rows.append("| ratio: BatchMeterUsage records/s / store alone records/s | %s | raw engine |"
            % (times(ratio(batch, store)) if ratio(batch, store) else "n/a"))
rows.append("| ratio: BatchMeterUsage records/s / moto records/s | %s | peer |"
            % (("%.1f×" % ratio(batch, moto)) if ratio(batch, moto) else "n/a"))
# The targets of the ingest engine (issue 15).
target("BatchMeterUsage records/s (25-record requests, audit and rollups on)", batch,
       "≥ 60,000", lambda v: v >= 60000, lambda v: fmt(v))
target("MeterUsage req/s (every call a new record)", meter, "≥ 15,000", lambda v: v >= 15000,
       lambda v: fmt(v))
if with_10m == "1":
    target("Batch ingest at 10 M stored / empty store", ratio(at_10m, batch), "≥ 0.9×",
           lambda v: v >= 0.9, times)
target("MeterUsage p99 at half peak", meter_half, "≤ 5 ms", lambda v: v <= 5, ms)
target("BatchMeterUsage p99 at half peak", batch_half, "≤ 5 ms", lambda v: v <= 5, ms)
# Flat: after the warm-up, the last sample within 10 % of the first.
target("RSS flat during a BatchMeterUsage run (last / first)", ratio(rss_last, rss_first),
       "≤ 1.10×", lambda v: v <= 1.10, times)
if with_10m == "1" and rss10:
    target("RSS flat over the runs at 10 M stored (last / first)", ratio(rss10[-1], rss10[0]),
           "≤ 1.10×", lambda v: v <= 1.10, times)

cpu = "unknown"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
except OSError:
    pass
print("## meterd compared (bench/compare.sh)\n")
print("- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
print("- machine: %d cores (nproc), %s, Linux %s" % (len(os.sched_getaffinity(0)), cpu,
                                                     platform.release()))
print("- load: meterd-bench, %s connections, %s s per run, %s-record BatchMeterUsage requests; "
      "medians of %s runs; loopback; meterd durable (the embedded store: every answer after the WAL fsync of its group), throttling off"
      % (connections, duration, per_request, runs))
print()
print("| measurement | median | runs |")
print("|---|---:|---|")
print("\n".join(rows))
print()
print("| target | measured | threshold | result |")
print("|---|---:|---:|---|")
print("\n".join(targets))
if warnings:
    print("\nRuns with non-200 answers or client errors:\n")
    for w in warnings:
        print("- " + w)
EOF
cat "$work/table.md"
if [[ -n $out ]]; then cp "$work/table.md" "$out"; fi
log "raw JSON of every run: $work/raw"
