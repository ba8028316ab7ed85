"""Shared helpers for the end-to-end tests: servers, real clients, time slots, assertions.

Every test talks to a real meterd binary (tests/lib/meterd_harness.py) through a real client:
boto3 (the machine's botocore, newest model), AWS CLI v1 (same botocore) and AWS CLI v2
(Debian's /usr/bin/aws, an older model). Nothing here speaks the wire protocol by hand.
"""
import atexit
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
LIB = os.path.join(REPO, "tests", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import meterd_harness as H  # noqa: E402
from meterd_harness import (  # noqa: E402,F401
    AGENTCORE, CA_LICENSE, DISABLED, EC2, ECS, EKS_WEST, EXAMPLE_CATALOG, EXPIRED_LICENSE,
    INITECH_EC2, INITECH_LICENSE, METERD, OTHER_PRODUCT_LICENSE, OTHER_SELLER, SELLER, TEMP_EC2,
    TEST_CATALOG, Meterd)

import boto3  # noqa: E402
import botocore  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

# --- catalog facts (tests/fixtures/catalog.test.json) ---------------------------------------
GLOBEX_ACCOUNT = "444455556666"
GLOBEX_CUSTOMER = "cust-globex-0001"
INITECH_ACCOUNT = "777788889999"
INITECH_CUSTOMER = "cust-initech-0002"       # unsubscribed from acmesaas01
UMBRELLA_CUSTOMER = "cust-umbrella-0003"     # unsubscribe-pending, within the 1 h grace
HOOLI_CUSTOMER = "cust-hooli-0004"           # unsubscribe-pending since 2020: grace over
SAAS = "acmesaas01"                          # legacy SaaS: api_calls, storage_gb
SAAS_CA = "acmesaasca1"                      # concurrent-agreements SaaS: seats
AMI = "acmeami001"                           # hosts, vcpu_hours
CTR = "acmectr001"                           # task_hours, nodes, invocations
OTHER_SAAS = "othersaas01"                   # SaaS of another seller
UNKNOWN_LICENSE = ("arn:aws:license-manager::294406891311:license:"
                   "l-99999999999999999999999999unknown")

# --- isolate every client from the machine's AWS configuration -------------------------------
_AWS_HOME = tempfile.mkdtemp(prefix="meterd-e2e-aws-")
atexit.register(shutil.rmtree, _AWS_HOME, True)
AWS_CONFIG_FILE = os.path.join(_AWS_HOME, "config")
AWS_CREDENTIALS_FILE = os.path.join(_AWS_HOME, "credentials")
with open(AWS_CONFIG_FILE, "w") as f:
    f.write("[default]\n")
with open(AWS_CREDENTIALS_FILE, "w") as f:
    f.write("")
for _k in list(os.environ):
    if _k.startswith("AWS_"):
        del os.environ[_k]
os.environ["AWS_CONFIG_FILE"] = AWS_CONFIG_FILE
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = AWS_CREDENTIALS_FILE
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def require_binary():
    if not os.access(METERD, os.X_OK):
        raise unittest.SkipTest("meterd binary not built: %s (run the build first)" % METERD)


# --- time ------------------------------------------------------------------------------------
UTC = datetime.timezone.utc


def dt(epoch):
    """Aware UTC datetime for an epoch second (what botocore sends as an integer)."""
    return datetime.datetime.fromtimestamp(int(epoch), UTC)


def iso(epoch):
    return dt(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s):
    return int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def floor_hour(epoch):
    return int(epoch) // 3600 * 3600


def to_epoch(value):
    """Epoch seconds of a timestamp as a client printed or parsed it (number, ISO string, datetime)."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value)
    try:
        return float(s)
    except ValueError:
        pass
    s = s.replace("Z", "+00:00")
    d = datetime.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


def _month_start(epoch):
    d = dt(epoch)
    return int(datetime.datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


class Slots:
    """Hands out distinct UTC hours so that tests sharing a server never share a dedup key.

    A pool is one dedup space (e.g. customer+dimension for BatchMeterUsage, or
    workload+product+dimension for MeterUsage). Hours are absolute, so a run that crosses an hour
    boundary still never hands out the same hour twice.
    """

    def __init__(self):
        self.used = {}

    def batch_hour(self, pool):
        """A past UTC hour (start) inside BatchMeterUsage's window (D1: < 24 h, current month)."""
        now = time.time()
        used = self.used.setdefault(pool, set())
        for k in range(1, 23):
            h = floor_hour(now) - 3600 * k
            if h in used:
                continue
            in_month = h >= _month_start(now)
            grace = now < _month_start(now) + 6 * 3600
            if not (in_month or grace):
                break
            used.add(h)
            return h
        raise unittest.SkipTest("no free BatchMeterUsage hour left in the current month for %s" % pool)

    def meter_hour(self, pool):
        """A completed UTC hour (start) at most 5 h ago: inside MeterUsage's 6 h window."""
        now = time.time()
        used = self.used.setdefault(pool, set())
        for k in range(1, 5):
            h = floor_hour(now) - 3600 * k
            if h not in used:
                used.add(h)
                return h
        raise unittest.SkipTest("no free MeterUsage hour left for %s" % pool)


# --- records ---------------------------------------------------------------------------------
def record(ts, dimension="api_calls", quantity=1, customer=GLOBEX_CUSTOMER, account=None,
           license_arn=None, allocations=None, omit_quantity=False):
    """A boto3 UsageRecord. ts is epoch seconds (whole seconds: botocore truncates)."""
    r = {"Timestamp": dt(ts), "Dimension": dimension}
    if customer is not None:
        r["CustomerIdentifier"] = customer
    if account is not None:
        r["CustomerAWSAccountId"] = account
    if license_arn is not None:
        r["LicenseArn"] = license_arn
    if not omit_quantity:
        r["Quantity"] = quantity
    if allocations is not None:
        r["UsageAllocations"] = allocations
    return r


def tags(*pairs):
    return [{"Key": k, "Value": v} for k, v in pairs]


def new_token():
    return str(uuid.uuid4())


# --- base class ------------------------------------------------------------------------------
class ServerTestCase(unittest.TestCase):
    """One meterd per TestCase class."""

    catalog = TEST_CATALOG
    extra_args = ()
    throttle = False  # True: the server throttles (D14), as it does by default
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        require_binary()
        cls.server = Meterd(catalog=cls.catalog, extra_args=list(cls.extra_args),
                            throttle=cls.throttle)
        cls.server.start()
        cls.slots = Slots()
        cls._clients = {}

    @classmethod
    def tearDownClass(cls):
        srv = getattr(cls, "server", None)
        if srv is not None:
            srv.cleanup()

    @property
    def endpoint(self):
        return self.server.endpoint

    # boto3 ------------------------------------------------------------------------------
    @classmethod
    def client(cls, creds, region="us-east-1", token=True, max_attempts=1, endpoint=None, **cfg):
        """A boto3 meteringmarketplace client. token=False drops the session token of temporary
        credentials; token="..." sends that token instead."""
        session_token = None
        if token is True and len(creds) > 2:
            session_token = creds[2]
        elif isinstance(token, str):
            session_token = token
        endpoint = endpoint or cls.server.endpoint
        key = (creds[0], creds[1], session_token, region, max_attempts, endpoint,
               tuple(sorted(cfg.items())))
        c = cls._clients.get(key)
        if c is None:
            config = Config(retries={"max_attempts": max_attempts, "mode": "standard"},
                            connect_timeout=10, read_timeout=60, **cfg)
            c = boto3.session.Session().client(
                "meteringmarketplace", endpoint_url=endpoint, region_name=region,
                aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                aws_session_token=session_token, config=config)
            cls._clients[key] = c
        return c

    def seller(self, region="us-east-1"):
        return self.client(SELLER, region)

    def batch(self, records, product=SAAS, creds=SELLER, region="us-east-1"):
        kw = {"UsageRecords": records}
        if product is not None:
            kw["ProductCode"] = product
        out = self.client(creds, region).batch_meter_usage(**kw)
        self.assertRequestId(out)
        self.assertEqual(out.get("UnprocessedRecords"), [], out)
        self.assertEqual(len(out["Results"]), len(records), out)
        return out

    def meter(self, creds=EC2, product=AMI, dimension="hosts", ts=None, quantity=1,
              region="us-east-1", token=True, **extra):
        kw = {"ProductCode": product, "UsageDimension": dimension, "Timestamp": dt(ts)}
        if quantity is not None:
            kw["UsageQuantity"] = quantity
        kw.update(extra)
        out = self.client(creds, region, token=token).meter_usage(**kw)
        self.assertRequestId(out)
        self.assertTrue(out.get("MeteringRecordId"), out)
        return out["MeteringRecordId"]

    # assertions --------------------------------------------------------------------------
    def assertRequestId(self, response):
        md = response["ResponseMetadata"]
        self.assertTrue(md.get("RequestId"), "no RequestId in %r" % md)
        headers = {k.lower(): v for k, v in md.get("HTTPHeaders", {}).items()}
        self.assertTrue(headers.get("x-amzn-requestid"), "no x-amzn-RequestId header: %r" % headers)

    def assertClientError(self, code, fn, status=None, **kwargs):
        """Call fn(**kwargs); it must raise a ClientError with this code (and HTTP status)."""
        with self.assertRaises(ClientError, msg="expected %s" % code) as cm:
            out = fn(**kwargs)
            self.fail("expected %s, got success %r" % (code, out))
        resp = cm.exception.response
        self.assertEqual(resp["Error"]["Code"], code, resp)
        if status is not None:
            self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], status, resp)
        self.assertTrue(resp["ResponseMetadata"].get("RequestId"), "error without RequestId: %r" % resp)
        self.assertTrue(resp["Error"].get("Message"), "error without message: %r" % resp)
        return resp

    def assertBatchError(self, code, records, product=SAAS, creds=SELLER, region="us-east-1",
                         status=400):
        kw = {"UsageRecords": records}
        if product is not None:
            kw["ProductCode"] = product
        return self.assertClientError(code, self.client(creds, region).batch_meter_usage,
                                      status=status, **kw)

    def assertMeterError(self, code, creds=EC2, product=AMI, dimension="hosts", ts=None,
                         quantity=1, region="us-east-1", token=True, status=400, **extra):
        kw = {"ProductCode": product, "UsageDimension": dimension, "Timestamp": dt(ts)}
        if quantity is not None:
            kw["UsageQuantity"] = quantity
        kw.update(extra)
        return self.assertClientError(code, self.client(creds, region, token=token).meter_usage,
                                      status=status, **kw)

    def assertEcho(self, result, sent):
        """The result echoes the submitted UsageRecord (Timestamp as the same instant)."""
        echo = result["UsageRecord"]
        self.assertIsInstance(echo["Timestamp"], datetime.datetime, echo)
        self.assertEqual(echo["Timestamp"], sent["Timestamp"], echo)
        for k in ("Dimension", "CustomerIdentifier", "CustomerAWSAccountId", "LicenseArn",
                  "UsageAllocations"):
            if k in sent:
                self.assertEqual(echo.get(k), sent[k], "member %s: %r vs %r" % (k, echo, sent))
        self.assertEqual(echo.get("Quantity", 0), sent.get("Quantity", 0), echo)


