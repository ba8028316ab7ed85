"""The admin API (docs/CONTROL-PLANE.md, docs/admin-api.openapi.yaml) against the real meterd
binary: bearer authentication, every resource created, changed, listed and removed, each change
seen by the very next metering call of a real boto3 client, bad input that changes nothing,
durability across restarts (also without --catalog), declarative apply, and the OpenAPI document
checked against the route table and against real answers."""
import contextlib
import datetime
import itertools
import json
import os
import random
import re
import stat
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (OwnDataDirTestCase, ServerTestCase,   # noqa: E402
    AMI, CTR, EC2, ECS, EXAMPLE_CATALOG, GLOBEX_ACCOUNT, GLOBEX_CUSTOMER, REPO, SAAS, SAAS_CA,
    SELLER, STORE_BACKEND, TEMP_EC2, TEST_CATALOG, Meterd, dt, query_store)
from meterd_harness import TOKEN_GLOBEX_SAAS  # noqa: E402

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

# RegisterUsage tokens are verified independently of meterd, with PyJWT and cryptography (in
# Debian's /usr/bin/python3 when the machine python lacks them), as test_register_usage does.
from test_register_usage import require_jwt_python, verify, verify_many  # noqa: E402

try:
    import yaml  # noqa: E402
except ImportError:  # pragma: no cover
    yaml = None

ACME_SELLER = "111122223333"
OPENAPI = os.path.join(REPO, "docs", "admin-api.openapi.yaml")
CONTROL_PLANE_MD = os.path.join(REPO, "docs", "CONTROL-PLANE.md")

# A business time for the servers on the manual test clock (mid-month: no month-end grace).
T0_ISO = "2026-11-17T12:00:00Z"

SAAS_ANSWER = {"CustomerIdentifier": GLOBEX_CUSTOMER, "ProductCode": SAAS,
               "CustomerAWSAccountId": GLOBEX_ACCOUNT}


# --- helpers shared with test_meterctl.py and test_clock_and_faults.py --------------------------
def enc(segment):
    """A path segment, percent-encoded (an ECS task ARN contains '/', a license ARN ':')."""
    return urllib.parse.quote(segment, safe="")


def parse_time(text):
    """Epoch seconds (float) of an ISO 8601 UTC time, with or without fractional seconds."""
    s = text.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()


def raw_request(server, method, path, body=None, headers=None, authorization=True):
    """(status, lower-case headers, body bytes) of one admin API request. authorization=True
    sends the server's bearer token; a string sends that Authorization header; None sends none."""
    req = urllib.request.Request(server.admin_endpoint + path, data=body, method=method)
    if authorization is True:
        req.add_header("Authorization", "Bearer " + server.admin_token)
    elif isinstance(authorization, str):
        req.add_header("Authorization", authorization)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def boto_client(endpoint, creds, region="us-east-1", attempts=1, **retries):
    """A boto3 meteringmarketplace client in botocore's standard retry mode, making exactly
    `attempts` attempts in all; or, given `retries` (e.g. max_attempts=10), with those."""
    r = {"mode": "standard"}
    if retries:
        r.update(retries)
    else:
        r["total_max_attempts"] = attempts
    session_token = creds[2] if len(creds) > 2 else None
    return boto3.session.Session().client(
        "meteringmarketplace", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
        aws_session_token=session_token,
        config=Config(retries=r, connect_timeout=10, read_timeout=60))


_IDS = itertools.count(random.Random(os.getpid()).randrange(10 ** 6, 9 * 10 ** 6) * 1000)


def new_account_id():
    """A 12-digit account id that no catalog fixture uses."""
    return "5%011d" % next(_IDS)


class AdminMixin:
    """Admin API helpers for ServerTestCase subclasses (self.server is a Meterd)."""

    def api(self, method, path, body=None, status=None, raw=None):
        st, js = self.server.admin(method, path, body, raw=raw)
        if status is not None:
            self.assertEqual(st, status, "%s %s -> %s %r" % (method, path, st, js))
        return js

    def api_error(self, method, path, body=None, status=400, code="InvalidArgument", raw=None):
        js = self.api(method, path, body, status=status, raw=raw)
        self.assertIsInstance(js, dict, js)
        self.assertEqual(js.get("code"), code, js)
        self.assertIsInstance(js.get("message"), str, js)
        self.assertTrue(js["message"], js)
        return js

    def catalog_raw(self):
        st, _, body = raw_request(self.server, "GET", "/v1/catalog")
        self.assertEqual(st, 200, body[:300])
        return body

    def catalog_version(self):
        return self.api("GET", "/v1/status", status=200)["catalogVersion"]

    @contextlib.contextmanager
    def assertNothingChanged(self):
        before = (self.catalog_raw(), self.catalog_version())
        yield
        after = (self.catalog_raw(), self.catalog_version())
        self.assertEqual(after[1], before[1], "catalogVersion changed")
        self.assertEqual(after[0], before[0], "GET /v1/catalog changed")

    def clock_now(self):
        """Business time now (epoch seconds, whole)."""
        return int(parse_time(self.api("GET", "/v1/clock", status=200)["now"]))

    def advance(self, seconds):
        return self.api("POST", "/v1/clock/advance", {"seconds": seconds}, status=200)

    def new_buyer(self, name="admin test buyer"):
        """A new buyer account with a customerIdentifier: (account id, customer identifier)."""
        account = new_account_id()
        customer = "cust-admin-" + account
        self.api("POST", "/v1/accounts", {"id": account, "name": name, "roles": ["buyer"],
                                          "customerIdentifier": customer}, status=201)
        return account, customer

    def issue_token(self, product=SAAS, account=GLOBEX_ACCOUNT, license_arn=None):
        body = {"product": product, "account": account}
        if license_arn is not None:
            body["licenseArn"] = license_arn
        return self.api("POST", "/v1/registration-tokens", body, status=201)

    def boto(self, creds=SELLER, region="us-east-1", attempts=1):
        key = ("admin-boto", creds, region, attempts, self.server.endpoint)
        c = self._clients.get(key)
        if c is None:
            c = boto_client(self.server.endpoint, creds, region, attempts)
            self._clients[key] = c
        return c

    def batch_results(self, records, product=SAAS, creds=SELLER, region="us-east-1"):
        """Results of one BatchMeterUsage call: [(Status, echoed dimension)]."""
        out = self.boto(creds, region).batch_meter_usage(ProductCode=product,
                                                         UsageRecords=records)
        self.assertEqual(out.get("UnprocessedRecords"), [], out)
        self.assertEqual(len(out["Results"]), len(records), out)
        return [r["Status"] for r in out["Results"]]

    def assertBotoError(self, code, fn, status=None, **kwargs):
        with self.assertRaises(ClientError, msg="expected %s" % code) as cm:
            out = fn(**kwargs)
            self.fail("expected %s, got success %r" % (code, out))
        resp = cm.exception.response
        self.assertEqual(resp["Error"]["Code"], code, resp)
        if status is not None:
            self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], status, resp)
        return resp

    def resolve(self, token, creds=SELLER, region="us-east-1"):
        out = self.boto(creds, region).resolve_customer(RegistrationToken=token)
        return {k: v for k, v in out.items() if k != "ResponseMetadata"}


def rec(ts, customer, dimension="api_calls", quantity=1):
    return {"Timestamp": dt(ts), "CustomerIdentifier": customer, "Dimension": dimension,
            "Quantity": quantity}


