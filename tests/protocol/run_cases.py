#!/usr/bin/env python3
"""Data-driven protocol tests for meterd.

Starts ONE meterd (tests/lib/meterd_harness.py, test catalog), sends every case of
tests/protocol/cases/*.json in sorted order over plain HTTP/1.1 to 127.0.0.1, and checks the
status, the error `__type`, the headers every response must carry, the message, the response
body and how many rows the ledger (table `usage_records` of the store) gained.

The store backend is the harness's ($METERD_STORE_BACKEND=sqlite|postgresql): `<data>/meterd.db`,
or a database of a PostgreSQL server the harness starts (tests/lib/pg_server.py).

Usage:  python3 tests/protocol/run_cases.py [--filter SUBSTR] [--meterd PATH] [-v]
Dependencies: Python 3 stdlib + botocore (the machine's python3 has it).

The case format is described in tests/protocol/README.md.
"""
import argparse
import base64
import datetime
import decimal
import glob
import hashlib
import http.client
import json
import os
import re
import socket
import sqlite3
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import botocore.auth  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

import meterd_harness as harness  # noqa: E402
import pg_server  # noqa: E402

SERVICE = "aws-marketplace"
TARGET_PREFIX = "AWSMPMeteringService."
JSON_CT = "application/x-amz-json-1.1"
# The runner's own server runs with --throttle off (the harness default). Against a server that
# throttles (--endpoint), pace with --pace 0.11 to stay below 10/s per account (D14).
PACE_SECONDS = 0.0

CREDENTIALS = {
    "SELLER": harness.SELLER,
    "OTHER_SELLER": harness.OTHER_SELLER,
    "EC2": harness.EC2,
    "ECS": harness.ECS,
    "EKS_WEST": harness.EKS_WEST,
    "AGENTCORE": harness.AGENTCORE,
    "INITECH_EC2": harness.INITECH_EC2,
    "TEMP_EC2": harness.TEMP_EC2,
    "DISABLED": harness.DISABLED,
}
UNKNOWN_KEY = ("AKIAUNKNOWNKEY000001", "unknownSecretKey000000000000000000000001")
CONSTANTS = {
    "CA_LICENSE": harness.CA_LICENSE,
    "EXPIRED_LICENSE": harness.EXPIRED_LICENSE,
    "INITECH_LICENSE": harness.INITECH_LICENSE,
    "OTHER_PRODUCT_LICENSE": harness.OTHER_PRODUCT_LICENSE,
}

# Special auth modes. A case's "auth" is a credential name, a mode, or a list of modes (combined),
# with "credential" naming the key that the mode signs with (default SELLER).
AUTH_MODES = {
    "none",                      # no Authorization header at all
    "bad-signature",             # sign, then flip the last hex digit of Signature
    "wrong-service",             # sign with service name metering.marketplace
    "expired",                   # X-Amz-Date 20 min in the past
    "future",                    # X-Amz-Date 20 min in the future
    "skew-10m",                  # X-Amz-Date 10 min in the past (inside the 15 min skew)
    "unknown-key",               # sign with an access key the catalog does not know
    "tampered-body",             # sign, then append a space to the body (still valid JSON)
    "garbage-authorization",     # Authorization: Bearer ... (not SigV4)
    "missing-session-token",     # TEMP_EC2 signed without its session token
    "wrong-session-token",       # TEMP_EC2 signed with another session token
    "unexpected-session-token",  # a credential without token signed with a token
    "scope-terminator",          # credential scope ends in aws5_request
    "scope-date-mismatch",       # credential scope date != date of X-Amz-Date
    "credential-four-parts",     # Credential=AKID/date/region/service
    "no-host-signed",            # SignedHeaders without host
    "no-amz-date",               # sign, then drop X-Amz-Date
    "lowercase-headers",         # send every header name in lower case (like JS v3)
    "sign-extra-headers",        # also sign content-length, x-amz-content-sha256, amz-sdk-* (JS v3)
}


# ---------------------------------------------------------------------------------------------
# placeholders

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
TIME_RE = re.compile(r"^(now|hour)((?:[+-](?:\d+[dhms])+)*)(?::(int|frac|exp|ms|str))?$")
TERM_RE = re.compile(r"([+-])((?:\d+[dhms])+)")
UNIT = {"d": 86400000, "h": 3600000, "m": 60000, "s": 1000}


