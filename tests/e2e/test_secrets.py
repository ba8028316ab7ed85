"""Secrets stay secret. One server is driven through successful and failing metering calls
(wrong signature, unknown and disabled keys, session-token mismatches), admin API creates of
credentials (the secret answered once), imported signing keys (privateKeyPem in a product and in
a new key version) and registration tokens, and through refused admin requests that carry
secrets. Then no credential secret, session token, private key PEM body or the admin token may
appear in the server's stderr, in any metering answer, in any admin read after creation, or in
the answers to refused admin requests; the files that hold secrets must be private (0600, the
keys directory 0700); and the admin API must listen on loopback by default."""
import http.client
import json
import os
import re
import stat
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from e2e_support import (  # noqa: E402
    AMI, CTR, DISABLED, EC2, ECS, GLOBEX_ACCOUNT, GLOBEX_CUSTOMER, METERD, POSTGRESQL, SAAS,
    SELLER, TEMP_EC2, TEST_CATALOG, ServerTestCase, floor_hour)
from meterd_harness import TOKEN_GLOBEX_SAAS  # noqa: E402

ACME_SELLER = "111122223333"
TARGET = "AWSMPMeteringService."


def enc(segment):
    return urllib.parse.quote(segment, safe="")


def new_rsa_private_pem(bits=2048):
    """A fresh unencrypted PKCS#8 RSA private key PEM."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        return subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                               "rsa_keygen_bits:%d" % bits], check=True, capture_output=True,
                              text=True).stdout
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def pem_body_lines(pem):
    """The base64 lines of a PEM (what must never be shown), without the BEGIN/END lines."""
    return [line.strip() for line in pem.splitlines()
            if line.strip() and not line.startswith("-----")]


def catalog_secrets(path):
    """Every secretAccessKey, sessionToken and privateKeyPem value in a catalog file."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("secretAccessKey", "sessionToken", "privateKeyPem") and isinstance(x, str):
                    out.append(("catalog " + k, x))
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    with open(path) as f:
        walk(json.load(f))
    return out