class OwnDataDirTestCase(ServerTestCase):
    """No class-wide server: each test starts (and restarts) its own servers on a data dir it
    owns, `self.data_dir`, and may write derived catalogs to `self.work_dir`."""

    data_dir_prefix = "meterd-e2e-"

    @classmethod
    def setUpClass(cls):
        require_binary()
        cls.server = None
        cls._clients = {}

    def setUp(self):
        self.slots = Slots()
        self.data_dir = tempfile.mkdtemp(prefix=self.data_dir_prefix + "data-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.addCleanup(H.forget_store, self.data_dir)  # PostgreSQL: its database (runs first)
        self.work_dir = tempfile.mkdtemp(prefix=self.data_dir_prefix + "catalog-")
        self.addCleanup(shutil.rmtree, self.work_dir, True)


def find_result(results, sent):
    """The UsageRecordResult whose echo matches the sent record (order is not relied on)."""
    keys = ("CustomerIdentifier", "CustomerAWSAccountId", "LicenseArn", "Dimension")
    for r in results:
        e = r.get("UsageRecord", {})
        if all(e.get(k) == sent.get(k) for k in keys) and e.get("Timestamp") == sent["Timestamp"] \
                and e.get("Quantity", 0) == sent.get("Quantity", 0):
            return r
    raise AssertionError("no result for %r in %r" % (sent, results))


# --- AWS CLI ---------------------------------------------------------------------------------
_CLI_CACHE = {}


def _cli_version(exe):
    try:
        p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120,
                           env=_cli_base_env())
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (p.stdout + p.stderr).strip()