class Raw:
    """A JSON number that must be written exactly as `text`."""

    def __init__(self, text, value):
        self.text = text
        self.value = value


def exp_form(millis):
    """Exact exponent form of an epoch in seconds given in ms, e.g. 1.764171234567E9."""
    secs, ms = divmod(millis, 1000)
    digits = str(secs) + ("%03d" % ms if ms else "")
    exponent = len(str(secs)) - 1
    mantissa = digits[0] + "." + (digits[1:].rstrip("0") or "0")
    return "%sE%d" % (mantissa, exponent)


# `${hour...}` is the start of the UTC hour in which the run began, fixed for the whole run: cases
# keep their dedup hours apart by hour offsets, and a run that crosses an hour boundary must not
# make two cases land in the same hour.
RUN_START_MS = int(time.time() * 1000)
RUN_HOUR_MS = RUN_START_MS - RUN_START_MS % 3600000


class Context:
    """Per-case values: one `now` for the whole case, named UUIDs stable within a case."""

    def __init__(self):
        self.now_ms = int(time.time() * 1000)
        self.uuids = {}

    def time_value(self, m):
        base = self.now_ms if m.group(1) == "now" else RUN_HOUR_MS
        for sign, body in TERM_RE.findall(m.group(2) or ""):
            delta = sum(int(n) * UNIT[u] for n, u in re.findall(r"(\d+)([dhms])", body))
            base += delta if sign == "+" else -delta
        form = m.group(3) or "int"
        if form == "int":
            secs = base // 1000
            return Raw(str(secs), secs)
        if form == "ms":
            return Raw(str(base), base)
        if form == "frac":
            # always three decimals, so the value carries milliseconds; avoid .000
            if base % 1000 == 0:
                base += 1
            text = "%d.%03d" % divmod(base, 1000)
            return Raw(text, decimal.Decimal(text))
        if form == "exp":
            text = exp_form(base)
            return Raw(text, decimal.Decimal(text))
        if form == "str":
            return datetime.datetime.fromtimestamp(base / 1000, datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        raise ValueError(form)

    def resolve_token(self, name):
        """Value of one ${...}: Raw (number), or str."""
        m = TIME_RE.match(name)
        if m:
            return self.time_value(m)
        if name == "uuid":
            return str(uuid.uuid4())
        if name.startswith("uuid:"):
            return self.uuids.setdefault(name[5:], str(uuid.uuid4()))
        if name.startswith("str:"):                  # ${str:CHARS:N} -> CHARS repeated to N chars
            _, chars, n = name.split(":", 2)
            n = int(n)
            return (chars * (n // len(chars) + 1))[:n]
        if name in CONSTANTS:
            return CONSTANTS[name]
        raise ValueError("unknown placeholder ${%s}" % name)

    def resolve(self, value):
        """Replace placeholders inside a JSON value (Raw objects stand for exact numbers)."""
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            # ["${repeat:N}", ITEM] expands to N copies of ITEM
            if len(value) == 2 and isinstance(value[0], str):
                rep = re.fullmatch(r"\$\{repeat:(\d+)\}", value[0])
                if rep:
                    return [self.resolve(value[1]) for _ in range(int(rep.group(1)))]
            return [self.resolve(v) for v in value]
        if isinstance(value, str):
            whole = PLACEHOLDER.fullmatch(value)
            if whole:
                return self.resolve_token(whole.group(1))
            return PLACEHOLDER.sub(lambda m: self._text(self.resolve_token(m.group(1))), value)
        return value

    @staticmethod
    def _text(v):
        return v.text if isinstance(v, Raw) else str(v)

    def resolve_raw_text(self, text):
        return PLACEHOLDER.sub(lambda m: self._text(self.resolve_token(m.group(1))), text)


def dump_json(value):
    """json.dumps that writes Raw numbers verbatim."""
    raws = []

    def strip(v):
        if isinstance(v, Raw):
            raws.append(v.text)
            return "@@RAW%d@@" % (len(raws) - 1)
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    text = json.dumps(strip(value), separators=(",", ":"), ensure_ascii=False)
    for i, raw in enumerate(raws):
        text = text.replace('"@@RAW%d@@"' % i, raw)
    return text


def plain(value):
    """Raw -> plain number, for comparisons."""
    if isinstance(value, Raw):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# building requests

def sized_body(size, fill):
    """A body of exactly `size` bytes. fill=json: valid BatchMeterUsage JSON (empty UsageRecords)
    with a padding member; fill=bad-json: the same but truncated (no closing quote and brace)."""
    head = '{"ProductCode":"acmesaas01","UsageRecords":[],"Pad":"'
    tail = '"}' if fill == "json" else ""
    pad = size - len(head) - len(tail)
    if pad < 0:
        raise ValueError("body_size too small")
    body = (head + "x" * pad + tail).encode()
    assert len(body) == size
    return body


def build_body(req, ctx):
    if "raw_body_b64" in req:
        return base64.b64decode(req["raw_body_b64"])
    if "raw_body" in req:
        return ctx.resolve_raw_text(req["raw_body"]).encode("utf-8")
    if "body_size" in req:
        return sized_body(req["body_size"], req.get("body_fill", "json"))
    if "body" in req:
        return dump_json(ctx.resolve(req["body"])).encode("utf-8")
    return b""


class _FixedNow:
    def __init__(self, shift_seconds):
        self.shift = shift_seconds

    def __enter__(self):
        self.saved = botocore.auth.get_current_datetime
        shift = self.shift
        botocore.auth.get_current_datetime = (
            lambda *a, **k: self.saved(*a, **k) + datetime.timedelta(seconds=shift))

    def __exit__(self, *exc):
        botocore.auth.get_current_datetime = self.saved


def sign(method, host, path, headers, body, region, key, service, token, shift):
    """botocore's real SigV4 signer. Returns the headers it produced (ordered)."""
    req = AWSRequest(method=method, url="http://%s%s" % (host, path), data=body,
                     headers=dict(headers))
    creds = Credentials(key[0], key[1], token)
    with _FixedNow(shift):
        SigV4Auth(creds, service, region).add_auth(req)
    return list(req.headers.items())


def build_request(req, ctx, host):
    """Returns (method, path, [(name, value)], body, chunked)."""
    method = req.get("method", "POST")
    path = req.get("path", "/")
    body = build_body(req, ctx)
    headers = []
    if not req.get("omit_content_type"):
        headers.append(("Content-Type", req.get("content_type", JSON_CT)))
    if req.get("target") is not None and not req.get("omit_target"):
        target = req["target"]
        if "." not in target:
            target = TARGET_PREFIX + target
        headers.append(("X-Amz-Target", target))

    auth = req.get("auth", "SELLER")
    modes = set(auth) if isinstance(auth, list) else {auth}
    cred_name = req.get("credential", "SELLER")
    for m in list(modes):
        if m in CREDENTIALS:
            cred_name = m
            modes.discard(m)
    unknown = modes - AUTH_MODES
    if unknown:
        raise ValueError("unknown auth mode(s) %s" % sorted(unknown))
    cred = CREDENTIALS[cred_name]
    key = (cred[0], cred[1])
    token = cred[2] if len(cred) > 2 else None
    if "unknown-key" in modes:
        key = UNKNOWN_KEY
    if "missing-session-token" in modes:
        if cred_name == "SELLER" and "credential" not in req:
            cred = CREDENTIALS["TEMP_EC2"]
            key = (cred[0], cred[1])
        token = None
    if "wrong-session-token" in modes:
        if cred_name == "SELLER" and "credential" not in req:
            cred = CREDENTIALS["TEMP_EC2"]
            key = (cred[0], cred[1])
        token = "FwoGZXIvYXdzEWrongSessionToken9999"
    if "unexpected-session-token" in modes:
        token = "FwoGZXIvYXdzEUnexpectedSessionToken1"
    service = "metering.marketplace" if "wrong-service" in modes else SERVICE
    shift = 0
    if "expired" in modes:
        shift = -20 * 60
    elif "future" in modes:
        shift = 20 * 60
    elif "skew-10m" in modes:
        shift = -10 * 60

    extra = list((req.get("headers") or {}).items())
    signed_extra = [(k, v) for k, v in extra if not k.startswith("!")]
    if "sign-extra-headers" in modes:
        signed_extra += [
            ("Content-Length", str(len(body))),
            ("X-Amz-Content-SHA256", hashlib.sha256(body).hexdigest()),
            ("amz-sdk-invocation-id", str(uuid.uuid4())),
            ("amz-sdk-request", "attempt=1; max=3"),
        ]
    region = req.get("region", "us-east-1")

    if "none" in modes:
        headers = headers + signed_extra
        headers.append(("X-Amz-Date", datetime.datetime.now(datetime.timezone.utc)
                        .strftime("%Y%m%dT%H%M%SZ")))
    else:
        headers = sign(method, host, path, headers + signed_extra, body, region, key, service,
                       token, shift)
    hd = dict(headers)
    auth_value = hd.get("Authorization")
    if auth_value is not None:
        if "bad-signature" in modes:
            last = auth_value[-1]
            auth_value = auth_value[:-1] + ("0" if last != "0" else "1")
        if "scope-terminator" in modes:
            auth_value = auth_value.replace("/aws4_request", "/aws5_request")
        if "scope-date-mismatch" in modes:
            m = re.search(r"Credential=[^/]+/(\d{8})/", auth_value)
            d = datetime.datetime.strptime(m.group(1), "%Y%m%d") - datetime.timedelta(days=1)
            auth_value = auth_value.replace("/" + m.group(1) + "/", "/" + d.strftime("%Y%m%d") + "/")
        if "credential-four-parts" in modes:
            auth_value = auth_value.replace("/aws4_request", "")
        if "no-host-signed" in modes:
            auth_value = re.sub(r"SignedHeaders=([^,]*)",
                                lambda m: "SignedHeaders=" + ";".join(
                                    h for h in m.group(1).split(";") if h != "host"),
                                auth_value)
        if "garbage-authorization" in modes:
            auth_value = "Bearer eyJhbGciOiJub25lIn0.e30."
        headers = [(k, auth_value if k == "Authorization" else v) for k, v in headers]
    if "no-amz-date" in modes:
        headers = [(k, v) for k, v in headers if k.lower() != "x-amz-date"]
    if "tampered-body" in modes:
        body = body + b" "
    # headers prefixed with "!" are sent unsigned (added after signing)
    headers += [(k[1:], v) for k, v in extra if k.startswith("!")]
    for k in req.get("remove_headers", []):
        headers = [(n, v) for n, v in headers if n.lower() != k.lower()]
    if "lowercase-headers" in modes:
        headers = [(k.lower(), v) for k, v in headers]
    return method, path, headers, body, bool(req.get("chunked"))


# ---------------------------------------------------------------------------------------------
# sending

class Response:
    def __init__(self, status, headers, body, error=None):
        self.status = status
        self.headers = headers      # list of (name, value)
        self.body = body
        self.error = error          # transport problem (str) or None
        self.json = None
        self.json_error = None
        if body is not None:
            try:
                self.json = json.loads(body.decode("utf-8")) if body else None
            except (ValueError, UnicodeDecodeError) as e:
                self.json_error = str(e)

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    @property
    def error_type(self):
        if not isinstance(self.json, dict):
            return None
        t = self.json.get("__type")
        if t is None:
            t = self.json.get("code")
        if t is None:
            t = self.header("X-Amzn-Errortype")
        if t is None:
            return None
        t = t.split(":", 1)[0]
        return t.rsplit("#", 1)[-1]


def send(host, port, method, path, headers, body, chunked, timeout=30):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    send_error = None
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        names = {k.lower() for k, _ in headers}
        if "host" not in names:
            conn.putheader("Host", "%s:%d" % (host, port))
        for k, v in headers:
            conn.putheader(k, v)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif "content-length" not in names and (body or method in ("POST", "PUT")):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        step = 65536
        try:
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                if chunked:
                    piece = b"%x\r\n" % len(piece) + piece + b"\r\n"
                conn.send(piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except OSError as e:   # the server may answer and close before the body is sent
            send_error = "%s while sending body" % type(e).__name__
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.getheaders(), data)
    except (OSError, http.client.HTTPException) as e:
        msg = "%s: %s" % (type(e).__name__, e)
        if send_error:
            msg = send_error + "; then " + msg
        return Response(None, [], None, error=msg)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# checking

def subset_mismatch(expected, actual, path="$"):
    """None if `expected` is a subset of `actual` (dicts: listed keys; lists: same length,
    element-wise; numbers compared by value), else a description."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return "%s: expected an object, got %s" % (path, json.dumps(actual)[:120])
        for k, v in expected.items():
            if k not in actual:
                if v is None:
                    continue   # null in json_subset means "absent (or null)"
                return "%s: member %r missing" % (path, k)
            r = subset_mismatch(v, actual[k], "%s.%s" % (path, k))
            if r:
                return r
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return "%s: expected a list, got %s" % (path, json.dumps(actual)[:120])
        if len(expected) != len(actual):
            return "%s: expected %d items, got %d" % (path, len(expected), len(actual))
        for i, (e, a) in enumerate(zip(expected, actual)):
            r = subset_mismatch(e, a, "%s[%d]" % (path, i))
            if r:
                return r
        return None
    if isinstance(expected, bool) or isinstance(actual, bool):
        ok = expected is actual
    elif isinstance(expected, (int, float, decimal.Decimal)) and \
            isinstance(actual, (int, float, decimal.Decimal)):
        ok = decimal.Decimal(str(expected)) == decimal.Decimal(str(actual))
    else:
        ok = expected == actual
    return None if ok else "%s: expected %s, got %s" % (path, json.dumps(expected, default=str),
                                                        json.dumps(actual)[:200])


def record_ids(resp):
    """MeteringRecordId(s) of a 200: MeterUsage -> [id]; BatchMeterUsage -> [id per result]."""
    j = resp.json if isinstance(resp.json, dict) else {}
    if "Results" in j:
        return [r.get("MeteringRecordId") for r in j.get("Results") or []]
    return [j.get("MeteringRecordId")]


def check_response(name, req, expect, resp, ctx, delta, setup_resps):
    """Returns a list of problems (empty = pass)."""
    problems = []
    if resp.error:
        return ["no HTTP response (%s)" % resp.error]
    want_status = expect.get("status", 200)
    got_type = resp.error_type
    want_type = expect.get("type")
    if resp.status != want_status or got_type != want_type:
        msg = resp.json.get("message", resp.json.get("Message")) if isinstance(resp.json, dict) \
            else None
        problems.append("expected %s %s, got %s %s%s" % (
            want_status, want_type or "(no error)", resp.status, got_type or "(no error)",
            (" (%s)" % msg[:200]) if msg else
            ("" if resp.json is not None else " body=%r" % (resp.body[:120],))))
    if not resp.header("x-amzn-RequestId"):
        problems.append("no x-amzn-RequestId header")
    ct = resp.header("Content-Type")
    if ct is None or ct.split(";")[0].strip().lower() != JSON_CT:
        problems.append("Content-Type is %r, not %s" % (ct, JSON_CT))
    if resp.json_error:
        problems.append("response body is not JSON: %s: %r" % (resp.json_error, resp.body[:120]))
    elif resp.status != 200 and not problems:
        if not isinstance(resp.json, dict):
            problems.append("error body is not a JSON object: %r" % (resp.body[:120],))
        else:
            message = resp.json.get("message", resp.json.get("Message"))
            if not isinstance(message, str):
                problems.append("error body has no string 'message': %r" % (resp.body[:200],))
            else:
                wanted = expect.get("message_contains", [])
                if isinstance(wanted, str):
                    wanted = [wanted]
                for w in wanted:
                    if w not in message:
                        problems.append("message %r does not contain %r" % (message[:300], w))
    if resp.status == 200 and isinstance(resp.json, dict) and not problems:
        j = resp.json
        if "json_subset" in expect:
            r = subset_mismatch(plain(ctx.resolve(expect["json_subset"])), j)
            if r:
                problems.append("json_subset: " + r)
        target = (req.get("target") or "").rsplit(".", 1)[-1]
        if target == "BatchMeterUsage" and isinstance(req.get("body"), dict) and \
                isinstance(req["body"].get("UsageRecords"), list):
            results = j.get("Results")
            unprocessed = j.get("UnprocessedRecords")
            n_in = len(req["body"]["UsageRecords"])
            if not isinstance(results, list) or not isinstance(unprocessed, list):
                problems.append("Results/UnprocessedRecords missing or not lists")
            else:
                if len(results) + len(unprocessed) != n_in:
                    problems.append("%d records in, %d Results + %d UnprocessedRecords out" % (
                        n_in, len(results), len(unprocessed)))
                for i, r in enumerate(results):
                    st = r.get("Status")
                    rid = r.get("MeteringRecordId")
                    if st not in ("Success", "CustomerNotSubscribed", "DuplicateRecord"):
                        problems.append("Results[%d].Status is %r" % (i, st))
                    if st == "Success" and not (isinstance(rid, str) and rid):
                        problems.append("Results[%d] is Success without MeteringRecordId" % i)
                    if st == "CustomerNotSubscribed" and rid:
                        problems.append("Results[%d] is CustomerNotSubscribed with a "
                                        "MeteringRecordId" % i)
                    ts = (r.get("UsageRecord") or {}).get("Timestamp")
                    if ts is not None and (isinstance(ts, bool) or
                                           not isinstance(ts, (int, float))):
                        problems.append("Results[%d].UsageRecord.Timestamp is not an epoch "
                                        "number: %r" % (i, ts))
        elif target == "MeterUsage":
            rid = j.get("MeteringRecordId")
            if not (isinstance(rid, str) and rid):
                problems.append("200 without MeteringRecordId: %r" % (resp.body[:200],))
    # ledger
    want_delta = expect.get("stored_delta", 0)
    if delta is not None and delta != want_delta:
        problems.append("ledger gained %d rows, expected %d" % (delta, want_delta))
    # record-id relations
    for key, same in (("same_record_id_as_setup", True), ("new_record_id_vs_setup", False)):
        spec = expect.get(key)
        if spec is None:
            continue
        if isinstance(spec, int):
            spec = {"setup": spec}
        s_idx, s_res, res = spec["setup"], spec.get("setup_result", 0), spec.get("result", 0)
        if s_idx >= len(setup_resps) or setup_resps[s_idx] is None:
            problems.append("%s: setup %d has no response" % (key, s_idx))
            continue
        a = record_ids(setup_resps[s_idx])
        b = record_ids(resp)
        a = a[s_res] if s_res < len(a) else None
        b = b[res] if res < len(b) else None
        if not a or not b:
            problems.append("%s: missing MeteringRecordId (setup %r, this %r)" % (key, a, b))
        elif (a == b) != same:
            problems.append("%s: setup id %s, this id %s" % (key, a, b))
    for pair in expect.get("equal_record_ids", []):
        ids = record_ids(resp)
        vals = [ids[i] if i < len(ids) else None for i in pair]
        if not vals[0] or len(set(vals)) != 1:
            problems.append("Results %s should share one MeteringRecordId, got %s" % (pair, vals))
    return problems


# ---------------------------------------------------------------------------------------------
# ledger

class Ledger:
    """Counts the ledger rows that cases write: in the SQLite file of `data_dir` (read-only), or
    in the PostgreSQL database `store_url`; count() is None when neither is known."""

    # Task metering (source RegisterUsage) writes rows on its own when an hour ends during the
    # run; they are not any case's doing.
    SQL = "SELECT COUNT(*) FROM usage_records WHERE source != 'RegisterUsage'"

    def __init__(self, data_dir, store_url=None):
        self.store_url = store_url
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, "meterd.db") if data_dir and not store_url else None

    def count(self):
        if self.store_url:
            return pg_server.query(self.store_url, self.SQL)[0][0]
        if not self.path:
            return None
        if harness.has_ledger(self.data_dir):  # the embedded store: a dump of its ledger
            return harness.query_store(self.data_dir, self.SQL)[0][0]
        if not os.path.exists(self.path):
            return 0
        try:
            con = sqlite3.connect("file:%s?mode=ro" % self.path, uri=True, timeout=10)
            try:
                return con.execute(self.SQL).fetchone()[0]
            finally:
                con.close()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return 0
            raise


# ---------------------------------------------------------------------------------------------
# main loop

class Runner:
    def __init__(self, host, port, ledger, verbose, server=None):
        self.host, self.port, self.ledger, self.verbose = host, port, ledger, verbose
        self.server = server
        self.last_send = 0.0
        self.throttled = 0

    def exchange(self, req, ctx):
        method, path, headers, body, chunked = build_request(
            req, ctx, "%s:%d" % (self.host, self.port))
        for attempt in range(3):
            wait = self.last_send + PACE_SECONDS - time.time()
            if wait > 0:
                time.sleep(wait)
            self.last_send = time.time()
            resp = send(self.host, self.port, method, path, headers, body, chunked)
            if resp.error_type != "ThrottlingException":
                return resp
            self.throttled += 1
            time.sleep(1.5)
            method, path, headers, body, chunked = build_request(
                req, ctx, "%s:%d" % (self.host, self.port))   # re-sign (fresh X-Amz-Date)
        return resp

    def run_case(self, path):
        with open(path) as f:
            case = json.load(f)
        ctx = Context()
        setup_resps = []
        for i, step in enumerate(case.get("setup", [])):
            req = step.get("request", step)
            before = self.ledger.count()
            resp = self.exchange(req, ctx)
            after = self.ledger.count()
            setup_resps.append(resp)
            if "expect" in step:
                delta = None if before is None else after - before
                probs = check_response("setup", req, step["expect"], resp, ctx, delta, setup_resps)
                if probs:
                    return ["setup %d: %s" % (i, p) for p in probs]
            elif resp.error:
                return ["setup %d: no HTTP response (%s)" % (i, resp.error)]
        before = self.ledger.count()
        resp = self.exchange(case["request"], ctx)
        after = self.ledger.count()
        delta = None if before is None else after - before
        if self.verbose:
            print("  %s -> %s %s" % (os.path.basename(path), resp.status,
                                     (resp.body or b"")[:300].decode("utf-8", "replace")))
        return check_response(path, case["request"], case["expect"], resp, ctx, delta,
                              setup_resps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filter", default="", help="only cases whose file name contains this")
    ap.add_argument("--meterd", help="meterd binary (default build/bin/meterd or $METERD_BIN)")
    ap.add_argument("--cases", default=os.path.join(HERE, "cases"))
    ap.add_argument("--endpoint", help="use a running server HOST:PORT instead of starting one "
                    "(ledger checks need --data-dir or --store-url)")
    ap.add_argument("--data-dir", help="data dir of the --endpoint server (for ledger checks)")
    ap.add_argument("--store-url", help="PostgreSQL URL of the --endpoint server's store "
                    "(for ledger checks)")
    ap.add_argument("--pace", type=float, default=0.0,
                    help="seconds between requests (0.11 stays below a throttling server)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    global PACE_SECONDS
    PACE_SECONDS = args.pace

    files = sorted(f for f in glob.glob(os.path.join(args.cases, "*.json"))
                   if args.filter in os.path.basename(f)[:-len(".json")])
    if not files:
        print("no cases match")
        print("0 passed, 0 failed")
        return 1

    server = None
    if args.endpoint:
        host, port = args.endpoint.rsplit(":", 1)
        port = int(port)
        ledger = Ledger(args.data_dir, args.store_url)
    else:
        if args.meterd:
            harness.METERD = os.path.abspath(args.meterd)
        if not os.path.exists(harness.METERD):
            print("meterd binary not found: %s" % harness.METERD)
            print("0 passed, %d failed" % len(files))
            return 1
        server = harness.Meterd(catalog=harness.TEST_CATALOG)
        server.start()
        host, port = "127.0.0.1", server.port
        ledger = Ledger(server.data_dir, harness.store_url(server.data_dir))

    runner = Runner(host, port, ledger, args.verbose, server)
    passed = failed = 0
    try:
        for path in files:
            name = os.path.basename(path)
            try:
                problems = runner.run_case(path)
            except Exception as e:  # a broken case file must not stop the suite
                problems = ["runner error: %s: %s" % (type(e).__name__, e)]
            if server and server.proc and server.proc.poll() is not None:
                problems.append("meterd exited (code %s); restarting it" % server.proc.returncode)
                data_dir = server.data_dir
                server.stop()
                restarted = harness.Meterd(catalog=harness.TEST_CATALOG, data_dir=data_dir)
                restarted._own_dir = True
                restarted.start()
                server = runner.server = restarted
                runner.port = port = restarted.port
            if problems:
                failed += 1
                print("FAIL %s: %s" % (name, "; ".join(problems)))
            else:
                passed += 1
                if args.verbose:
                    print("ok   %s" % name)
    finally:
        if server:
            if failed:
                print("(meterd data dir kept for inspection: %s)" % server.data_dir)
                server.stop()
            else:
                server.cleanup()
    if runner.throttled:
        print("note: %d request(s) were throttled and re-sent" % runner.throttled)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