class SecretsTest(ServerTestCase):
    """setUpClass drives the server and records every answer; the tests check the records."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.secrets = catalog_secrets(TEST_CATALOG)   # (label, value)
        cls.metering_answers = []                     # (what, answer text)
        cls.admin_reads = []
        cls.admin_refusals = []
        cls.created = []                              # the answers of creates (secrets once)
        cls.run_id = "%06d" % (int(time.time() * 1000) % 10 ** 6)
        cls.exercise()

    # --- recording helpers -----------------------------------------------------------------
    @classmethod
    def secret(cls, label, value):
        cls.secrets.append((label, value))
        return value

    @classmethod
    def admin_raw(cls, method, path, body=None, token=None, raw=None):
        """(status, answer headers as text, answer body) of one admin request."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn = http.client.HTTPConnection("127.0.0.1", cls.server.admin_port, timeout=60)
        try:
            headers = {"Authorization": "Bearer " + (cls.server.admin_token if token is None
                                                     else token)}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            headers = "".join("%s: %s\n" % kv for kv in resp.getheaders())
            return resp.status, headers, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    @classmethod
    def admin_json(cls, method, path, body=None, expect=200):
        status, _, text = cls.admin_raw(method, path, body)
        if status != expect:
            raise AssertionError("%s %s -> %d (expected %d): %s" % (method, path, status, expect,
                                                                   text))
        return json.loads(text)

    @classmethod
    def refuse(cls, what, method, path, body=None, token=None, raw=None):
        status, headers, text = cls.admin_raw(method, path, body, token=token, raw=raw)
        if status < 400:
            raise AssertionError("%s: expected a refusal, got %d: %s" % (what, status, text))
        cls.admin_refusals.append((what, headers + text))
        return status, text

    @classmethod
    def meter(cls, what, operation, body, creds, session_token=None, sign_secret=None):
        """Sends one signed metering call; records and returns (status, answer text)."""
        data = json.dumps(body)
        req = AWSRequest(method="POST", url="http://127.0.0.1:%d/" % cls.server.port, data=data,
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": TARGET + operation})
        SigV4Auth(Credentials(creds[0], sign_secret or creds[1], session_token),
                  "aws-marketplace", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", cls.server.port, timeout=60)
        try:
            conn.request("POST", "/", body=data.encode(), headers=dict(req.headers.items()))
            resp = conn.getresponse()
            text = "".join("%s: %s\n" % kv for kv in resp.getheaders())
            text += resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        cls.metering_answers.append((what, text))
        return resp.status, text

    # --- what the server is put through ----------------------------------------------------
    @classmethod
    def exercise(cls):
        now = int(time.time())
        hour = floor_hour(now) - 3600
        meter_body = {"ProductCode": AMI, "Timestamp": hour + 1, "UsageDimension": "hosts",
                      "UsageQuantity": 1}
        batch_body = {"ProductCode": SAAS, "UsageRecords": [
            {"Timestamp": hour + 2, "CustomerIdentifier": GLOBEX_CUSTOMER,
             "Dimension": "api_calls", "Quantity": 1}]}
        resolve_body = {"RegistrationToken": TOKEN_GLOBEX_SAAS}

        def ok(result, what):
            if result[0] != 200:
                raise AssertionError("%s: %s" % (what, result[1]))

        # Metering with the catalog's credentials: successes and refusals.
        ok(cls.meter("MeterUsage", "MeterUsage", meter_body, EC2), "MeterUsage")
        ok(cls.meter("BatchMeterUsage", "BatchMeterUsage", batch_body, SELLER), "Batch")
        ok(cls.meter("ResolveCustomer", "ResolveCustomer", resolve_body, SELLER), "Resolve")
        ok(cls.meter("temporary credentials", "MeterUsage", meter_body, TEMP_EC2,
                     session_token=TEMP_EC2[2]), "temporary MeterUsage")
        ok(cls.meter("RegisterUsage", "RegisterUsage",
                     {"ProductCode": CTR, "PublicKeyVersion": 1}, ECS), "RegisterUsage")
        wrong = "wrongSecretKey000000000000000000000000001"
        refusals = [
            ("wrong signature", "MeterUsage", meter_body, EC2, None, wrong),
            ("wrong signature, batch", "BatchMeterUsage", batch_body, SELLER, None, wrong),
            ("unknown key", "MeterUsage", meter_body,
             ("AKIAUNKNOWNKEY000001", "unknownSecretKey000000000000000000000001"), None, None),
            ("disabled key", "MeterUsage", meter_body, DISABLED, None, None),
            ("wrong session token", "MeterUsage", meter_body, TEMP_EC2,
             "FwoGZXIvYXdzEWrongSessionToken0001", None),
            ("missing session token", "MeterUsage", meter_body, TEMP_EC2, None, None),
            ("unexpected session token", "MeterUsage", meter_body, EC2, TEMP_EC2[2], None),
            ("session token with a wrong secret", "MeterUsage", meter_body, TEMP_EC2,
             TEMP_EC2[2], wrong),
            ("unknown registration token", "ResolveCustomer",
             {"RegistrationToken": "no-such-registration-token-0000000000001"}, SELLER, None,
             None),
        ]
        for what, op, body, creds, token, sign_secret in refusals:
            status, text = cls.meter(what, op, body, creds, session_token=token,
                                     sign_secret=sign_secret)
            if status < 400:
                raise AssertionError("%s: expected a refusal, got %d: %s" % (what, status, text))

        # Admin: a credential with a generated secret (answered once), used at once.
        created = cls.admin_json("POST", "/v1/credentials", {"account": ACME_SELLER}, expect=201)
        cls.created.append(("generated credential", created))
        generated = (created["accessKeyId"], cls.secret("generated secret",
                                                         created["secretAccessKey"]))
        ok(cls.meter("generated credential", "ResolveCustomer", resolve_body, generated),
           "generated credential")
        cls.meter("generated credential, wrong secret", "ResolveCustomer", resolve_body,
                  generated, sign_secret=wrong)

        # Admin: temporary credentials with a given secret and session token.
        akid = "ASIASECRETSTEST" + cls.run_id[:5]
        given_secret = cls.secret("given secret", "givenSecretKey" + cls.run_id + "x" * 20)
        session = cls.secret("given session token", "FwoGZXIvYXdzESecretsTestSession" + cls.run_id)
        created = cls.admin_json("POST", "/v1/credentials",
                                 {"account": ACME_SELLER, "accessKeyId": akid,
                                  "secretAccessKey": given_secret, "sessionToken": session},
                                 expect=201)
        cls.created.append(("given credential", created))
        temp = (akid, given_secret)
        ok(cls.meter("given temporary credential", "ResolveCustomer", resolve_body, temp,
                     session_token=session), "given temporary credential")
        cls.meter("given temporary credential, no token", "ResolveCustomer", resolve_body, temp)
        cls.meter("given temporary credential, other token", "ResolveCustomer", resolve_body,
                  temp, session_token=session + "0")

        # Admin: a container product whose version 1 is an imported private key, then a second
        # imported version; both sign RegisterUsage.
        pem1 = new_rsa_private_pem()
        pem2 = new_rsa_private_pem()
        for label, pem in (("imported key 1", pem1), ("imported key 2", pem2)):
            for line in pem_body_lines(pem):
                cls.secret(label + " PEM line", line)
        code = "secctr" + cls.run_id
        cls.product_code = code
        created = cls.admin_json("POST", "/v1/products", {
            "code": code, "seller": ACME_SELLER, "kind": "container",
            "hourlyDimension": "task_hours", "dimensions": [{"name": "task_hours"}],
            "signingKeys": [{"version": 1, "privateKeyPem": pem1}]}, expect=201)
        cls.created.append(("product with an imported key", created))
        cls.admin_json("POST", "/v1/subscriptions", {"account": GLOBEX_ACCOUNT, "product": code},
                       expect=201)
        created = cls.admin_json("POST", "/v1/products/%s/keys" % code, {"privateKeyPem": pem2},
                                 expect=201)
        cls.created.append(("imported key version", created))
        for version in (1, 2):
            ok(cls.meter("RegisterUsage with imported key %d" % version, "RegisterUsage",
                         {"ProductCode": code, "PublicKeyVersion": version}, ECS),
               "RegisterUsage imported %d" % version)

        # Admin: registration tokens issued, resolved, listed and revoked.
        issued = cls.admin_json("POST", "/v1/registration-tokens",
                                {"product": SAAS, "account": GLOBEX_ACCOUNT}, expect=201)
        ok(cls.meter("ResolveCustomer issued token", "ResolveCustomer",
                     {"RegistrationToken": issued["token"]}, SELLER), "issued token")
        cls.admin_json("DELETE", "/v1/registration-tokens/" + enc(issued["token"]))
        cls.meter("ResolveCustomer revoked token", "ResolveCustomer",
                  {"RegistrationToken": issued["token"]}, SELLER)

        # Refused admin requests that carry secrets.
        admin_token = cls.server.admin_token
        refused_secret = cls.secret("refused secret", "refusedSecretKey" + cls.run_id + "y" * 18)
        refused_session = cls.secret("refused session token",
                                     "FwoGZXIvYXdzERefusedSession" + cls.run_id)
        bad_pem = new_rsa_private_pem(1024)  # too small: refused
        for line in pem_body_lines(bad_pem):
            cls.secret("refused key PEM line", line)
        damaged = pem1.replace(pem_body_lines(pem1)[3], pem_body_lines(pem1)[3][::-1])
        cls.refuse("duplicate credential", "POST", "/v1/credentials",
                   {"account": ACME_SELLER, "accessKeyId": akid,
                    "secretAccessKey": refused_secret, "sessionToken": refused_session})
        cls.refuse("credential with an unknown member", "POST", "/v1/credentials",
                   {"account": ACME_SELLER, "secretAccessKey": refused_secret,
                    "sessionToken": refused_session, "colour": "red"})
        cls.refuse("credential of an unknown account", "POST", "/v1/credentials",
                   {"account": "999988887777", "secretAccessKey": refused_secret})
        cls.refuse("credential with a secret of the wrong type", "POST", "/v1/credentials",
                   {"account": ACME_SELLER, "secretAccessKey": [refused_secret],
                    "sessionToken": {"t": refused_session}})
        cls.refuse("malformed JSON around a secret", "POST", "/v1/credentials",
                   raw=('{"account": "%s", "secretAccessKey": "%s", "sessionToken": "%s"'
                        % (ACME_SELLER, refused_secret, refused_session)).encode())
        cls.refuse("invalid UTF-8 after a secret", "POST", "/v1/credentials",
                   raw=('{"secretAccessKey": "%s\xff"}' % refused_secret).encode("latin-1"))
        cls.refuse("key too small", "POST", "/v1/products/%s/keys" % code,
                   {"privateKeyPem": bad_pem})
        cls.refuse("damaged key", "POST", "/v1/products/%s/keys" % code,
                   {"privateKeyPem": damaged})
        cls.refuse("product with a bad key", "POST", "/v1/products", {
            "code": code + "b", "seller": ACME_SELLER, "kind": "container",
            "hourlyDimension": "task_hours", "dimensions": [{"name": "task_hours"}],
            "signingKeys": [{"version": 1, "privateKeyPem": bad_pem}]})
        cls.refuse("apply with a bad credential", "POST", "/v1/apply", {
            "credentials": [{"accessKeyId": "AKIASECRETSAPPLY0001",
                             "secretAccessKey": refused_secret, "account": "999988887777"}]})
        cls.refuse("wrong admin token", "GET", "/v1/catalog", token=admin_token[::-1])
        cls.refuse("admin token with a suffix", "GET", "/v1/catalog", token=admin_token + "x")
        cls.refuse("a secret as the admin token", "GET", "/v1/credentials", token=refused_secret)

        # A secret replaced by PATCH is not answered either.
        patched = cls.secret("patched secret", "patchedSecretKey" + cls.run_id + "z" * 18)
        status, headers, text = cls.admin_raw("PATCH", "/v1/credentials/" + enc(akid),
                                              {"secretAccessKey": patched})
        if status != 200:
            raise AssertionError("PATCH secretAccessKey -> %d: %s" % (status, text))
        cls.admin_reads.append(("PATCH secretAccessKey", headers + text))

        # Admin reads after creation.
        paths = ["/v1/status", "/v1/catalog", "/v1/credentials", "/v1/products",
                 "/v1/products/" + code, "/v1/products/%s/keys" % code,
                 "/v1/products/%s/keys/1" % code, "/v1/products/%s/keys/2" % code,
                 "/v1/products/%s/jwks" % code, "/v1/products/" + CTR,
                 "/v1/products/%s/keys" % CTR, "/v1/registration-tokens", "/v1/settings",
                 "/v1/accounts", "/v1/workloads", "/v1/subscriptions"]
        paths += ["/v1/credentials/" + enc(c["accessKeyId"])
                  for c in cls.admin_json("GET", "/v1/credentials")]
        for path in paths:
            status, headers, text = cls.admin_raw("GET", path)
            if status != 200:
                raise AssertionError("GET %s -> %d: %s" % (path, status, text))
            cls.admin_reads.append(("GET " + path, headers + text))

        # The private keys meterd generated itself (DATA/keys) are secrets too.
        keys_dir = os.path.join(cls.server.data_dir, "keys")
        for name in os.listdir(keys_dir):
            with open(os.path.join(keys_dir, name)) as f:
                for line in pem_body_lines(f.read()):
                    cls.secret("DATA/keys/%s PEM line" % name, line)
        cls.secret("admin token", admin_token)
        cls.read_audit_trail()

    @classmethod
    def read_audit_trail(cls):
        """The whole audit trail (D17), once every event of the calls above is committed: the
        lookup answers page by page, the export, and meterctl's export."""
        last = None
        for _ in range(100):
            stats = cls.admin_json("GET", "/v1/audit")
            if stats == last:
                break
            last = stats
            time.sleep(0.2)
        cls.audit_texts = []
        query = "limit=1000"
        while True:
            status, headers, text = cls.admin_raw("GET", "/v1/audit/events?" + query)
            if status != 200:
                raise AssertionError("GET /v1/audit/events -> %d: %s" % (status, text))
            cls.audit_texts.append(("audit lookup", text))
            cursor = json.loads(text).get("nextCursor")
            if not cursor:
                break
            query = "limit=1000&cursor=" + cursor
        status, headers, text = cls.admin_raw("GET", "/v1/audit/export?format=jsonl")
        cls.audit_texts.append(("audit export", headers + text))
        cls.audit_texts.append(("meterctl audit export",
                                cls.server.meterctl("audit", "export").stdout))

    @classmethod
    def tearDownClass(cls):
        # Stopped first, so that what meterd prints on its way out is checked too.
        server = getattr(cls, "server", None)
        try:
            if server is not None:
                server.stop()
                problem = cls.log_problem(server)
                if problem:
                    raise AssertionError("after stop: " + problem)
        finally:
            super().tearDownClass()

    @classmethod
    def log_problem(cls, server):
        """What is wrong with the server's stderr log, or None."""
        with open(server.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        if not log.strip():
            return "empty stderr log"
        # The one documented exception (docs/CONTROL-PLANE.md): a newly created admin token is
        # printed once on stderr at first start. It must be that line alone, shown once.
        lines = log.splitlines()
        announce = [line for line in lines if line.startswith("meterd: new admin API token")]
        if len(announce) > 1:
            return "the admin token was announced %d times" % len(announce)
        rest = "\n".join(line for line in lines if line not in announce)
        for label, value in cls.secrets:
            if value in rest:
                return "%s appears in the server's stderr:\n%s" % (label, log[:3000])
        if "PRIVATE KEY" in log:
            return "a private key appears in the server's stderr"
        return None

    # --- checks --------------------------------------------------------------------------------
    def assertNoSecret(self, where, text):
        for label, value in self.secrets:
            self.assertNotIn(value, text, "%s: %s appears in\n%s" % (where, label, text[:3000]))

    def test_metering_answers_carry_no_secret(self):
        self.assertGreater(len(self.metering_answers), 20)
        for what, text in self.metering_answers:
            with self.subTest(call=what):
                self.assertNoSecret("metering answer (%s)" % what, text)

    def test_the_secret_of_a_created_credential_is_answered_once(self):
        generated = dict(self.secrets)["generated secret"]
        self.assertEqual(self.created[0][1]["secretAccessKey"], generated)
        for what, answer in self.created:
            with self.subTest(create=what):
                self.assertNotIn("sessionToken", json.dumps(answer))
                self.assertNotIn("privateKeyPem", json.dumps(answer))
                self.assertNotIn("PRIVATE KEY", json.dumps(answer))

    def test_admin_reads_after_creation_carry_no_secret(self):
        self.assertGreater(len(self.admin_reads), 15)
        for what, text in self.admin_reads:
            with self.subTest(read=what):
                self.assertNoSecret(what, text)
                self.assertNotIn("PRIVATE KEY", text)
                self.assertNotRegex(text, r'"(secretAccessKey|sessionToken|privateKeyPem)"')

    def test_refused_admin_requests_do_not_echo_secrets(self):
        self.assertGreater(len(self.admin_refusals), 10)
        for what, text in self.admin_refusals:
            with self.subTest(refusal=what):
                self.assertNoSecret("refused admin request (%s)" % what, text)
                self.assertNotIn("PRIVATE KEY", text)

    def test_audit_trail_carries_no_secret(self):
        events = [json.loads(line) for line in self.audit_texts[-1][1].splitlines()]
        # Every metering call and every admin change is there, refused ones too.
        self.assertGreaterEqual(len([e for e in events if e["eventSource"] == "meterd-admin"]),
                                len(self.admin_refusals) - 3 + len(self.created))
        self.assertGreaterEqual(len([e for e in events if e["eventSource"] != "meterd-admin"]),
                                len(self.metering_answers))
        for what, text in self.audit_texts:
            with self.subTest(read=what):
                self.assertNoSecret(what, text)
                self.assertNotIn("PRIVATE KEY", text)
                self.assertNotIn("Signature=", text)
                self.assertNotRegex(text, r'"(secretAccessKey|sessionToken|privateKeyPem)"')

    def test_server_log_carries_no_secret(self):
        self.assertIsNone(self.log_problem(self.server))

    def test_files_holding_secrets_are_private(self):
        data = self.server.data_dir

        def mode(path):
            return stat.S_IMODE(os.stat(path).st_mode)
        # The embedded store's files (every file of DATA/ledger/) or the SQLite store's; a
        # PostgreSQL store keeps the ledger in its database.
        ledger_dir = os.path.join(data, "ledger")
        if POSTGRESQL:
            store_files = []
        elif os.path.isdir(ledger_dir):
            self.assertEqual(mode(ledger_dir), 0o700, "DATA/ledger has mode %o" % mode(ledger_dir))
            store_files = [os.path.join("ledger", n) for n in sorted(os.listdir(ledger_dir))]
            self.assertTrue(any(n.endswith(".log") for n in store_files), store_files)  # the WAL
        else:
            store_files = ["meterd.db", "meterd.db-wal", "meterd.db-shm"]
        files = [os.path.join(data, n) for n in store_files + ["admin-token"]]
        keys_dir = os.path.join(data, "keys")
        files += [os.path.join(keys_dir, n) for n in sorted(os.listdir(keys_dir))]
        self.assertGreaterEqual(len(files), len(store_files) + 1 + 5, files)  # CTR's 3, ours 2
        for path in files:
            with self.subTest(path=os.path.relpath(path, data)):
                self.assertTrue(os.path.exists(path), path)
                self.assertEqual(mode(path), 0o600, "%s has mode %o" % (path, mode(path)))
        self.assertEqual(mode(keys_dir), 0o700, "DATA/keys has mode %o" % mode(keys_dir))
        # Anything else meterd created in the data directory is private too.
        for name in os.listdir(data):
            path = os.path.join(data, name)
            if name == "meterd.stderr.log":  # the test harness's file
                continue
            with self.subTest(path=name):
                self.assertEqual(mode(path) & 0o077, 0, "%s has mode %o" % (path, mode(path)))


class AdminListenerDefaultTest(unittest.TestCase):
    def test_admin_api_listens_on_loopback_by_default(self):
        if not os.access(METERD, os.X_OK):
            self.skipTest("meterd binary not built: %s" % METERD)
        p = subprocess.run([METERD, "serve", "--help"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        line = re.search(r"--admin-listen[^\n]*(\n\s{10,}[^\n-][^\n]*)*", p.stdout)
        self.assertIsNotNone(line, p.stdout)
        self.assertIn("127.0.0.1:8081", line.group(0), p.stdout)
        self.assertNotIn("0.0.0.0", p.stdout)


if __name__ == "__main__":
    unittest.main()