def _cli_candidates():
    seen = []
    for c in [os.path.join(os.path.dirname(sys.executable), "aws"), shutil.which("aws")] + \
            [os.path.join(d, "aws") for d in os.environ.get("PATH", "").split(os.pathsep) if d]:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            c = os.path.abspath(c)
            if c not in seen:
                seen.append(c)
    return seen


def find_cli_v1():
    """The AWS CLI v1 (aws-cli/1.x on the machine Python), or None."""
    if "v1" not in _CLI_CACHE:
        _CLI_CACHE["v1"] = None
        for c in _cli_candidates():
            if c == "/usr/bin/aws" or os.path.realpath(c) == os.path.realpath("/usr/bin/aws"):
                continue
            if _cli_version(c).startswith("aws-cli/1."):
                _CLI_CACHE["v1"] = c
                break
    return _CLI_CACHE["v1"]


def find_cli_v2():
    """Debian's AWS CLI v2 at /usr/bin/aws, or None."""
    if "v2" not in _CLI_CACHE:
        _CLI_CACHE["v2"] = None
        exe = "/usr/bin/aws"
        if os.path.isfile(exe) and _cli_version(exe).startswith("aws-cli/2."):
            _CLI_CACHE["v2"] = exe
    return _CLI_CACHE["v2"]