def all_keys(value):
    """Every object member name at any depth of a JSON value."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            out |= all_keys(v)
    elif isinstance(value, list):
        for v in value:
            out |= all_keys(v)
    return out


SECRET_MEMBERS = {"secretAccessKey", "sessionToken", "privateKeyPem"}


# =============================================================================================
class AdminAuthTests(AdminMixin, ServerTestCase):
    """Authorization: Bearer <DATA/admin-token>, compared in constant time."""

    def test_missing_authorization_is_401_with_www_authenticate(self):
        for method, path in (("GET", "/v1/status"), ("GET", "/v1/catalog"),
                             ("GET", "/v1/no-such-route"), ("DELETE", "/v1/accounts/x")):
            with self.subTest(method=method, path=path):
                st, headers, body = raw_request(self.server, method, path, authorization=None)
                self.assertEqual(st, 401, body)
                js = json.loads(body)
                self.assertEqual(js.get("code"), "Unauthorized", js)
                self.assertTrue(js.get("message"), js)
                self.assertIn("www-authenticate", headers, headers)
                self.assertTrue(headers["www-authenticate"].startswith("Bearer"), headers)

    def test_wrong_tokens_are_401(self):
        right = self.server.admin_token
        same_length = "".join("0" if c != "0" else "1" for c in right)
        self.assertEqual(len(same_length), len(right))
        cases = {
            "same length": same_length,
            "one character off": right[:-1] + ("a" if right[-1] != "a" else "b"),
            "shorter": right[:-1],
            "longer": right + "0",
            "much shorter": "x",
            "much longer": right * 4,
        }
        for name, token in cases.items():
            with self.subTest(case=name):
                st, js = self.server.admin("GET", "/v1/status", token=token)
                self.assertEqual(st, 401, js)
                self.assertEqual(js.get("code"), "Unauthorized", js)
                st, headers, body = raw_request(self.server, "GET", "/v1/catalog",
                                                authorization="Bearer " + token)
                self.assertEqual(st, 401, body)
                self.assertTrue(headers.get("www-authenticate", "").startswith("Bearer"), headers)
        for header in ("Basic " + right, right, "Bearer", "Bearer ", "Token " + right):
            with self.subTest(header=header[:12]):
                st, headers, body = raw_request(self.server, "GET", "/v1/status",
                                                authorization=header)
                self.assertEqual(st, 401, body)
                self.assertEqual(json.loads(body).get("code"), "Unauthorized")

    def test_right_token_is_200(self):
        st, js = self.server.admin("GET", "/v1/status")
        self.assertEqual(st, 200, js)
        st, headers, body = raw_request(self.server, "GET", "/v1/catalog")
        self.assertEqual(st, 200, body[:200])
        self.assertIn("application/json", headers.get("content-type", ""))
        self.assertIsInstance(json.loads(body), dict)

    def test_token_file_is_private_and_printed_once(self):
        path = os.path.join(self.server.data_dir, "admin-token")
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self.assertEqual(mode, 0o600, "DATA/admin-token has mode %o" % mode)
        token = self.server.admin_token
        self.assertGreaterEqual(len(token), 16)
        with open(self.server.log_path) as f:
            log = f.read()
        self.assertEqual(log.count(token), 1, "the token is printed once on stderr")

    def test_wrong_token_changes_nothing(self):
        with self.assertNothingChanged():
            for method, path, body in (
                    ("POST", "/v1/accounts", {"id": new_account_id(), "name": "x",
                                              "roles": ["buyer"]}),
                    ("DELETE", "/v1/credentials/" + SELLER[0], None),
                    ("PATCH", "/v1/settings", {"tokenTtlHours": 1}),
                    ("PUT", "/v1/regions/ca-central-1", {"operations": ["BatchMeterUsage"]}),
                    ("POST", "/v1/apply", {"accounts": []}),
                    ("POST", "/v1/faults", {"operation": "BatchMeterUsage", "throttleRate": 1})):
                with self.subTest(method=method, path=path):
                    st, js = self.server.admin(method, path, body, token="wrong-token-0000000")
                    self.assertEqual(st, 401, js)
        self.assertEqual(self.api("GET", "/v1/faults", status=200), {"rules": []})
        self.assertEqual(self.api("GET", "/v1/settings", status=200)["tokenTtlHours"], 4)

    def test_unknown_route_is_404_and_wrong_method_405(self):
        self.api_error("GET", "/v1/no-such-thing", status=404, code="NotFound")
        self.api_error("GET", "/v2/status", status=404, code="NotFound")
        self.api_error("GET", "/v1/accounts/000000000000", status=404, code="NotFound")
        self.api_error("DELETE", "/v1/status", status=405, code="MethodNotAllowed")
        self.api_error("PUT", "/v1/accounts", {}, status=405, code="MethodNotAllowed")
        self.api_error("POST", "/v1/catalog", {}, status=405, code="MethodNotAllowed")


# =============================================================================================
class AdminResourceTests(AdminMixin, ServerTestCase):
    """Every resource created, changed, listed and removed, on a manual business clock; each change
    is seen by the next metering call of a real boto3 client. Tests make their own objects (new
    ids), so they share one server."""

    extra_args = ("--clock", "manual", "--clock-start", T0_ISO)

    # --- accounts ------------------------------------------------------------------------------
    def test_accounts_create_get_list_patch_delete(self):
        account = new_account_id()
        body = {"id": account, "name": "Admin Buyer", "roles": ["buyer"],
                "customerIdentifier": "cust-admin-acc-" + account}
        v0 = self.catalog_version()
        created = self.api("POST", "/v1/accounts", body, status=201)
        self.assertEqual(created, body)
        self.assertEqual(self.catalog_version(), v0 + 1)
        self.assertEqual(self.api("GET", "/v1/accounts/" + account, status=200), body)
        listed = self.api("GET", "/v1/accounts", status=200)
        self.assertIn(body, listed)
        self.assertIn(body, self.api("GET", "/v1/catalog", status=200)["accounts"])

        patched = self.api("PATCH", "/v1/accounts/" + account,
                           {"name": "Admin Buyer renamed", "roles": ["buyer", "seller"]},
                           status=200)
        expected = dict(body, name="Admin Buyer renamed", roles=["buyer", "seller"])
        self.assertEqual(patched, expected)
        self.assertEqual(self.api("GET", "/v1/accounts/" + account, status=200), expected)
        self.assertEqual(self.catalog_version(), v0 + 2)

        deleted = self.api("DELETE", "/v1/accounts/" + account, status=200)
        self.assertEqual(deleted, {"deleted": "accounts/" + account})
        self.api_error("GET", "/v1/accounts/" + account, status=404, code="NotFound")
        self.assertNotIn(account, [a["id"] for a in self.api("GET", "/v1/accounts", status=200)])
        self.api_error("DELETE", "/v1/accounts/" + account, status=404, code="NotFound")
        self.api_error("PATCH", "/v1/accounts/" + account, {"name": "x"}, status=404,
                       code="NotFound")

    def test_new_buyer_account_is_seen_by_the_next_batch_call(self):
        account = new_account_id()
        customer = "cust-admin-new-" + account
        ts = self.clock_now() - 3600
        # Unknown customer before the account exists.
        res = self.boto().batch_meter_usage(ProductCode=SAAS, UsageRecords=[rec(ts, customer)])
        self.assertEqual([r["Status"] for r in res["Results"]], ["CustomerNotSubscribed"], res)
        self.api("POST", "/v1/accounts", {"id": account, "name": "n", "roles": ["buyer"],
                                          "customerIdentifier": customer}, status=201)
        self.api("POST", "/v1/subscriptions", {"account": account, "product": SAAS}, status=201)
        self.assertEqual(self.batch_results([rec(ts, customer)]), ["Success"])

    # --- credentials ---------------------------------------------------------------------------
    def test_credentials_secret_shown_once_then_disabled_and_deleted(self):
        created = self.api("POST", "/v1/credentials", {"account": ACME_SELLER}, status=201)
        akid, secret = created.get("accessKeyId"), created.get("secretAccessKey")
        self.assertTrue(akid and secret, created)
        self.assertEqual(created.get("account"), ACME_SELLER, created)
        self.assertNotIn("sessionToken", created)
        creds = (akid, secret)

        # The secret is never shown again: not in GET, the list or the catalog.
        for path in ("/v1/credentials/" + enc(akid), "/v1/credentials", "/v1/catalog"):
            st, _, body = raw_request(self.server, "GET", path)
            self.assertEqual(st, 200, body[:200])
            self.assertNotIn(secret.encode(), body, path)
            self.assertFalse(all_keys(json.loads(body)) & SECRET_MEMBERS, path)
        one = self.api("GET", "/v1/credentials/" + enc(akid), status=200)
        self.assertEqual(one, {"accessKeyId": akid, "account": ACME_SELLER})
        self.assertIn(one, self.api("GET", "/v1/credentials", status=200))

        # It signs metering calls at once.
        token = self.issue_token()["token"]
        self.assertEqual(self.resolve(token, creds), SAAS_ANSWER)

        # Disabled -> UnrecognizedClientException on the next call; enabled again -> fine.
        patched = self.api("PATCH", "/v1/credentials/" + enc(akid), {"enabled": False},
                           status=200)
        self.assertIs(patched.get("enabled"), False, patched)
        self.assertNotIn("secretAccessKey", patched)
        self.assertBotoError("UnrecognizedClientException",
                             self.boto(creds).resolve_customer, status=403,
                             RegistrationToken=token)
        self.api("PATCH", "/v1/credentials/" + enc(akid), {"enabled": True}, status=200)
        self.assertEqual(self.resolve(token, creds), SAAS_ANSWER)

        # Deleted -> UnrecognizedClientException.
        self.assertEqual(self.api("DELETE", "/v1/credentials/" + enc(akid), status=200),
                         {"deleted": "credentials/" + akid})
        self.api_error("GET", "/v1/credentials/" + enc(akid), status=404, code="NotFound")
        self.assertBotoError("UnrecognizedClientException",
                             self.boto(creds).resolve_customer, status=403,
                             RegistrationToken=token)

    def test_credential_with_given_key_secret_and_session_token(self):
        akid = "ASIAADMINTEST%07d" % (next(_IDS) % 10 ** 7)
        secret = "adminTestSecret" + "x" * 25
        session = "FwoGZXIvYXdzEAdminTestSession%06d" % (next(_IDS) % 10 ** 6)
        created = self.api("POST", "/v1/credentials",
                           {"account": ACME_SELLER, "accessKeyId": akid,
                            "secretAccessKey": secret, "sessionToken": session}, status=201)
        self.assertEqual(created.get("accessKeyId"), akid)
        self.assertEqual(created.get("secretAccessKey"), secret)
        self.assertNotIn("sessionToken", created)
        for path in ("/v1/credentials/" + enc(akid), "/v1/credentials", "/v1/catalog"):
            st, _, body = raw_request(self.server, "GET", path)
            self.assertNotIn(secret.encode(), body, path)
            self.assertNotIn(session.encode(), body, path)
        token = self.issue_token()["token"]
        self.assertEqual(self.resolve(token, (akid, secret, session)), SAAS_ANSWER)
        self.api("DELETE", "/v1/credentials/" + enc(akid), status=200)

    def test_credential_created_disabled_is_unrecognized(self):
        created = self.api("POST", "/v1/credentials", {"account": ACME_SELLER, "enabled": False},
                           status=201)
        creds = (created["accessKeyId"], created["secretAccessKey"])
        self.assertBotoError("UnrecognizedClientException", self.boto(creds).resolve_customer,
                             status=403, RegistrationToken=TOKEN_GLOBEX_SAAS)
        self.api("DELETE", "/v1/credentials/" + enc(creds[0]), status=200)

    def test_catalog_secrets_are_never_returned(self):
        for path in ("/v1/catalog", "/v1/credentials", "/v1/credentials/" + SELLER[0],
                     "/v1/credentials/" + TEMP_EC2[0], "/v1/products", "/v1/products/" + CTR,
                     "/v1/products/%s/keys" % CTR):
            with self.subTest(path=path):
                st, _, body = raw_request(self.server, "GET", path)
                self.assertEqual(st, 200, body[:200])
                self.assertFalse(all_keys(json.loads(body)) & SECRET_MEMBERS, path)
                for secret in (SELLER[1], TEMP_EC2[1], TEMP_EC2[2]):
                    self.assertNotIn(secret.encode(), body)
                self.assertNotIn(b"PRIVATE KEY", body)

    # --- workloads -----------------------------------------------------------------------------
    def test_workloads_with_ecs_task_arn_id_and_stop(self):
        n = next(_IDS)
        task = "arn:aws:ecs:us-east-1:%s:task/admin-test/%032x" % (GLOBEX_ACCOUNT, n)
        path = "/v1/workloads/" + enc(task)
        body = {"id": task, "platform": "ecs", "region": "us-west-2", "account": GLOBEX_ACCOUNT}
        self.assertEqual(self.api("POST", "/v1/workloads", body, status=201), body)
        self.assertEqual(self.api("GET", path, status=200), body)
        self.assertIn(body, self.api("GET", "/v1/workloads", status=200))
        # PATCH replaces the fields given.
        patched = self.api("PATCH", path, {"region": "us-east-1"}, status=200)
        body["region"] = "us-east-1"
        self.assertEqual(patched, body)
        self.assertEqual(self.api("GET", path, status=200), body)

        # A credential for the task: RegisterUsage opens its metered run (D11).
        cred = self.api("POST", "/v1/credentials", {"workload": task}, status=201)
        creds = (cred["accessKeyId"], cred["secretAccessKey"])
        out = self.boto(creds).register_usage(ProductCode=CTR, PublicKeyVersion=1)
        self.assertTrue(out.get("Signature"), out)
        runs = query_store(self.server.data_dir,
                           "SELECT stopped_ms FROM metered_runs WHERE workload_id = ?", [task])
        self.assertEqual(runs, [(None,)])

        # Moving the clock runs a task-metering pass at once: the completed hours are written.
        self.advance(7200)
        hours = query_store(self.server.data_dir,
                            "SELECT dimension FROM usage_records WHERE workload_id = ?", [task])
        self.assertTrue(hours and all(h == ("task_hours",) for h in hours), hours)

        # Then the task stops: stoppedAt now, and its run ends.
        self.advance(1800)
        now = self.clock_now()
        stopped = self.api("POST", path + "/stop", status=200)
        self.assertEqual(stopped.get("id"), task, stopped)
        self.assertEqual(parse_time(stopped.get("stoppedAt", "")), now, stopped)
        self.assertEqual(self.api("GET", path, status=200), stopped)
        runs = query_store(self.server.data_dir,
                           "SELECT stopped_ms FROM metered_runs WHERE workload_id = ?", [task])
        self.assertEqual(runs, [(now * 1000,)])
        hours = query_store(self.server.data_dir,
                            "SELECT dimension FROM usage_records WHERE workload_id = ?", [task])
        self.assertTrue(hours and all(h == ("task_hours",) for h in hours), hours)
        # Stopping again keeps the first stop time.
        self.advance(60)
        self.assertEqual(self.api("POST", path + "/stop", status=200), stopped)

        # Still referenced by its credential: 409; then removed in order.
        self.api_error("DELETE", path, status=409, code="Conflict")
        self.api("DELETE", "/v1/credentials/" + enc(creds[0]), status=200)
        self.assertEqual(self.api("DELETE", path, status=200), {"deleted": "workloads/" + task})
        self.api_error("GET", path, status=404, code="NotFound")
        self.api_error("POST", path + "/stop", status=404, code="NotFound")

    # --- products and dimensions ---------------------------------------------------------------
    def new_saas_product(self, dimensions=("alpha", "beta"), subscribe=GLOBEX_ACCOUNT):
        code = "admsaas%05d" % (next(_IDS) % 10 ** 5)
        body = {"code": code, "seller": ACME_SELLER, "kind": "saas", "integration": "legacy",
                "dimensions": [{"name": d, "unit": "Units"} for d in dimensions]}
        self.assertEqual(self.api("POST", "/v1/products", body, status=201), body)
        if subscribe:
            self.api("POST", "/v1/subscriptions", {"account": subscribe, "product": code},
                     status=201)
        return code, body

    def test_products_create_patch_delete(self):
        code, body = self.new_saas_product(subscribe=None)
        self.assertEqual(self.api("GET", "/v1/products/" + code, status=200), body)
        self.assertIn(body, self.api("GET", "/v1/products", status=200))
        ts = self.clock_now() - 3600
        # No subscription yet: the product is known, the customer not subscribed to it.
        out = self.boto().batch_meter_usage(ProductCode=code,
                                            UsageRecords=[rec(ts, GLOBEX_CUSTOMER, "alpha")])
        self.assertEqual(out["Results"][0]["Status"], "CustomerNotSubscribed", out)
        sub = self.api("POST", "/v1/subscriptions", {"account": GLOBEX_ACCOUNT, "product": code},
                       status=201)
        self.assertEqual(sub.get("id"), "%s:%s" % (GLOBEX_ACCOUNT, code), sub)
        self.assertEqual(self.batch_results([rec(ts, GLOBEX_CUSTOMER, "alpha")], product=code),
                         ["Success"])

        # PATCH replaces the dimensions: gamma is accepted at once, beta refused.
        patched = self.api("PATCH", "/v1/products/" + code,
                           {"dimensions": [{"name": "alpha", "unit": "Units"},
                                           {"name": "gamma", "unit": "GB"}]}, status=200)
        self.assertEqual([d["name"] for d in patched["dimensions"]], ["alpha", "gamma"])
        self.assertEqual(self.batch_results([rec(ts, GLOBEX_CUSTOMER, "gamma")], product=code),
                         ["Success"])
        self.assertBotoError("InvalidUsageDimensionException", self.boto().batch_meter_usage,
                             ProductCode=code, UsageRecords=[rec(ts, GLOBEX_CUSTOMER, "beta")])

        # A subscribed product cannot go; without its subscription it can.
        self.api_error("DELETE", "/v1/products/" + code, status=409, code="Conflict")
        self.api("DELETE", "/v1/subscriptions/" + enc(sub["id"]), status=200)
        self.assertEqual(self.api("DELETE", "/v1/products/" + code, status=200),
                         {"deleted": "products/" + code})
        self.api_error("GET", "/v1/products/" + code, status=404, code="NotFound")
        self.assertBotoError("InvalidProductCodeException", self.boto().batch_meter_usage,
                             ProductCode=code, UsageRecords=[rec(ts, GLOBEX_CUSTOMER, "alpha")])

    def test_dimensions_add_patch_delete(self):
        code, body = self.new_saas_product(dimensions=("alpha",))
        ts = self.clock_now() - 3600
        base = "/v1/products/%s/dimensions" % code
        self.assertBotoError("InvalidUsageDimensionException", self.boto().batch_meter_usage,
                             ProductCode=code, UsageRecords=[rec(ts, GLOBEX_CUSTOMER, "extra")])
        added = self.api("POST", base, {"name": "extra", "unit": "Requests",
                                        "description": "extra calls", "pricePerUnit": 0.25},
                         status=201)
        self.assertIn({"name": "extra", "unit": "Requests", "description": "extra calls",
                       "pricePerUnit": 0.25}, added["dimensions"])
        self.assertEqual(self.batch_results([rec(ts, GLOBEX_CUSTOMER, "extra")], product=code),
                         ["Success"])
        self.api_error("POST", base, {"name": "extra"}, status=409, code="Conflict")

        patched = self.api("PATCH", base + "/extra", {"unit": "Calls", "pricePerUnit": 0.5},
                           status=200)
        self.assertIn({"name": "extra", "unit": "Calls", "description": "extra calls",
                       "pricePerUnit": 0.5}, patched["dimensions"])
        self.assertEqual(self.api("GET", "/v1/products/" + code, status=200), patched)
        with self.assertNothingChanged():
            self.api_error("PATCH", base + "/extra", {"name": "renamed"}, status=400)
            self.api_error("PATCH", base + "/nosuch", {"unit": "x"}, status=404,
                           code="NotFound")

        deleted = self.api("DELETE", base + "/extra", status=200)
        self.assertEqual([d["name"] for d in deleted["dimensions"]], ["alpha"])
        self.assertBotoError("InvalidUsageDimensionException", self.boto().batch_meter_usage,
                             ProductCode=code,
                             UsageRecords=[rec(ts - 3600, GLOBEX_CUSTOMER, "extra")])
        self.api_error("DELETE", base + "/extra", status=404, code="NotFound")

    def test_deleting_the_hourly_dimension_is_conflict(self):
        with self.assertNothingChanged():
            js = self.api_error("DELETE", "/v1/products/%s/dimensions/task_hours" % CTR,
                                status=409, code="Conflict")
        self.assertIn("task_hours", [d["name"] for d in
                                     self.api("GET", "/v1/products/" + CTR)["dimensions"]], js)

    # --- signing keys --------------------------------------------------------------------------
    def test_signing_keys_create_expire_jwks_and_verify(self):
        require_jwt_python()
        code = "admctr%05d" % (next(_IDS) % 10 ** 5)
        self.api("POST", "/v1/products",
                 {"code": code, "seller": ACME_SELLER, "kind": "container",
                  "hourlyDimension": "task_hours",
                  "dimensions": [{"name": "task_hours", "unit": "Hours"}],
                  "signingKeys": [{"version": 1}]}, status=201)
        self.api("POST", "/v1/subscriptions", {"account": GLOBEX_ACCOUNT, "product": code},
                 status=201)
        keys_path = "/v1/products/%s/keys" % code
        v1 = self.api("GET", keys_path, status=200)
        self.assertEqual([k["version"] for k in v1], [1], v1)

        self.assertBotoError("InvalidPublicKeyVersionException", self.boto(ECS).register_usage,
                             ProductCode=code, PublicKeyVersion=2)
        v2 = self.api("POST", keys_path, status=201)
        self.assertEqual(v2.get("version"), 2, v2)
        self.assertNotIn("expired", v2)
        self.assertIn("BEGIN PUBLIC KEY", v2.get("publicKeyPem", ""))
        self.assertFalse(all_keys(v2) & SECRET_MEMBERS, v2)
        listed = self.api("GET", keys_path, status=200)
        self.assertEqual([k["version"] for k in listed], [1, 2])
        self.assertEqual(listed[1], v2)
        self.assertEqual(self.api("GET", keys_path + "/2", status=200), v2)
        self.assertEqual(self.api("GET", keys_path + "/1", status=200), listed[0])
        self.api_error("GET", keys_path + "/3", status=404, code="NotFound")
        self.assertNotEqual(listed[0]["publicKeyPem"], v2["publicKeyPem"])

        # Version 2 signs at once; its token verifies with the served public PEM (PyJWT), and
        # not with version 1's.
        out = self.boto(ECS).register_usage(ProductCode=code, PublicKeyVersion=2, Nonce="n-2")
        self.assertNotIn("PublicKeyRotationTimestamp", out)
        res = verify(out["Signature"], pem=v2["publicKeyPem"])
        self.assertTrue(res.get("pyjwt_ok"), res)
        self.assertTrue(res.get("crypto_ok"), res)
        self.assertEqual(res["payload"].get("productCode"), code, res)
        self.assertEqual(res["payload"].get("publicKeyVersion"), 2, res)
        self.assertEqual(res["payload"].get("nonce"), "n-2", res)
        res = verify(out["Signature"], pem=listed[0]["publicKeyPem"])
        self.assertFalse(res.get("pyjwt_ok"), res)

        # Expired: it still signs, and RegisterUsage carries PublicKeyRotationTimestamp.
        self.advance(90)
        now = self.clock_now()
        expired = self.api("POST", keys_path + "/2/expire", status=200)
        self.assertIs(expired.get("expired"), True, expired)
        self.assertEqual(parse_time(expired.get("expiredAt", "")), now, expired)
        self.assertEqual(expired.get("publicKeyPem"), v2["publicKeyPem"])
        self.assertEqual(self.api("GET", keys_path + "/2", status=200), expired)
        out = self.boto(ECS).register_usage(ProductCode=code, PublicKeyVersion=2)
        self.assertEqual(out.get("PublicKeyRotationTimestamp"), dt(now), out)
        res = verify(out["Signature"], pem=v2["publicKeyPem"])
        self.assertTrue(res.get("pyjwt_ok"), res)
        out = self.boto(ECS).register_usage(ProductCode=code, PublicKeyVersion=1)
        self.assertNotIn("PublicKeyRotationTimestamp", out)

        # The JWKS holds both keys, the same as the PEMs.
        jwks = self.api("GET", "/v1/products/%s/jwks" % code, status=200)
        by_kid = {k["kid"]: k for k in jwks["keys"]}
        self.assertEqual(set(by_kid), {"1", "2"}, jwks)
        items = []
        for ref in listed:
            jwk = by_kid[str(ref["version"])]
            self.assertEqual(jwk.get("kty"), "RSA")
            self.assertEqual(jwk.get("alg"), "PS256")
            items += [{"pem": ref["publicKeyPem"]}, {"jwk": jwk}]
        got = verify_many(items)
        for i in range(0, len(got), 2):
            self.assertNotIn("error", got[i], got[i])
            self.assertEqual((got[i]["n"], got[i]["e"]), (got[i + 1]["n"], got[i + 1]["e"]))
        self.api_error("POST", keys_path + "/3/expire", status=404, code="NotFound")

    def test_imported_private_key_signs_and_is_never_returned(self):
        require_jwt_python()
        try:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
        except ImportError:
            self.skipTest("cryptography is not installed")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        before = [k["version"] for k in self.api("GET", "/v1/products/%s/keys" % CTR)]
        created = self.api("POST", "/v1/products/%s/keys" % CTR,
                           {"privateKeyPem": private_pem}, status=201)
        version = created["version"]
        self.assertEqual(version, max(before) + 1, created)
        self.assertFalse(all_keys(created) & SECRET_MEMBERS, created)
        self.assertEqual(created["publicKeyPem"].strip(), public_pem.strip())
        marker = private_pem.splitlines()[1].encode()
        for path in ("/v1/catalog", "/v1/products/" + CTR, "/v1/products",
                     "/v1/products/%s/keys" % CTR, "/v1/products/%s/jwks" % CTR):
            st, _, body = raw_request(self.server, "GET", path)
            self.assertEqual(st, 200)
            self.assertNotIn(marker, body, path)
            self.assertNotIn(b"PRIVATE KEY", body, path)
            self.assertFalse(all_keys(json.loads(body)) & SECRET_MEMBERS, path)
        out = self.boto(ECS).register_usage(ProductCode=CTR, PublicKeyVersion=version)
        res = verify(out["Signature"], pem=public_pem)
        self.assertTrue(res.get("pyjwt_ok"), res)
        self.assertEqual(res["payload"].get("publicKeyVersion"), version, res)

    # --- subscriptions -------------------------------------------------------------------------
    def test_subscribe_unsubscribe_grace_then_not_subscribed(self):
        account, customer = self.new_buyer()
        now = self.clock_now()
        out = self.boto().batch_meter_usage(ProductCode=SAAS,
                                            UsageRecords=[rec(now - 3600, customer)])
        self.assertEqual(out["Results"][0]["Status"], "CustomerNotSubscribed", out)

        sub = self.api("POST", "/v1/subscriptions", {"account": account, "product": SAAS},
                       status=201)
        sid = "%s:%s" % (account, SAAS)
        self.assertEqual(sub.get("id"), sid, sub)
        self.assertEqual(self.batch_results([rec(now - 3600, customer)]), ["Success"])
        self.assertEqual(self.api("GET", "/v1/subscriptions/" + enc(sid), status=200), sub)
        self.assertEqual(self.api("GET", "/v1/subscriptions?account=%s&product=%s"
                                  % (account, SAAS), status=200), [sub])

        # Unsubscribed now: records are still accepted within the hour.
        pending = self.api("POST", "/v1/subscriptions/%s/unsubscribe" % enc(sid), status=200)
        self.assertEqual(pending.get("status"), "unsubscribe-pending", pending)
        self.assertEqual(parse_time(pending.get("unsubscribedAt", "")), now, pending)
        self.assertEqual(self.batch_results([rec(now - 2 * 3600, customer)]), ["Success"])
        self.advance(3599)
        self.assertEqual(self.batch_results([rec(now - 3 * 3600, customer)]), ["Success"])

        # After the hour of grace: CustomerNotSubscribed, and the status reads unsubscribed.
        self.advance(2)
        out = self.boto().batch_meter_usage(ProductCode=SAAS,
                                            UsageRecords=[rec(now - 4 * 3600, customer)])
        self.assertEqual(out["Results"][0]["Status"], "CustomerNotSubscribed", out)
        listed = self.api("GET", "/v1/subscriptions?account=" + account, status=200)
        self.assertEqual([s["status"] for s in listed], ["unsubscribed"], listed)
        self.assertEqual(self.api("GET", "/v1/subscriptions/" + enc(sid),
                                  status=200)["status"], "unsubscribed")

        # PATCH back to active: accepted again; DELETE: gone.
        self.api("PATCH", "/v1/subscriptions/" + enc(sid), {"status": "active"}, status=200)
        self.assertEqual(self.batch_results([rec(now - 5 * 3600, customer)]), ["Success"])
        self.assertEqual(self.api("DELETE", "/v1/subscriptions/" + enc(sid), status=200),
                         {"deleted": "subscriptions/" + sid})
        self.api_error("GET", "/v1/subscriptions/" + enc(sid), status=404, code="NotFound")
        out = self.boto().batch_meter_usage(ProductCode=SAAS,
                                            UsageRecords=[rec(now - 6 * 3600, customer)])
        self.assertEqual(out["Results"][0]["Status"], "CustomerNotSubscribed", out)

    def test_concurrent_agreements_subscription_gets_a_license(self):
        account, _ = self.new_buyer()
        sub = self.api("POST", "/v1/subscriptions", {"account": account, "product": SAAS_CA},
                       status=201)
        arn = sub.get("licenseArn", "")
        self.assertTrue(arn.startswith("arn:aws:license-manager::"), sub)
        self.assertEqual(sub.get("id"), arn, sub)
        self.assertEqual(self.api("GET", "/v1/subscriptions/" + enc(arn), status=200), sub)
        ts = self.clock_now() - 3600
        # Records that carry a LicenseArn go without ProductCode.
        out = self.boto().batch_meter_usage(UsageRecords=[{
            "Timestamp": dt(ts), "CustomerAWSAccountId": account, "LicenseArn": arn,
            "Dimension": "seats", "Quantity": 3}])
        self.assertEqual([r["Status"] for r in out["Results"]], ["Success"], out)
        token = self.issue_token(SAAS_CA, account, arn)["token"]
        self.assertEqual(self.resolve(token), {"ProductCode": SAAS_CA, "LicenseArn": arn,
                                               "CustomerAWSAccountId": account})

    # --- registration tokens -------------------------------------------------------------------
    def test_registration_tokens_issue_list_resolve_revoke(self):
        now = self.clock_now()
        issued = self.issue_token()
        token = issued.get("token")
        self.assertTrue(token, issued)
        self.assertEqual(issued.get("product"), SAAS)
        self.assertEqual(issued.get("account"), GLOBEX_ACCOUNT)
        self.assertEqual(parse_time(issued["issuedAt"]), now, issued)
        self.assertEqual(parse_time(issued["expiresAt"]), now + 4 * 3600, issued)
        self.assertEqual(self.resolve(token), SAAS_ANSWER)
        one = self.api("GET", "/v1/registration-tokens/" + enc(token), status=200)
        self.assertEqual(one, issued)
        self.assertIs(one.get("expired"), False, one)
        listed = self.api("GET", "/v1/registration-tokens?account=%s&product=%s"
                          % (GLOBEX_ACCOUNT, SAAS), status=200)
        self.assertIn(token, [t["token"] for t in listed])
        self.assertTrue(all(t["account"] == GLOBEX_ACCOUNT and t["product"] == SAAS
                            for t in listed), listed)
        self.assertNotIn(token, [t["token"] for t in self.api(
            "GET", "/v1/registration-tokens?product=" + SAAS_CA, status=200)])

        self.api("DELETE", "/v1/registration-tokens/" + enc(token), status=200)
        self.assertBotoError("InvalidTokenException", self.boto().resolve_customer,
                             RegistrationToken=token)
        self.assertNotIn(token, [t["token"] for t in self.api("GET", "/v1/registration-tokens")])
        self.api_error("GET", "/v1/registration-tokens/" + enc(token), status=404,
                       code="NotFound")
        self.api_error("DELETE", "/v1/registration-tokens/" + enc(token), status=404,
                       code="NotFound")
        # A concurrent-agreements product needs a license; a non-SaaS product has no tokens.
        with self.assertNothingChanged():
            self.api_error("POST", "/v1/registration-tokens",
                           {"product": SAAS_CA, "account": GLOBEX_ACCOUNT})
            self.api_error("POST", "/v1/registration-tokens",
                           {"product": AMI, "account": GLOBEX_ACCOUNT})

    def test_token_with_reserved_characters_in_the_path(self):
        # Real registration tokens are base64: '+', '/' and '=' must survive the path.
        token = "Qh3q+u4/Zz%06d+Ab==" % (next(_IDS) % 10 ** 6)
        applied = self.api("POST", "/v1/apply", {"registrationTokens": [
            {"token": token, "account": GLOBEX_ACCOUNT, "product": SAAS}]}, status=200)
        self.assertEqual(applied["created"], ["registrationTokens/" + token], applied)
        self.assertEqual(self.resolve(token), SAAS_ANSWER)
        self.assertIn(token, [t["token"] for t in self.api("GET", "/v1/registration-tokens")])
        # '+' is literal in a path (it means a space only in a query string).
        self.api_error("DELETE", "/v1/registration-tokens/" + enc(token.replace("+", " ")),
                       status=404, code="NotFound")
        self.api("DELETE", "/v1/registration-tokens/" + enc(token).replace("%2B", "+"),
                 status=200)
        self.assertBotoError("InvalidTokenException", self.boto().resolve_customer,
                             RegistrationToken=token)
        self.assertNotIn(token, [t["token"] for t in self.api("GET", "/v1/registration-tokens")])

    # --- regions -------------------------------------------------------------------------------
    def test_regions_disable_and_enable(self):
        region = "ca-central-1"
        ts = self.clock_now() - 3600
        account, customer = self.new_buyer()
        self.api("POST", "/v1/subscriptions", {"account": account, "product": SAAS}, status=201)
        put = self.api("PUT", "/v1/regions/" + region, {"operations": ["BatchMeterUsage"]},
                       status=200)
        self.assertEqual(put, {"region": region, "operations": ["BatchMeterUsage"]})
        self.assertIn(put, self.api("GET", "/v1/regions", status=200))
        self.assertEqual(self.api("GET", "/v1/regions/" + region, status=200), put)
        self.assertBotoError("DisabledApiException", self.boto(region=region).batch_meter_usage,
                             ProductCode=SAAS, UsageRecords=[rec(ts, customer)])
        # Other operations in the region, and the operation elsewhere, are untouched.
        token = self.issue_token()["token"]
        self.assertEqual(self.resolve(token, region=region), SAAS_ANSWER)
        self.assertEqual(self.batch_results([rec(ts, customer)], region="us-west-2"),
                         ["Success"])

        self.api("DELETE", "/v1/regions/" + region, status=200)
        self.assertNotIn(region, [r["region"] for r in self.api("GET", "/v1/regions")])
        self.assertEqual(self.api("GET", "/v1/regions/" + region, status=200),
                         {"region": region, "operations": []})
        self.assertEqual(self.batch_results([rec(ts - 3600, customer)], region=region),
                         ["Success"])

    # --- settings ------------------------------------------------------------------------------
    def restore_settings(self, **values):
        self.addCleanup(self.server.admin, "PATCH", "/v1/settings", values)

    def test_settings_meter_usage_window_takes_effect_on_the_next_call(self):
        self.restore_settings(meterUsageWindowHours=6)
        got = self.api("PATCH", "/v1/settings", {"meterUsageWindowHours": 1}, status=200)
        self.assertEqual(got["meterUsageWindowHours"], 1)
        self.assertEqual(self.api("GET", "/v1/settings")["meterUsageWindowHours"], 1)
        ts = self.clock_now() - 2 * 3600
        self.assertBotoError("TimestampOutOfBoundsException", self.boto(EC2).meter_usage,
                             ProductCode=AMI, UsageDimension="hosts", Timestamp=dt(ts),
                             UsageQuantity=1)
        self.api("PATCH", "/v1/settings", {"meterUsageWindowHours": 6}, status=200)
        out = self.boto(EC2).meter_usage(ProductCode=AMI, UsageDimension="hosts",
                                         Timestamp=dt(ts), UsageQuantity=1)
        self.assertTrue(out.get("MeteringRecordId"), out)

    def test_settings_token_ttl_takes_effect_on_the_next_call(self):
        self.restore_settings(tokenTtlHours=4)
        got = self.api("PATCH", "/v1/settings", {"tokenTtlHours": 1}, status=200)
        self.assertEqual(got["tokenTtlHours"], 1)
        issued = self.issue_token()
        self.assertEqual(parse_time(issued["expiresAt"]) - parse_time(issued["issuedAt"]), 3600)
        self.assertEqual(self.resolve(issued["token"]), SAAS_ANSWER)
        self.advance(3601)   # within the default 4 h, past the 1 h set
        self.assertBotoError("ExpiredTokenException", self.boto().resolve_customer,
                             RegistrationToken=issued["token"])
        # Back to 4 h: the very next call resolves it again.
        self.api("PATCH", "/v1/settings", {"tokenTtlHours": 4}, status=200)
        self.assertEqual(self.resolve(issued["token"]), SAAS_ANSWER)


# =============================================================================================
class AdminThrottleSettingTests(AdminMixin, ServerTestCase):
    """PATCH /v1/settings throttle on a server started with throttling on (a frozen business
    clock: buckets do not refill)."""

    throttle = True
    extra_args = ("--clock", "manual", "--clock-start", T0_ISO)

    def calls(self, n, ts, customer=GLOBEX_CUSTOMER):
        outcomes = []
        c = self.boto(attempts=1)
        for _ in range(n):
            try:
                c.batch_meter_usage(ProductCode=SAAS, UsageRecords=[rec(ts, customer)])
                outcomes.append("ok")
            except ClientError as e:
                outcomes.append(e.response["Error"]["Code"])
        return outcomes

    def test_low_rate_throttles_and_disabling_stops_it(self):
        ts = self.clock_now() - 3600
        settings = self.api("GET", "/v1/settings", status=200)
        self.assertIs(settings["throttle"]["enabled"], True, settings)
        self.assertEqual(self.calls(3, ts), ["ok"] * 3)
        got = self.api("PATCH", "/v1/settings",
                       {"throttle": {"enabled": True, "batchMeterUsage": 1, "burstSeconds": 1}},
                       status=200)
        self.assertEqual(got["throttle"]["batchMeterUsage"], 1, got)
        self.assertEqual(got["throttle"]["burstSeconds"], 1, got)
        self.assertIs(got["throttle"]["enabled"], True, got)
        outcomes = self.calls(25, ts)
        self.assertIn("ThrottlingException", outcomes, outcomes)
        self.assertEqual(set(outcomes), {"ok", "ThrottlingException"}, outcomes)

        # The buckets refill with business time, not real time.
        self.assertEqual(self.calls(1, ts), ["ThrottlingException"])
        self.advance(5)
        self.assertEqual(self.calls(1, ts), ["ok"])

        got = self.api("PATCH", "/v1/settings", {"throttle": {"enabled": False}}, status=200)
        self.assertIs(got["throttle"]["enabled"], False, got)
        self.assertEqual(got["throttle"]["batchMeterUsage"], 1, got)  # other values stay
        self.assertEqual(self.calls(5, ts), ["ok"] * 5)


# =============================================================================================
class AdminBadInputTests(AdminMixin, ServerTestCase):
    """Bad input changes nothing: GET /v1/catalog stays byte-identical, the version stays."""

    def check(self, method, path, body=None, status=400, code="InvalidArgument", raw=None):
        with self.subTest(method=method, path=path, body=body if raw is None else raw[:40]):
            with self.assertNothingChanged():
                self.api_error(method, path, body, status=status, code=code, raw=raw)

    def test_malformed_json(self):
        for method, path in (("POST", "/v1/accounts"), ("PATCH", "/v1/accounts/" + GLOBEX_ACCOUNT),
                             ("POST", "/v1/apply"), ("POST", "/v1/credentials"),
                             ("POST", "/v1/products/%s/dimensions" % SAAS),
                             ("PATCH", "/v1/settings"), ("PUT", "/v1/regions/us-east-1"),
                             ("POST", "/v1/subscriptions"), ("POST", "/v1/registration-tokens")):
            for raw in (b'{"id": "12', b"not json", b"{,}", b'{"a":1}}'):
                self.check(method, path, raw=raw)
        self.check("POST", "/v1/accounts", raw=b"[1, 2]")
        self.check("POST", "/v1/accounts", raw=b'"a string"')

    def test_unknown_members(self):
        self.check("POST", "/v1/accounts", {"id": new_account_id(), "name": "x",
                                            "roles": ["buyer"], "nmae": "typo"})
        self.check("PATCH", "/v1/accounts/" + GLOBEX_ACCOUNT, {"nmae": "typo"})
        self.check("POST", "/v1/credentials", {"account": ACME_SELLER, "secret": "x"})
        self.check("POST", "/v1/workloads", {"id": "i-0badbadbadbad0001", "platform": "ec2",
                                             "region": "us-east-1", "account": GLOBEX_ACCOUNT,
                                             "colour": "red"})
        self.check("POST", "/v1/products/%s/dimensions" % SAAS, {"name": "z", "colour": "red"})
        self.check("PATCH", "/v1/settings", {"tokenTTLHours": 1})
        self.check("PATCH", "/v1/settings", {"throttle": {"rate": 1}})
        self.check("POST", "/v1/apply", {"accounts": [], "bogus": []})

    def test_values_the_catalog_refuses(self):
        self.check("POST", "/v1/accounts", {"id": "1234", "name": "x", "roles": ["buyer"]})
        self.check("POST", "/v1/accounts", {"id": new_account_id(), "name": "x",
                                            "roles": "buyer"})
        self.check("PATCH", "/v1/settings", {"tokenTtlHours": -1})
        self.check("PATCH", "/v1/settings", {"meterUsageWindowHours": "six"})
        self.check("PUT", "/v1/regions/ca-central-1", {"operations": ["NoSuchOperation"]})
        self.check("PUT", "/v1/regions/ca-central-1", {"ops": ["BatchMeterUsage"]})
        self.check("POST", "/v1/products/%s/keys" % CTR, {"privateKeyPem": "not a key"})
        self.check("POST", "/v1/products", {"code": "badkind01", "seller": ACME_SELLER,
                                            "kind": "mainframe", "dimensions": []})

    def test_references_to_unknown_objects(self):
        nobody = "000000000000"
        self.check("POST", "/v1/workloads", {"id": "i-0badbadbadbad0002", "platform": "ec2",
                                             "region": "us-east-1", "account": nobody})
        self.check("PATCH", "/v1/workloads/i-0123456789abcdef0", {"account": nobody})
        self.check("POST", "/v1/credentials", {"account": nobody})
        self.check("POST", "/v1/credentials", {"workload": "i-0nosuchworkload00"})
        self.check("POST", "/v1/products", {"code": "orphan01", "seller": nobody, "kind": "saas",
                                            "dimensions": [{"name": "a"}]})
        self.check("POST", "/v1/subscriptions", {"account": nobody, "product": SAAS})
        self.check("POST", "/v1/subscriptions", {"account": GLOBEX_ACCOUNT,
                                                 "product": "nosuchproduct"})
        self.check("POST", "/v1/apply", {"workloads": [{"id": "i-0badbadbadbad0003",
                                                        "platform": "ec2", "region": "us-east-1",
                                                        "account": nobody}]})
        tokens = self.api("GET", "/v1/registration-tokens", status=200)
        self.check("POST", "/v1/registration-tokens", {"product": SAAS, "account": nobody})
        self.check("POST", "/v1/registration-tokens", {"product": "nosuch", "account": nobody})
        self.assertEqual(self.api("GET", "/v1/registration-tokens", status=200), tokens)

    def test_duplicate_creates_are_conflicts(self):
        self.check("POST", "/v1/accounts", {"id": GLOBEX_ACCOUNT, "name": "again",
                                            "roles": ["buyer"]}, status=409, code="Conflict")
        self.check("POST", "/v1/credentials", {"accessKeyId": SELLER[0], "account": ACME_SELLER},
                   status=409, code="Conflict")
        self.check("POST", "/v1/workloads", {"id": "i-0123456789abcdef0", "platform": "ec2",
                                             "region": "us-east-1", "account": GLOBEX_ACCOUNT},
                   status=409, code="Conflict")
        self.check("POST", "/v1/products", {"code": SAAS, "seller": ACME_SELLER, "kind": "saas",
                                            "dimensions": [{"name": "a"}]},
                   status=409, code="Conflict")
        self.check("POST", "/v1/subscriptions", {"account": GLOBEX_ACCOUNT, "product": SAAS},
                   status=409, code="Conflict")
        self.check("POST", "/v1/products/%s/dimensions" % SAAS, {"name": "api_calls"},
                   status=409, code="Conflict")

    def test_deleting_referenced_objects_is_conflict(self):
        self.check("DELETE", "/v1/accounts/" + GLOBEX_ACCOUNT, status=409, code="Conflict")
        self.check("DELETE", "/v1/accounts/" + ACME_SELLER, status=409, code="Conflict")
        self.check("DELETE", "/v1/products/" + SAAS, status=409, code="Conflict")
        self.check("DELETE", "/v1/workloads/i-0123456789abcdef0", status=409, code="Conflict")
        self.check("DELETE", "/v1/products/%s/dimensions/task_hours" % CTR, status=409,
                   code="Conflict")

    def test_patch_changing_the_id_is_400(self):
        self.check("PATCH", "/v1/accounts/" + GLOBEX_ACCOUNT, {"id": new_account_id()})
        self.check("PATCH", "/v1/products/" + SAAS, {"code": "renamed01"})
        self.check("PATCH", "/v1/workloads/i-0123456789abcdef0", {"id": "i-0renamed000000000"})
        self.check("PATCH", "/v1/credentials/" + SELLER[0], {"accessKeyId": "AKIARENAMED00000001"})
        self.check("PATCH", "/v1/subscriptions/%s:%s" % (GLOBEX_ACCOUNT, SAAS),
                   {"product": AMI})
        self.check("PATCH", "/v1/products/%s/dimensions/api_calls" % SAAS, {"name": "renamed"})

    def test_unknown_ids_are_404(self):
        self.check("PATCH", "/v1/accounts/000000000000", {"name": "x"}, status=404,
                   code="NotFound")
        self.check("DELETE", "/v1/workloads/i-0nosuchworkload00", status=404, code="NotFound")
        self.check("DELETE", "/v1/credentials/AKIANOSUCHKEY0000001", status=404, code="NotFound")
        self.check("DELETE", "/v1/registration-tokens/no-such-token", status=404, code="NotFound")
        self.check("POST", "/v1/subscriptions/no:such/unsubscribe", status=404, code="NotFound")
        self.check("POST", "/v1/products/nosuch/dimensions", {"name": "a"}, status=404,
                   code="NotFound")
        self.check("POST", "/v1/products/nosuch/keys", status=404, code="NotFound")

    def test_clock_routes_on_the_system_clock_are_conflict(self):
        self.check("PUT", "/v1/clock", {"now": "2099-01-01T00:00:00Z"}, status=409,
                   code="Conflict")
        self.check("POST", "/v1/clock/advance", {"seconds": 60}, status=409, code="Conflict")

    def test_bad_fault_rules_change_nothing(self):
        for rule in ({"operation": "BatchMeterUsage", "throttleRate": 2},
                     {"operation": "NoSuchOperation", "throttleRate": 0.5},
                     {"operation": "BatchMeterUsage", "throttleRate": 0.7,
                      "internalErrorRate": 0.7},
                     {"operation": "BatchMeterUsage", "latencyMs": -1},
                     {"throttleRate": 0.5}):
            self.check("POST", "/v1/faults", rule)
        self.assertEqual(self.api("GET", "/v1/faults", status=200), {"rules": []})


# =============================================================================================
class AdminDurabilityTests(AdminMixin, OwnDataDirTestCase):
    """Changes are committed durably: they survive a SIGKILL and a restart on the same data dir,
    with and without --catalog."""

    data_dir_prefix = "meterd-e2e-admin-"

    def start(self, catalog=TEST_CATALOG, extra_args=()):
        srv = Meterd(catalog=catalog, data_dir=self.data_dir, extra_args=list(extra_args))
        srv.start()
        self.addCleanup(srv.stop)
        type(self).server = srv
        return srv

    def snapshot(self):
        return {
            "catalog": self.catalog_raw(),
            "version": self.catalog_version(),
            "settings": self.api("GET", "/v1/settings", status=200),
            "regions": self.api("GET", "/v1/regions", status=200),
            "tokens": self.api("GET", "/v1/registration-tokens", status=200),
            "keys": self.api("GET", "/v1/products/%s/keys" % CTR, status=200),
        }

    def make_changes(self):
        account, customer = self.new_buyer("durable buyer")
        akid = "AKIADURABLE%09d" % (next(_IDS) % 10 ** 9)
        cred = self.api("POST", "/v1/credentials",
                        {"account": ACME_SELLER, "accessKeyId": akid,
                         "secretAccessKey": "durableSecret" + "d" * 27}, status=201)
        self.api("POST", "/v1/subscriptions", {"account": account, "product": SAAS}, status=201)
        self.api("PATCH", "/v1/accounts/" + GLOBEX_ACCOUNT, {"name": "Globex renamed"},
                 status=200)
        self.api("PATCH", "/v1/credentials/" + SELLER[0], {"enabled": False}, status=200)
        self.api("PATCH", "/v1/settings", {"tokenTtlHours": 2, "batchWindowHours": 12},
                 status=200)
        self.api("PUT", "/v1/regions/ca-central-1", {"operations": ["ResolveCustomer"]},
                 status=200)
        self.api("POST", "/v1/products/%s/keys" % CTR, status=201)
        self.api("POST", "/v1/products/%s/keys/4/expire" % CTR, status=200)
        self.api("POST", "/v1/subscriptions/%s:%s/unsubscribe" % (GLOBEX_ACCOUNT, AMI),
                 status=200)
        token = self.issue_token(SAAS, account)["token"]
        self.api("DELETE", "/v1/registration-tokens/" + TOKEN_GLOBEX_SAAS, status=200)
        return (cred["accessKeyId"], cred["secretAccessKey"]), customer, account, token

    def assertChangesInForce(self, creds, customer, account, token, before):
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.api("GET", "/v1/accounts/" + GLOBEX_ACCOUNT)["name"],
                         "Globex renamed")
        self.assertEqual(self.resolve(token, creds),
                         {"CustomerIdentifier": customer, "ProductCode": SAAS,
                          "CustomerAWSAccountId": account})
        self.assertBotoError("UnrecognizedClientException", self.boto(SELLER).resolve_customer,
                             RegistrationToken=token)
        self.assertBotoError("DisabledApiException",
                             self.boto(creds, "ca-central-1").resolve_customer,
                             RegistrationToken=token)
        self.assertBotoError("InvalidTokenException", self.boto(creds).resolve_customer,
                             RegistrationToken=TOKEN_GLOBEX_SAAS)

    def test_changes_survive_sigkill_and_restart_without_catalog(self):
        srv = self.start()
        token_before = srv.admin_token
        changes = self.make_changes()
        before = self.snapshot()
        self.assertEqual(before["settings"]["tokenTtlHours"], 2)
        srv.kill()

        srv = self.start(catalog=None)
        self.assertEqual(srv.admin_token, token_before)
        self.assertChangesInForce(*changes, before)

        # And once more, stopped cleanly.
        srv.stop()
        srv = self.start(catalog=None)
        self.assertChangesInForce(*changes, before)
        with open(srv.log_path) as f:
            self.assertEqual(f.read().count(token_before), 1, "token printed on first start only")

    def test_restart_with_the_same_catalog_keeps_objects_it_does_not_name(self):
        srv = self.start()
        account, customer = self.new_buyer("kept buyer")
        code = "durable%05d" % (next(_IDS) % 10 ** 5)
        self.api("POST", "/v1/products", {"code": code, "seller": ACME_SELLER, "kind": "saas",
                                          "dimensions": [{"name": "d"}]}, status=201)
        self.api("POST", "/v1/subscriptions", {"account": account, "product": code}, status=201)
        version = self.catalog_version()
        catalog = self.catalog_raw()
        srv.kill()
        srv = self.start(catalog=TEST_CATALOG)
        # Every object of the file equals the stored one: the start changed nothing.
        self.assertEqual(self.catalog_version(), version)
        self.assertEqual(self.catalog_raw(), catalog)
        ts = int(parse_time(self.api("GET", "/v1/clock")["now"])) // 3600 * 3600 - 3600
        self.assertEqual(self.batch_results([rec(ts, customer, "d")], product=code), ["Success"])

    def test_settings_set_at_run_time_win_over_the_flags(self):
        flags = ["--token-ttl-hours", "3", "--batch-window-hours", "20"]
        srv = self.start(extra_args=flags)
        got = self.api("GET", "/v1/settings", status=200)
        self.assertEqual((got["tokenTtlHours"], got["batchWindowHours"]), (3, 20), got)
        self.api("PATCH", "/v1/settings", {"tokenTtlHours": 2}, status=200)
        srv.stop()
        self.start(catalog=None, extra_args=flags)
        got = self.api("GET", "/v1/settings", status=200)
        self.assertEqual((got["tokenTtlHours"], got["batchWindowHours"]), (2, 20), got)
        issued = self.issue_token()
        self.assertEqual(parse_time(issued["expiresAt"]) - parse_time(issued["issuedAt"]), 7200)

    def test_faults_and_the_test_clock_are_not_durable(self):
        clock = ["--clock", "manual", "--clock-start", T0_ISO]
        srv = self.start(extra_args=clock)
        self.api("POST", "/v1/faults", {"operation": "BatchMeterUsage", "throttleRate": 1},
                 status=200)
        self.advance(86400)
        self.assertEqual(self.clock_now(), parse_time(T0_ISO) + 86400)
        srv.stop()
        self.start(catalog=None, extra_args=clock)
        self.assertEqual(self.api("GET", "/v1/faults", status=200), {"rules": []})
        self.assertEqual(self.clock_now(), parse_time(T0_ISO))

    def test_admin_token_file_elsewhere(self):
        token_dir = os.path.join(self.work_dir, "secrets")
        os.mkdir(token_dir)
        path = os.path.join(token_dir, "token")
        srv = Meterd(catalog=None, data_dir=self.data_dir,
                     extra_args=["--admin-token-file", path])
        srv.start()
        self.addCleanup(srv.stop)
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "admin-token")))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            token = f.read().strip()
        st, js = srv.admin("GET", "/v1/status", token=token)
        self.assertEqual(st, 200, js)
        srv.stop()
        # An existing file is read, not replaced.
        mine = "my-own-admin-token-0123456789abcdef"
        with open(path, "w") as f:
            f.write(mine + "\n")
        srv.start()
        self.assertEqual(srv.admin("GET", "/v1/status", token=mine)[0], 200)
        self.assertEqual(srv.admin("GET", "/v1/status", token=token)[0], 401)
        with open(path) as f:
            self.assertEqual(f.read().strip(), mine)

    def test_apply_keeps_the_times_the_server_stamps(self):
        self.start(catalog=None, extra_args=["--clock", "manual", "--clock-start", T0_ISO])
        t0 = parse_time(T0_ISO)
        with open(TEST_CATALOG) as f:
            doc = json.load(f)
        doc["settings"] = {"tokenTtlHours": 5}
        first = self.api("POST", "/v1/apply", doc, status=200)
        self.assertIs(first["changed"], True)
        self.assertEqual(self.api("GET", "/v1/settings")["tokenTtlHours"], 5)
        self.assertIn({"region": "ap-east-1", "operations": ["MeterUsage"]},
                      self.api("GET", "/v1/regions"))
        umbrella = "888899990000:" + SAAS
        sub = self.api("GET", "/v1/subscriptions/" + enc(umbrella), status=200)
        self.assertEqual(sub["status"], "unsubscribe-pending", sub)
        self.assertEqual(parse_time(sub["unsubscribedAt"]), t0, sub)

        # The same file later: nothing changes, the stamped time stays.
        self.advance(600)
        version = self.catalog_version()
        again = self.api("POST", "/v1/apply", doc, status=200)
        self.assertIs(again["changed"], False, again)
        self.assertEqual(self.catalog_version(), version)
        sub = self.api("GET", "/v1/subscriptions/" + enc(umbrella), status=200)
        self.assertEqual(parse_time(sub["unsubscribedAt"]), t0, sub)

        # A key the file expires without expiredAt is stamped now, and kept on the next apply.
        for product in doc["products"]:
            if product["code"] == CTR:
                product["signingKeys"][2] = {"version": 3, "expired": True}
        changed = self.api("POST", "/v1/apply", doc, status=200)
        self.assertEqual(changed["updated"], ["products/" + CTR], changed)
        key3 = self.api("GET", "/v1/products/%s/keys" % CTR)[2]
        self.assertIs(key3.get("expired"), True, key3)
        self.assertEqual(parse_time(key3["expiredAt"]), t0 + 600, key3)
        self.advance(600)
        again = self.api("POST", "/v1/apply", doc, status=200)
        self.assertIs(again["changed"], False, again)
        self.assertEqual(self.api("GET", "/v1/products/%s/keys" % CTR)[2], key3)
        out = self.boto(ECS).register_usage(ProductCode=CTR, PublicKeyVersion=3)
        self.assertEqual(out.get("PublicKeyRotationTimestamp"), dt(t0 + 600), out)

    def test_apply_on_a_server_without_catalog(self):
        srv = self.start(catalog=None)
        self.assertEqual(self.api("GET", "/v1/catalog", status=200), {})
        with open(EXAMPLE_CATALOG) as f:
            doc = json.load(f)
        v0 = self.catalog_version()
        first = self.api("POST", "/v1/apply", doc, status=200)
        self.assertIs(first["changed"], True, first)
        self.assertEqual(first["updated"], [], first)
        self.assertIn("accounts/" + ACME_SELLER, first["created"])
        self.assertIn("products/" + SAAS, first["created"])
        self.assertIn("credentials/" + SELLER[0], first["created"])
        n = len(first["created"]) + first["unchanged"]
        self.assertEqual(first["version"], v0 + 1)
        self.assertEqual(self.catalog_version(), v0 + 1)
        catalog = self.catalog_raw()
        self.assertFalse(all_keys(json.loads(catalog)) & SECRET_MEMBERS)

        second = self.api("POST", "/v1/apply", doc, status=200)
        self.assertIs(second["changed"], False, second)
        self.assertEqual(second["created"], [], second)
        self.assertEqual(second["updated"], [], second)
        self.assertEqual(second["unchanged"], n, second)
        self.assertEqual(second["version"], v0 + 1, second)
        self.assertEqual(self.catalog_version(), v0 + 1)
        self.assertEqual(self.catalog_raw(), catalog)

        # In force for the metering API at once.
        self.assertEqual(self.resolve(TOKEN_GLOBEX_SAAS), SAAS_ANSWER)

        # A changed object is updated, the rest unchanged.
        doc["accounts"][1]["name"] = "Globex (renamed by apply)"
        third = self.api("POST", "/v1/apply", doc, status=200)
        self.assertIs(third["changed"], True, third)
        self.assertEqual(third["created"], [], third)
        self.assertEqual(third["updated"], ["accounts/" + doc["accounts"][1]["id"]], third)
        self.assertEqual(third["unchanged"], n - 1, third)
        self.assertEqual(third["version"], v0 + 2)

        # Durable: a restart without --catalog starts on it.
        catalog = self.catalog_raw()
        srv.kill()
        self.start(catalog=None)
        self.assertEqual(self.catalog_raw(), catalog)
        self.assertEqual(self.catalog_version(), v0 + 2)
        again = self.api("POST", "/v1/apply", doc, status=200)
        self.assertIs(again["changed"], False, again)


# =============================================================================================
def route_table():
    """{path template with {} for parameters: set of methods} from the resource table of
    docs/CONTROL-PLANE.md."""
    with open(CONTROL_PLANE_MD) as f:
        text = f.read()
    section = text.split("### Resources", 1)[1].split("\n### ", 1)[0]
    routes = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split(" | ")[0].lstrip("| ").strip()
        for part in cell.split("·"):
            m = re.search(r"`([^`]+)`", part)
            if not m:
                continue
            methods, path = m.group(1).split(" ", 1)
            path = norm_path(path.split("?", 1)[0])
            for method in methods.replace("\\|", "|").split("|"):
                routes.setdefault(path, set()).add(method.strip().lower())
    return routes


def norm_path(path):
    return re.sub(r"\{[^}]*\}", "{}", path.strip())


class OpenApiDocument:
    def __init__(self, path):
        with open(path) as f:
            self.doc = yaml.safe_load(f)

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target = self.doc
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
        return node

    def response_schema(self, path, method, status):
        item = self.resolve(self.doc["paths"][path])
        op = item[method.lower()]
        responses = op["responses"]
        resp = responses.get(str(status)) or responses.get(status)
        if resp is None:
            raise AssertionError("%s %s documents no %s answer" % (method, path, status))
        resp = self.resolve(resp)
        return self.resolve(resp["content"]["application/json"]["schema"])

    def problems(self, value, schema, where="$"):
        """Structural problems of `value` against `schema`: required members, types, items."""
        schema = self.resolve(schema)
        out = []
        if "allOf" in schema:
            for sub in schema["allOf"]:
                out += self.problems(value, sub, where)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [self.problems(value, sub, where) for sub in schema[key]]
                if all(options):
                    out.append("%s: matches none of %s: %s" % (where, key, options[0]))
        t = schema.get("type")
        if value is None:
            if not schema.get("nullable") and t is not None:
                out.append("%s: null" % where)
            return out
        kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
        if t in kinds and not isinstance(value, kinds[t]):
            out.append("%s: expected %s, got %r" % (where, t, value))
            return out
        if t in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                out.append("%s: expected %s, got %r" % (where, t, value))
                return out
            if t == "integer" and not float(value).is_integer():
                out.append("%s: expected integer, got %r" % (where, value))
        if "enum" in schema and value not in schema["enum"]:
            out.append("%s: %r not in %r" % (where, value, schema["enum"]))
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    out.append("%s: missing required member %r" % (where, name))
            for name, sub in schema.get("properties", {}).items():
                if name in value:
                    out += self.problems(value[name], sub, "%s.%s" % (where, name))
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                out += self.problems(item, schema["items"], "%s[%d]" % (where, i))
        return out


class OpenApiTests(AdminMixin, ServerTestCase):
    """docs/admin-api.openapi.yaml describes every route of the table, and real answers."""

    extra_args = ("--clock", "manual", "--clock-start", T0_ISO)

    @classmethod
    def setUpClass(cls):
        if yaml is None:
            raise AssertionError("PyYAML is needed to read docs/admin-api.openapi.yaml")
        super().setUpClass()

    def setUp(self):
        self.assertTrue(os.path.exists(OPENAPI), "missing " + OPENAPI)
        self.spec = OpenApiDocument(OPENAPI)

    def test_every_route_of_the_table_is_in_paths_with_its_methods(self):
        table = route_table()
        self.assertGreaterEqual(len(table), 25, table)
        paths = {}
        for p, item in self.spec.doc["paths"].items():
            item = self.spec.resolve(item)
            paths.setdefault(norm_path(p), set()).update(
                m for m in item if m in ("get", "put", "post", "patch", "delete"))
        for path, methods in sorted(table.items()):
            with self.subTest(path=path):
                self.assertIn(path, paths, "route %s is not in the OpenAPI paths" % path)
                self.assertLessEqual(methods, paths[path],
                                     "%s: methods %s, OpenAPI has %s"
                                     % (path, sorted(methods), sorted(paths[path])))

    def test_error_answers_have_the_documented_error_shape(self):
        for method, path, template, body, status in (
                ("GET", "/v1/accounts/000000000000", "/v1/accounts/{id}", None, 404),
                ("POST", "/v1/accounts", "/v1/accounts", {"id": GLOBEX_ACCOUNT, "name": "x",
                                                          "roles": ["buyer"]}, 409),
                ("POST", "/v1/accounts", "/v1/accounts", {"bogus": 1}, 400)):
            with self.subTest(method=method, path=path, status=status):
                js = self.api(method, path, body, status=status)
                schema = self.spec.response_schema(template, method, status)
                self.assertEqual(self.spec.problems(js, schema), [], js)
        st, js = self.server.admin("GET", "/v1/status", token="wrong-token-0000000000")
        self.assertEqual(self.spec.problems(
            js, self.spec.response_schema("/v1/status", "get", 401)), [], js)

    def test_real_answers_validate_structurally(self):
        account, customer = self.new_buyer()
        cred = self.api("POST", "/v1/credentials", {"account": ACME_SELLER}, status=201)
        wid = "arn:aws:ecs:us-east-1:%s:task/openapi/%032x" % (account, next(_IDS))
        sid = "%s:%s" % (account, SAAS)
        samples = [
            ("GET", "/v1/status", "/v1/status", None, 200),
            ("GET", "/v1/catalog", "/v1/catalog", None, 200),
            ("GET", "/v1/accounts", "/v1/accounts", None, 200),
            ("GET", "/v1/accounts/" + account, "/v1/accounts/{id}", None, 200),
            ("PATCH", "/v1/accounts/" + account, "/v1/accounts/{id}", {"name": "renamed"}, 200),
            ("GET", "/v1/credentials", "/v1/credentials", None, 200),
            ("POST", "/v1/credentials", "/v1/credentials", {"account": ACME_SELLER}, 201),
            ("GET", "/v1/credentials/" + cred["accessKeyId"], "/v1/credentials/{accessKeyId}",
             None, 200),
            ("POST", "/v1/workloads", "/v1/workloads",
             {"id": wid, "platform": "ecs", "region": "us-east-1", "account": account}, 201),
            ("GET", "/v1/workloads", "/v1/workloads", None, 200),
            ("POST", "/v1/workloads/%s/stop" % enc(wid), "/v1/workloads/{id}/stop", None, 200),
            ("DELETE", "/v1/workloads/" + enc(wid), "/v1/workloads/{id}", None, 200),
            ("GET", "/v1/products", "/v1/products", None, 200),
            ("GET", "/v1/products/" + SAAS, "/v1/products/{code}", None, 200),
            ("POST", "/v1/products/%s/dimensions" % SAAS, "/v1/products/{code}/dimensions",
             {"name": "openapi_dim"}, 201),
            ("PATCH", "/v1/products/%s/dimensions/openapi_dim" % SAAS,
             "/v1/products/{code}/dimensions/{name}", {"unit": "U"}, 200),
            ("DELETE", "/v1/products/%s/dimensions/openapi_dim" % SAAS,
             "/v1/products/{code}/dimensions/{name}", None, 200),
            ("GET", "/v1/products/%s/keys" % CTR, "/v1/products/{code}/keys", None, 200),
            ("GET", "/v1/products/%s/keys/2" % CTR, "/v1/products/{code}/keys/{version}", None,
             200),
            ("POST", "/v1/products/%s/keys" % CTR, "/v1/products/{code}/keys", None, 201),
            ("POST", "/v1/products/%s/keys/4/expire" % CTR,
             "/v1/products/{code}/keys/{version}/expire", None, 200),
            ("GET", "/v1/products/%s/jwks" % CTR, "/v1/products/{code}/jwks", None, 200),
            ("POST", "/v1/subscriptions", "/v1/subscriptions",
             {"account": account, "product": SAAS}, 201),
            ("GET", "/v1/subscriptions?account=" + account, "/v1/subscriptions", None, 200),
            ("GET", "/v1/subscriptions/" + enc(sid), "/v1/subscriptions/{id}", None, 200),
            ("POST", "/v1/subscriptions/%s/unsubscribe" % enc(sid),
             "/v1/subscriptions/{id}/unsubscribe", None, 200),
            ("POST", "/v1/registration-tokens", "/v1/registration-tokens",
             {"product": SAAS, "account": account}, 201),
            ("GET", "/v1/registration-tokens", "/v1/registration-tokens", None, 200),
            ("PUT", "/v1/regions/sa-east-1", "/v1/regions/{region}",
             {"operations": ["MeterUsage"]}, 200),
            ("GET", "/v1/regions", "/v1/regions", None, 200),
            ("GET", "/v1/regions/sa-east-1", "/v1/regions/{region}", None, 200),
            ("DELETE", "/v1/regions/sa-east-1", "/v1/regions/{region}", None, 200),
            ("GET", "/v1/settings", "/v1/settings", None, 200),
            ("PATCH", "/v1/settings", "/v1/settings", {"futureSkewMinutes": 5}, 200),
            ("GET", "/v1/clock", "/v1/clock", None, 200),
            ("POST", "/v1/clock/advance", "/v1/clock/advance", {"seconds": 1}, 200),
            ("PUT", "/v1/clock", "/v1/clock", {"now": "2030-01-01T00:00:00Z"}, 200),
            ("POST", "/v1/faults", "/v1/faults",
             {"operation": "MeterUsage", "caller": EC2[0], "latencyMs": 1, "seed": 3}, 200),
            ("GET", "/v1/faults", "/v1/faults", None, 200),
            ("DELETE", "/v1/faults", "/v1/faults", None, 200),
            ("POST", "/v1/apply", "/v1/apply", {"accounts": []}, 200),
        ]
        for method, path, template, body, status in samples:
            with self.subTest(method=method, path=path):
                js = self.api(method, path, body, status=status)
                schema = self.spec.response_schema(template, method, status)
                self.assertEqual(self.spec.problems(js, schema), [], json.dumps(js)[:500])
        token = self.issue_token(SAAS, account)["token"]
        js = self.api("GET", "/v1/registration-tokens/" + enc(token), status=200)
        schema = self.spec.response_schema("/v1/registration-tokens/{token}", "get", 200)
        self.assertEqual(self.spec.problems(js, schema), [], js)
        js = self.api("DELETE", "/v1/registration-tokens/" + enc(token), status=200)
        schema = self.spec.response_schema("/v1/registration-tokens/{token}", "delete", 200)
        self.assertEqual(self.spec.problems(js, schema), [], js)

    def test_status_has_the_documented_facts(self):
        # docs/CONTROL-PLANE.md: "server facts: service, version, catalog version, clock mode
        # and time, store".
        status = self.api("GET", "/v1/status", status=200)
        self.assertEqual(status.get("service"), "meterd", status)
        self.assertIsInstance(status.get("version"), str, status)
        self.assertTrue(status["version"], status)
        self.assertIsInstance(status.get("catalogVersion"), int, status)
        self.assertEqual(status.get("clock", {}).get("mode"), "manual", status)
        self.assertTrue(status["clock"].get("now"), status)
        self.assertEqual(status.get("store"), STORE_BACKEND, status)


if __name__ == "__main__":
    unittest.main()