def _cli_base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_CONFIG_FILE": AWS_CONFIG_FILE,
        "AWS_SHARED_CREDENTIALS_FILE": AWS_CREDENTIALS_FILE,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    })
    return env


class CliResult:
    def __init__(self, cmd, proc):
        self.cmd = cmd
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.json = None
        if self.rc == 0 and self.stdout.strip():
            self.json = json.loads(self.stdout)

    def __repr__(self):
        return "CLI rc=%s\nstdout=%s\nstderr=%s" % (self.rc, self.stdout, self.stderr)


class CliTestCase(ServerTestCase):
    """Base for CLI tests; subclasses set cli_major (1 or 2)."""

    cli_major = None

    @classmethod
    def setUpClass(cls):
        exe = find_cli_v1() if cls.cli_major == 1 else find_cli_v2()
        if exe is None:
            if cls.cli_major == 1:
                raise unittest.SkipTest("AWS CLI v1 (aws-cli/1.x) not found next to %s or on PATH"
                                        % sys.executable)
            raise unittest.SkipTest("AWS CLI v2 not installed at /usr/bin/aws "
                                    "(Debian package awscli; the Makefile installs it in CI)")
        cls.cli = exe
        super().setUpClass()

    @property
    def error_rc(self):
        return 255 if self.cli_major == 1 else 254

    def aws(self, operation, params, creds=SELLER, region="us-east-1", token=True, extra=()):
        env = _cli_base_env()
        env.update({
            "AWS_ACCESS_KEY_ID": creds[0],
            "AWS_SECRET_ACCESS_KEY": creds[1],
            "AWS_DEFAULT_REGION": region,
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
        })
        if token is True and len(creds) > 2:
            env["AWS_SESSION_TOKEN"] = creds[2]
        elif isinstance(token, str):
            env["AWS_SESSION_TOKEN"] = token
        cmd = [self.cli, "meteringmarketplace", operation, "--endpoint-url", self.endpoint,
               "--output", "json"]
        if params is not None:
            cmd += ["--cli-input-json", json.dumps(params)]
        cmd += list(extra)
        if self.cli_major == 2:
            cmd.append("--no-cli-pager")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
        return CliResult(cmd, proc)

    def aws_ok(self, operation, params, **kw):
        r = self.aws(operation, params, **kw)
        self.assertEqual(r.rc, 0, r)
        self.assertIsNotNone(r.json, r)
        return r.json

    def aws_error(self, code, operation, params, **kw):
        r = self.aws(operation, params, **kw)
        self.assertEqual(r.rc, self.error_rc, r)
        self.assertIn("An error occurred (%s)" % code, r.stderr, r)
        return r


def cli_record(ts, dimension="api_calls", quantity=1, customer=GLOBEX_CUSTOMER, account=None,
               license_arn=None, allocations=None):
    r = {"Timestamp": iso(ts), "Dimension": dimension, "Quantity": quantity}
    if customer is not None:
        r["CustomerIdentifier"] = customer
    if account is not None:
        r["CustomerAWSAccountId"] = account
    if license_arn is not None:
        r["LicenseArn"] = license_arn
    if allocations is not None:
        r["UsageAllocations"] = allocations
    return r


# --- storage inspection ----------------------------------------------------------------------
# The store of a data dir, on either backend ($METERD_STORE_BACKEND; tests/lib/meterd_harness.py):
# SQL that SQLite and PostgreSQL both accept, `?` placeholders. The running server's files are
# never touched (SQLite: a private copy of the db).
query_store = H.query_store
STORE_BACKEND = H.STORE_BACKEND
POSTGRESQL = H.POSTGRESQL


def sqlite_only(why):
    """Decorator: the test (or class) is about the SQLite store itself; skipped on PostgreSQL
    with `why`."""
    return unittest.skipIf(POSTGRESQL, "SQLite store only: " + why)


def ledger_snapshot(data_dir):
    """(row count of usage_records, {column: set(values)}), read from the store."""
    cols, rows = H.query_store_with_columns(data_dir, "SELECT * FROM usage_records")
    values = {c: {row[i] for row in rows} for i, c in enumerate(cols)}
    return len(rows), values
