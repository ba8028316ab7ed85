"""RegisterUsage through boto3, AWS CLI v1 and AWS CLI v2: the PS256 JWT it signs (D10), the
public keys (GET /keys/..., `meterd keys export`, `meterd verify-token`), every modeled error and
the order of checks (docs/BEHAVIOUR-DECISIONS.md "RegisterUsage", "Signing keys"), keys that
survive a restart, and the first-call-only entitlement of container workloads.

Signatures are verified independently of meterd with PyJWT and `cryptography`. When the machine
python lacks them, the check runs in Debian's /usr/bin/python3 (packages python3-jwt and
python3-cryptography; the Makefile installs them in CI).
"""
import base64
import datetime
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (OwnDataDirTestCase,   # noqa: E402
    AGENTCORE, AMI, CTR, EC2, ECS, EKS_WEST, GLOBEX_ACCOUNT, METERD, OTHER_SAAS, OTHER_SELLER,
    SAAS, SELLER, TEMP_EC2, TEST_CATALOG, UTC, CliTestCase, Meterd, ServerTestCase, Slots,
    iso, require_binary, to_epoch)
from botocore.exceptions import ClientError  # noqa: E402
from meterd_harness import FARGATE, INITECH_ECS  # noqa: E402

EXPIRED_AT = datetime.datetime(2026, 6, 1, tzinfo=UTC)   # acmectr001 key version 2 "expiredAt"
JWT_HEADER = {"alg": "PS256", "typ": "JWT"}
INVALID_VERSION_MESSAGE = "Public Key version is invalid"


# --- independent JWT checks ------------------------------------------------------------------
def b64url_decode(part):
    if "=" in part or "+" in part or "/" in part:
        raise ValueError("not unpadded base64url: %r" % part[:40])
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_parts(token):
    """(header dict, payload dict, header text, payload text) of a compact JWS, without checking
    the signature."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AssertionError("not a compact JWS (%d parts): %r" % (len(parts), token[:80]))
    htext = b64url_decode(parts[0]).decode("utf-8")
    ptext = b64url_decode(parts[1]).decode("utf-8")
    return json.loads(htext), json.loads(ptext), htext, ptext


def tamper_payload(token, **changes):
    """The same header and signature over a modified payload."""
    h, p, _, _ = jwt_parts(token)
    p.update(changes)
    parts = token.split(".")
    parts[1] = b64url_encode(json.dumps(p, separators=(",", ":")).encode())
    return ".".join(parts)


def tamper_signature(token):
    """Flip one character in the middle of the signature part (a whole byte changes)."""
    parts = token.split(".")
    sig = parts[2]
    i = len(sig) // 2
    parts[2] = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]
    return ".".join(parts)


_VERIFIER = r'''
import base64, json, sys
import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def int_b64u(i):
    return b64u(i.to_bytes((i.bit_length() + 7) // 8, "big"))

out = []
for item in json.load(sys.stdin):
    res = {}
    try:
        if "pem" in item:
            key = serialization.load_pem_public_key(item["pem"].encode())
        else:
            key = jwt.algorithms.RSAPSSAlgorithm.from_jwk(json.dumps(item["jwk"]))
        nums = key.public_numbers()
        res.update(bits=key.key_size, n=int_b64u(nums.n), e=int_b64u(nums.e))
        token = item.get("token")
        if token is not None:
            try:
                res["payload"] = jwt.decode(token, key=key, algorithms=["PS256"], options={
                    "verify_exp": False, "verify_iat": False, "verify_nbf": False,
                    "verify_aud": False, "verify_iss": False})
                res["pyjwt_ok"] = True
            except jwt.PyJWTError as e:
                res["pyjwt_ok"] = False
                res["pyjwt_error"] = repr(e)
            try:
                h, p, s = token.split(".")
                key.verify(unb64u(s), (h + "." + p).encode(),
                           padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                           hashes.SHA256())
                res["crypto_ok"] = True
            except (InvalidSignature, ValueError) as e:
                res["crypto_ok"] = False
                res["crypto_error"] = repr(e)
    except Exception as e:
        res["error"] = repr(e)
    out.append(res)
json.dump(out, sys.stdout)
'''

_JWT_PYTHON = []


def jwt_python():
    """An interpreter that has PyJWT and cryptography, or None."""
    if not _JWT_PYTHON:
        found = None
        for exe in (sys.executable, "/usr/bin/python3"):
            if exe and os.access(exe, os.X_OK):
                p = subprocess.run([exe, "-c", "import jwt, cryptography"], capture_output=True)
                if p.returncode == 0:
                    found = exe
                    break
        _JWT_PYTHON.append(found)
    return _JWT_PYTHON[0]


def require_jwt_python():
    if jwt_python() is None:
        raise unittest.SkipTest("neither %s nor /usr/bin/python3 has PyJWT and cryptography "
                                "(apt-get install python3-jwt python3-cryptography)"
                                % sys.executable)


def verify_many(items):
    """items: [{"token": T (optional), "pem": PEM | "jwk": JWK}] -> per item: bits, n, e,
    pyjwt_ok, crypto_ok, payload (PyJWT's decoding), or error."""
    exe = jwt_python()
    if exe is None:
        raise unittest.SkipTest("no python with PyJWT and cryptography")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    p = subprocess.run([exe, "-c", _VERIFIER], input=json.dumps(items), capture_output=True,
                       text=True, timeout=120, env=env)
    if p.returncode != 0:
        raise AssertionError("verifier failed: %s" % p.stderr)
    return json.loads(p.stdout)


def verify(token, pem=None, jwk=None):
    item = {"token": token}
    if pem is not None:
        item["pem"] = pem
    else:
        item["jwk"] = jwk
    res = verify_many([item])[0]
    if "error" in res:
        raise AssertionError("verifier could not load the key: %s" % res["error"])
    return res


# --- HTTP helpers for the key routes ------------------------------------------------------------
def http_get(endpoint, path):
    """(status, headers dict lower-case, body bytes) of an unauthenticated GET."""
    req = urllib.request.Request(endpoint + path, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def normalize_pem(text):
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


def catalog_copy(directory, mutate):
    """Write a copy of the test catalog changed by mutate(dict) and return its path."""
    with open(TEST_CATALOG) as f:
        cat = json.load(f)
    mutate(cat)
    path = os.path.join(directory, "catalog.json")
    with open(path, "w") as f:
        json.dump(cat, f, indent=1)
    return path


def unsubscribe_globex_from_ctr(cat):
    n = 0
    for s in cat["subscriptions"]:
        if s["account"] == GLOBEX_ACCOUNT and s["product"] == CTR:
            s["status"] = "unsubscribed"
            n += 1
    assert n == 1, "catalog has %d Globex/acmectr001 subscriptions" % n


class _RegisterMixin:
    """RegisterUsage helpers for ServerTestCase subclasses."""

    # Throttling (D14: RegisterUsage 5/s per account and region) must not make these tests
    # flaky: botocore's standard retry mode re-sends a ThrottlingException (and only errors it
    # considers transient). The throttling tests themselves use a single attempt.
    attempts = 5

    def register(self, creds=ECS, product=CTR, version=1, nonce=None, region="us-east-1",
                 send_nonce=True, **cfg):
        kw = {"ProductCode": product, "PublicKeyVersion": version}
        if send_nonce and nonce is not None:
            kw["Nonce"] = nonce
        cfg.setdefault("max_attempts", self.attempts)
        out = self.client(creds, region, **cfg).register_usage(**kw)
        self.assertRequestId(out)
        self.assertIsInstance(out.get("Signature"), str, out)
        self.assertTrue(out["Signature"], out)
        return out

    def assertRegisterError(self, code, creds=ECS, product=CTR, version=1, nonce=None,
                            region="us-east-1", status=400, message=None, **cfg):
        kw = {"ProductCode": product, "PublicKeyVersion": version}
        if nonce is not None:
            kw["Nonce"] = nonce
        cfg.setdefault("max_attempts", self.attempts)
        resp = self.assertClientError(code, self.client(creds, region, **cfg).register_usage,
                                      status=status, **kw)
        if message is not None:
            self.assertIn(message, resp["Error"]["Message"], resp)
        return resp

    def public_pem(self, version, product=CTR):
        status, headers, body = http_get(self.endpoint, "/keys/%s/%s.pem" % (product, version))
        self.assertEqual(status, 200, body[:300])
        text = body.decode("utf-8")
        self.assertTrue(text.lstrip().startswith("-----BEGIN PUBLIC KEY-----"), text[:100])
        self.assertIn("-----END PUBLIC KEY-----", text)
        self.assertNotIn("PRIVATE", text)
        return text

    def jwks(self, product=CTR):
        status, headers, body = http_get(self.endpoint, "/keys/%s" % product)
        self.assertEqual(status, 200, body[:300])
        return json.loads(body.decode("utf-8"))

    def assertValidToken(self, token, product=CTR, version=1, nonce=None, iat_range=None,
                         iat=None):
        """Header, payload (exact key set, values) and signature (with the served PEM of that
        version, by PyJWT and by cryptography with salt 32). Returns the payload."""
        header, payload, htext, ptext = jwt_parts(token)
        self.assertEqual(header, JWT_HEADER, htext)
        expected_keys = {"productCode", "publicKeyVersion", "iat"}
        if nonce is not None:
            expected_keys.add("nonce")
        self.assertEqual(set(payload), expected_keys, ptext)
        self.assertEqual(payload["productCode"], product, ptext)
        self.assertEqual(payload["publicKeyVersion"], version, ptext)
        self.assertIsInstance(payload["publicKeyVersion"], int, ptext)
        if nonce is not None:
            self.assertEqual(payload["nonce"], nonce, ptext)
        self.assertIsInstance(payload["iat"], int, ptext)
        self.assertNotIsInstance(payload["iat"], bool, ptext)
        if iat is not None:
            self.assertEqual(payload["iat"], iat, ptext)
        if iat_range is not None:
            self.assertGreaterEqual(payload["iat"], iat_range[0], ptext)
            self.assertLessEqual(payload["iat"], iat_range[1], ptext)
        res = verify(token, pem=self.public_pem(version, product))
        self.assertTrue(res.get("pyjwt_ok"), res)
        self.assertTrue(res.get("crypto_ok"), res)
        self.assertEqual(res["payload"], payload)
        self.assertEqual(res["bits"], 2048, res)
        return payload


# =============================================================================================
class RegisterUsageSuccessTests(_RegisterMixin, ServerTestCase):

    @classmethod
    def setUpClass(cls):
        require_jwt_python()
        super().setUpClass()

    def test_ecs_task_with_nonce_gets_a_verifiable_ps256_jwt(self):
        before = int(time.time())
        out = self.register(ECS, CTR, 1, nonce="nonce-ecs-0001")
        after = int(time.time())
        self.assertNotIn("PublicKeyRotationTimestamp", out)
        self.assertValidToken(out["Signature"], CTR, 1, nonce="nonce-ecs-0001",
                              iat_range=(before - 2, after + 2))

    def test_token_parts_are_unpadded_base64url(self):
        token = self.register(ECS, CTR, 1, nonce="x")["Signature"]
        parts = token.split(".")
        self.assertEqual(len(parts), 3, token)
        for p in parts:
            self.assertRegex(p, r"^[A-Za-z0-9_-]+$")
        # RSA 2048: the signature is 256 bytes.
        self.assertEqual(len(b64url_decode(parts[2])), 256)

    def test_without_nonce_the_payload_has_no_nonce_claim(self):
        out = self.register(ECS, CTR, 1)
        payload = self.assertValidToken(out["Signature"], CTR, 1)
        self.assertNotIn("nonce", payload)

    def test_empty_nonce_is_kept_in_the_payload(self):
        out = self.register(ECS, CTR, 1, nonce="")
        payload = self.assertValidToken(out["Signature"], CTR, 1, nonce="")
        self.assertEqual(payload["nonce"], "")

    def test_nonce_of_255_characters_with_unicode_and_newlines(self):
        nonce = ("n\u00e9\u4e2d\n\t\"\\/" * 40)[:255]
        self.assertEqual(len(nonce), 255)
        out = self.register(ECS, CTR, 1, nonce=nonce)
        self.assertValidToken(out["Signature"], CTR, 1, nonce=nonce)

    def test_version_3(self):
        out = self.register(ECS, CTR, 3, nonce="v3")
        self.assertNotIn("PublicKeyRotationTimestamp", out)
        self.assertValidToken(out["Signature"], CTR, 3, nonce="v3")

    def test_expired_version_2_still_signs_and_reports_rotation_timestamp(self):
        out = self.register(ECS, CTR, 2, nonce="v2")
        self.assertEqual(out.get("PublicKeyRotationTimestamp"), EXPIRED_AT, out)
        self.assertValidToken(out["Signature"], CTR, 2, nonce="v2")

    def test_fargate_task(self):
        out = self.register(FARGATE, CTR, 1, nonce="fargate")
        self.assertValidToken(out["Signature"], CTR, 1, nonce="fargate")

    def test_eks_pod_in_its_own_region(self):
        out = self.register(EKS_WEST, CTR, 1, nonce="eks", region="us-west-2")
        self.assertValidToken(out["Signature"], CTR, 1, nonce="eks")

    def test_repeated_calls_succeed_and_every_token_verifies(self):
        tokens = [self.register(ECS, CTR, 1, nonce="same-nonce")["Signature"] for _ in range(3)]
        for t in tokens:
            self.assertValidToken(t, CTR, 1, nonce="same-nonce")
        # Another nonce is signed as sent.
        t = self.register(ECS, CTR, 1, nonce="other-nonce")["Signature"]
        self.assertValidToken(t, CTR, 1, nonce="other-nonce")

    def test_tampered_tokens_fail_verification(self):
        token = self.register(ECS, CTR, 1, nonce="tamper-me")["Signature"]
        pem1 = self.public_pem(1)
        good = verify(token, pem=pem1)
        self.assertTrue(good["pyjwt_ok"] and good["crypto_ok"], good)
        for name, bad in (("nonce changed", tamper_payload(token, nonce="tampered")),
                          ("productCode changed", tamper_payload(token, productCode="acmectr002")),
                          ("version changed", tamper_payload(token, publicKeyVersion=3)),
                          ("iat changed", tamper_payload(token, iat=jwt_parts(token)[1]["iat"] + 1)),
                          ("signature changed", tamper_signature(token))):
            with self.subTest(name):
                res = verify(bad, pem=pem1)
                self.assertFalse(res.get("pyjwt_ok"), res)
                self.assertFalse(res.get("crypto_ok"), res)

    def test_token_does_not_verify_with_another_versions_key(self):
        token = self.register(ECS, CTR, 1, nonce="k")["Signature"]
        for other in (2, 3):
            with self.subTest(version=other):
                res = verify(token, pem=self.public_pem(other))
                self.assertFalse(res.get("pyjwt_ok"), res)
                self.assertFalse(res.get("crypto_ok"), res)

    def test_call_without_client_side_validation_still_signs(self):
        # The same request with client-side validation off: nothing changes on the wire.
        out = self.register(ECS, CTR, 1, nonce="pv-off", parameter_validation=False)
        self.assertValidToken(out["Signature"], CTR, 1, nonce="pv-off")


# =============================================================================================
class RegisterUsageErrorTests(_RegisterMixin, ServerTestCase):

    def test_seller_credential_is_access_denied(self):
        self.assertRegisterError("AccessDeniedException", SELLER)
        self.assertRegisterError("AccessDeniedException", OTHER_SELLER)

    def test_ec2_instance_platform_not_supported(self):
        resp = self.assertRegisterError("PlatformNotSupportedException", EC2)
        self.assertIn("ECS task or an EKS pod", resp["Error"]["Message"])

    def test_agentcore_and_temporary_ec2_platform_not_supported(self):
        self.assertRegisterError("PlatformNotSupportedException", AGENTCORE)
        self.assertRegisterError("PlatformNotSupportedException", TEMP_EC2)

    def test_eks_pod_signing_for_another_region_is_invalid_region(self):
        self.assertRegisterError("InvalidRegionException", EKS_WEST, region="us-east-1")
        self.register(EKS_WEST, region="us-west-2")

    def test_ecs_task_signing_for_another_region_is_invalid_region(self):
        self.assertRegisterError("InvalidRegionException", ECS, region="us-west-2")
        self.assertRegisterError("InvalidRegionException", FARGATE, region="eu-west-1")

    def test_non_container_or_unknown_product_is_invalid_product_code(self):
        for product in (AMI, SAAS, OTHER_SAAS, "acmectr999", "nosuchproduct"):
            with self.subTest(product=product):
                self.assertRegisterError("InvalidProductCodeException", ECS, product)

    def test_unknown_public_key_version(self):
        for version in (4, 9, 2147483647):
            with self.subTest(version=version):
                self.assertRegisterError("InvalidPublicKeyVersionException", ECS, CTR, version,
                                         message=INVALID_VERSION_MESSAGE)

    def test_public_key_version_below_one_is_validation(self):
        # botocore would refuse these client-side; switch its validation off to send them.
        for version in (0, -1):
            with self.subTest(version=version):
                resp = self.assertRegisterError("ValidationException", ECS, CTR, version,
                                                parameter_validation=False)
                self.assertIn("publicKeyVersion", resp["Error"]["Message"])

    def test_nonce_of_256_characters_is_validation(self):
        resp = self.assertRegisterError("ValidationException", ECS, CTR, 1, nonce="n" * 256,
                                        parameter_validation=False)
        self.assertIn("nonce", resp["Error"]["Message"])

    def test_missing_or_empty_product_code_is_validation(self):
        c = self.client(ECS, parameter_validation=False, max_attempts=self.attempts)
        resp = self.assertClientError("ValidationException", c.register_usage, status=400,
                                      PublicKeyVersion=1)
        self.assertIn("productCode", resp["Error"]["Message"])
        resp = self.assertClientError("ValidationException", c.register_usage, status=400,
                                      ProductCode="", PublicKeyVersion=1)
        self.assertIn("productCode", resp["Error"]["Message"])
        resp = self.assertClientError("ValidationException", c.register_usage, status=400,
                                      ProductCode=CTR)
        self.assertIn("publicKeyVersion", resp["Error"]["Message"])

    def test_buyer_without_subscription_is_not_entitled(self):
        self.assertRegisterError("CustomerNotEntitledException", INITECH_ECS)
        # An error is not remembered: still not entitled.
        self.assertRegisterError("CustomerNotEntitledException", INITECH_ECS, nonce="again")

    def test_disabled_region(self):
        # ECS workloads live in us-east-1: the disabled-region check comes before the region one.
        self.assertRegisterError("DisabledApiException", ECS, region="eu-south-2")
        self.assertRegisterError("DisabledApiException", EKS_WEST, region="eu-south-2")
        # ... and before the platform check.
        self.assertRegisterError("DisabledApiException", EC2, region="eu-south-2")

    def test_order_caller_before_region(self):
        self.assertRegisterError("AccessDeniedException", SELLER, region="eu-south-2")

    def test_order_platform_before_region_and_product(self):
        self.assertRegisterError("PlatformNotSupportedException", EC2, "nosuchproduct", 9,
                                 region="us-west-2")

    def test_order_region_before_product(self):
        self.assertRegisterError("InvalidRegionException", EKS_WEST, "nosuchproduct", 9,
                                 region="us-east-1")

    def test_order_product_before_version_before_entitlement(self):
        self.assertRegisterError("InvalidProductCodeException", INITECH_ECS, "nosuchproduct", 9)
        self.assertRegisterError("InvalidPublicKeyVersionException", INITECH_ECS, CTR, 9)
        self.assertRegisterError("CustomerNotEntitledException", INITECH_ECS, CTR, 1)

    def test_errors_store_nothing_and_do_not_block_a_later_success(self):
        self.assertRegisterError("InvalidPublicKeyVersionException", FARGATE, CTR, 7)
        self.register(FARGATE, CTR, 1, nonce="after-error")

    def test_unrecognized_and_bad_signature(self):
        self.assertRegisterError("UnrecognizedClientException",
                                 ("AKIANOBODY0000000003", ECS[1]), status=403)
        self.assertRegisterError("InvalidSignatureException", (ECS[0], "z" * 40), status=403)


# =============================================================================================
class SigningKeyRouteTests(_RegisterMixin, ServerTestCase):
    """GET /keys/<product> (JWKS) and /keys/<product>/<version>.pem, without credentials."""

    @classmethod
    def setUpClass(cls):
        require_jwt_python()
        super().setUpClass()

    def test_jwks_lists_the_three_versions(self):
        doc = self.jwks(CTR)
        self.assertEqual(set(doc), {"keys"}, doc)
        keys = doc["keys"]
        self.assertEqual(sorted(k["kid"] for k in keys), ["1", "2", "3"], doc)
        for k in keys:
            with self.subTest(kid=k["kid"]):
                self.assertEqual(k["kty"], "RSA")
                self.assertEqual(k["use"], "sig")
                self.assertEqual(k["alg"], "PS256")
                self.assertEqual(k["e"], "AQAB")
                self.assertRegex(k["n"], r"^[A-Za-z0-9_-]+$")
                self.assertEqual(len(b64url_decode(k["n"])), 256)   # 2048-bit modulus
                for private in ("d", "p", "q", "dp", "dq", "qi"):
                    self.assertNotIn(private, k)
        self.assertEqual(len({k["n"] for k in keys}), 3, "versions share a key")

    def test_pem_and_jwks_are_the_same_keys(self):
        keys = {k["kid"]: k for k in self.jwks(CTR)["keys"]}
        items = [{"pem": self.public_pem(v)} for v in (1, 2, 3)]
        for v, res in zip((1, 2, 3), verify_many(items)):
            with self.subTest(version=v):
                self.assertNotIn("error", res)
                self.assertEqual(res["bits"], 2048)
                self.assertEqual((res["n"], res["e"]), (keys[str(v)]["n"], keys[str(v)]["e"]))

    def test_tokens_verify_with_the_jwk_of_their_version(self):
        keys = {k["kid"]: k for k in self.jwks(CTR)["keys"]}
        for v in (1, 2, 3):
            with self.subTest(version=v):
                token = self.register(ECS, CTR, v, nonce="jwk-%d" % v)["Signature"]
                res = verify(token, jwk=keys[str(v)])
                self.assertTrue(res.get("pyjwt_ok") and res.get("crypto_ok"), res)
                other = keys[str(v % 3 + 1)]
                res = verify(token, jwk=other)
                self.assertFalse(res.get("pyjwt_ok") or res.get("crypto_ok"), res)

    def test_same_key_on_every_request(self):
        self.assertEqual(self.public_pem(1), self.public_pem(1))
        self.assertEqual(self.jwks(CTR), self.jwks(CTR))

    def test_unknown_product_or_version_is_404(self):
        for path in ("/keys/nosuchproduct", "/keys/nosuchproduct/1.pem", "/keys/acmectr001/9.pem",
                     "/keys/acmectr001/0.pem", "/keys/acmectr001/4.pem"):
            with self.subTest(path=path):
                status, _, body = http_get(self.endpoint, path)
                self.assertEqual(status, 404, body[:200])

    def test_key_files_are_private(self):
        self.jwks(CTR)   # every version now exists
        keys_dir = os.path.join(self.server.data_dir, "keys")
        self.assertTrue(os.path.isdir(keys_dir), "no %s" % keys_dir)
        self.assertEqual(stat.S_IMODE(os.stat(keys_dir).st_mode), 0o700)
        files = []
        for root, dirs, names in os.walk(keys_dir):
            for d in dirs:
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode), 0o700, d)
            for n in names:
                files.append(os.path.join(root, n))
        self.assertGreaterEqual(len(files), 3, files)
        for f in files:
            with self.subTest(file=f):
                self.assertEqual(stat.S_IMODE(os.stat(f).st_mode), 0o600)

    def test_private_key_material_is_not_served(self):
        for path in ("/keys/acmectr001", "/keys/acmectr001/1.pem", "/keys/acmectr001/2.pem",
                     "/keys/acmectr001/3.pem"):
            status, _, body = http_get(self.endpoint, path)
            self.assertEqual(status, 200, path)
            self.assertNotIn(b"PRIVATE", body, path)


# =============================================================================================
class MeterdKeyCommandTests(_RegisterMixin, ServerTestCase):
    """`meterd keys export` and `meterd verify-token`, run against the live server's data dir."""

    @classmethod
    def setUpClass(cls):
        require_jwt_python()
        super().setUpClass()

    def meterd(self, *args, check_rc=None):
        p = subprocess.run([METERD] + list(args), capture_output=True, text=True, timeout=120)
        if check_rc is not None:
            self.assertEqual(p.returncode, check_rc,
                             "meterd %s -> rc %s\nstdout=%s\nstderr=%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def export(self, *extra):
        return self.meterd("keys", "export", "--data", self.server.data_dir, "--catalog",
                           self.server.catalog, "--product", CTR, *extra)

    def test_export_pem_equals_served_pem(self):
        for v in (1, 2, 3):
            with self.subTest(version=v):
                served = self.public_pem(v)
                p = self.export("--version", str(v), "--format", "pem")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(normalize_pem(p.stdout), normalize_pem(served))
                self.assertNotIn("PRIVATE", p.stdout)

    def test_export_jwks_equals_served_jwks(self):
        served = self.jwks(CTR)
        p = self.export("--format", "jwks")
        self.assertEqual(p.returncode, 0, p.stderr)
        exported = json.loads(p.stdout)
        key = lambda k: k["kid"]  # noqa: E731
        self.assertEqual(sorted(exported["keys"], key=key), sorted(served["keys"], key=key))

    def test_export_unknown_product_or_version_fails(self):
        p = self.meterd("keys", "export", "--data", self.server.data_dir, "--catalog",
                        self.server.catalog, "--product", "nosuchproduct", "--format", "jwks")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        p = self.export("--version", "9", "--format", "pem")
        self.assertNotEqual(p.returncode, 0, p.stdout)

    def _pem_file(self, version):
        d = tempfile.mkdtemp(prefix="meterd-e2e-pem-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "v%d.pem" % version)
        with open(path, "w") as f:
            f.write(self.public_pem(version))
        return path

    def test_verify_token_accepts_a_valid_token_and_prints_its_payload(self):
        token = self.register(ECS, CTR, 1, nonce="cli-verify")["Signature"]
        _, payload, _, _ = jwt_parts(token)
        p = self.meterd("verify-token", "--token", token, "--public-key", self._pem_file(1),
                        check_rc=0)
        self.assertEqual(json.loads(p.stdout), payload)

    def test_verify_token_expired_version(self):
        token = self.register(ECS, CTR, 2, nonce="cli-v2")["Signature"]
        p = self.meterd("verify-token", "--token", token, "--public-key", self._pem_file(2),
                        check_rc=0)
        self.assertEqual(json.loads(p.stdout)["publicKeyVersion"], 2)

    def test_verify_token_rejects_tampered_tokens_and_wrong_keys(self):
        token = self.register(ECS, CTR, 1, nonce="cli-tamper")["Signature"]
        pem1, pem3 = self._pem_file(1), self._pem_file(3)
        header_none = b64url_encode(b'{"alg":"none","typ":"JWT"}')
        alg_none = header_none + "." + token.split(".")[1] + "."
        cases = [
            ("payload changed", tamper_payload(token, nonce="other"), pem1),
            ("signature changed", tamper_signature(token), pem1),
            ("wrong key", token, pem3),
            ("alg none", alg_none, pem1),
            ("two parts", ".".join(token.split(".")[:2]), pem1),
            ("garbage", "not-a-jwt", pem1),
        ]
        for name, t, pem in cases:
            with self.subTest(name):
                self.meterd("verify-token", "--token", t, "--public-key", pem, check_rc=1)

    def test_verify_token_product_option(self):
        token = self.register(ECS, CTR, 1, nonce="cli-product")["Signature"]
        pem = self._pem_file(1)
        self.meterd("verify-token", "--token", token, "--public-key", pem, "--product", CTR,
                    check_rc=0)
        self.meterd("verify-token", "--token", token, "--public-key", pem, "--product",
                    "acmectr002", check_rc=1)

    def test_exported_pem_verifies_tokens_with_verify_token(self):
        token = self.register(ECS, CTR, 3, nonce="export-then-verify")["Signature"]
        p = self.export("--version", "3", "--format", "pem")
        self.assertEqual(p.returncode, 0, p.stderr)
        d = tempfile.mkdtemp(prefix="meterd-e2e-pem-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "exported.pem")
        with open(path, "w") as f:
            f.write(p.stdout)
        self.meterd("verify-token", "--token", token, "--public-key", path, check_rc=0)
        res = verify(token, pem=p.stdout)
        self.assertTrue(res.get("pyjwt_ok") and res.get("crypto_ok"), res)


# =============================================================================================
class _OwnDataDirBase(_RegisterMixin, OwnDataDirTestCase):
    """Each test runs its servers on a data dir it owns."""

    data_dir_prefix = "meterd-e2e-register-"

    def start_server(self, catalog=TEST_CATALOG, extra_args=()):
        srv = Meterd(catalog=catalog, data_dir=self.data_dir, extra_args=list(extra_args))
        srv.start()
        self.addCleanup(srv.stop)
        type(self).server = srv
        type(self)._clients = {}
        return srv


class KeyPersistenceTests(_OwnDataDirBase):

    @classmethod
    def setUpClass(cls):
        require_jwt_python()
        super().setUpClass()

    def test_keys_survive_a_restart(self):
        srv = self.start_server()
        before = {v: self.public_pem(v) for v in (1, 2, 3)}
        jwks_before = self.jwks(CTR)
        old_token = self.register(ECS, CTR, 1, nonce="before-restart")["Signature"]
        srv.stop()

        self.start_server()
        after = {v: self.public_pem(v) for v in (1, 2, 3)}
        self.assertEqual({v: normalize_pem(p) for v, p in after.items()},
                         {v: normalize_pem(p) for v, p in before.items()})
        self.assertEqual(self.jwks(CTR), jwks_before)
        # A token of before the restart verifies with the key served after it, and vice versa.
        self.assertValidToken(old_token, CTR, 1, nonce="before-restart")
        new_token = self.register(ECS, CTR, 1, nonce="after-restart")["Signature"]
        res = verify(new_token, pem=before[1])
        self.assertTrue(res.get("pyjwt_ok") and res.get("crypto_ok"), res)

    def test_key_generated_on_first_use_survives_a_sigkill(self):
        srv = self.start_server()
        token = self.register(ECS, CTR, 3, nonce="before-kill")["Signature"]
        pem = self.public_pem(3)
        srv.kill()
        self.start_server()
        self.assertEqual(normalize_pem(self.public_pem(3)), normalize_pem(pem))
        self.assertValidToken(token, CTR, 3, nonce="before-kill")


class FirstCallEntitlementTests(_OwnDataDirBase):
    """D10: entitlement is checked only on a container workload's first successful call for a
    product; meterd remembers it durably, shared between RegisterUsage and MeterUsage."""

    def test_registered_task_keeps_working_after_the_buyer_unsubscribes(self):
        srv = self.start_server()
        self.register(ECS, CTR, 1, nonce="first")
        # EKS pod: its first success is a MeterUsage (the same memory).
        h_eks = self.slots.meter_hour("eks:ctr:nodes")
        self.meter(EKS_WEST, CTR, "nodes", ts=h_eks + 5, quantity=1, region="us-west-2")
        srv.stop()

        unsubscribed = catalog_copy(self.work_dir, unsubscribe_globex_from_ctr)
        self.start_server(catalog=unsubscribed)
        # Same ECS task: RegisterUsage and MeterUsage still succeed.
        self.register(ECS, CTR, 1, nonce="after-unsubscribe")
        self.register(ECS, CTR, 3)
        h = self.slots.meter_hour("ecs:ctr:nodes")
        self.meter(ECS, CTR, "nodes", ts=h + 5, quantity=2)
        # The EKS pod that metered before: RegisterUsage succeeds.
        self.register(EKS_WEST, CTR, 1, nonce="eks-after", region="us-west-2")
        # A Fargate task of the same buyer that never called: not entitled, for both operations.
        self.assertRegisterError("CustomerNotEntitledException", FARGATE)
        h2 = self.slots.meter_hour("fargate:ctr:nodes")
        self.assertMeterError("CustomerNotEntitledException", FARGATE, CTR, "nodes", ts=h2 + 5)

    def test_failed_first_call_is_not_remembered_as_entitlement(self):
        # The Fargate task's first call fails (bad version); after unsubscribing it is still
        # a first call, so it is refused.
        srv = self.start_server()
        self.assertRegisterError("InvalidPublicKeyVersionException", FARGATE, CTR, 9)
        srv.stop()
        self.start_server(catalog=catalog_copy(self.work_dir, unsubscribe_globex_from_ctr))
        self.assertRegisterError("CustomerNotEntitledException", FARGATE)


    def _pending_since(self, epoch):
        def mutate(cat):
            for s in cat["subscriptions"]:
                if s["account"] == GLOBEX_ACCOUNT and s["product"] == CTR:
                    s["status"] = "unsubscribe-pending"
                    s["unsubscribedAt"] = iso(epoch)
        return catalog_copy(self.work_dir, mutate)

    def test_unsubscribe_pending_within_its_hour_still_entitles_a_first_call(self):
        self.start_server(catalog=self._pending_since(int(time.time()) - 30 * 60))
        self.register(FARGATE, CTR, 1, nonce="pending")

    def test_unsubscribe_pending_past_its_hour_does_not_entitle_a_first_call(self):
        self.start_server(catalog=self._pending_since(int(time.time()) - 2 * 3600))
        self.assertRegisterError("CustomerNotEntitledException", FARGATE)


_GENERATE_KEY = r'''
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
print(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                      serialization.NoEncryption()).decode(), end="")
print("@@")
print(k.public_key().public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
'''


class CatalogKeyOptionTests(_OwnDataDirBase):
    """signingKeys options: "expired" without "expiredAt", and "privateKeyPem" (an imported key)."""

    @classmethod
    def setUpClass(cls):
        require_jwt_python()
        super().setUpClass()

    def _with_keys(self, *refs):
        def mutate(cat):
            for p in cat["products"]:
                if p["code"] == CTR:
                    p["signingKeys"].extend(refs)
        return catalog_copy(self.work_dir, mutate)

    def test_expired_without_expired_at_reports_the_catalog_load_time(self):
        catalog = self._with_keys({"version": 4, "expired": True})
        before = time.time()
        self.start_server(catalog=catalog)
        after = time.time()
        out = self.register(ECS, CTR, 4, nonce="v4")
        ts = out.get("PublicKeyRotationTimestamp")
        self.assertIsNotNone(ts, out)
        self.assertGreaterEqual(ts.timestamp(), int(before) - 1, out)
        self.assertLessEqual(ts.timestamp(), after + 1, out)
        self.assertValidToken(out["Signature"], CTR, 4, nonce="v4")
        # Versions that are not expired still carry no rotation timestamp.
        self.assertNotIn("PublicKeyRotationTimestamp", self.register(ECS, CTR, 1))

    def test_private_key_pem_is_imported(self):
        p = subprocess.run([jwt_python(), "-c", _GENERATE_KEY], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        private_pem, public_pem = p.stdout.split("@@\n")
        self.start_server(catalog=self._with_keys({"version": 5, "privateKeyPem": private_pem}))
        served = self.public_pem(5)
        mine, theirs = verify_many([{"pem": public_pem}, {"pem": served}])
        self.assertEqual((theirs["n"], theirs["e"]), (mine["n"], mine["e"]))
        jwk = {k["kid"]: k for k in self.jwks(CTR)["keys"]}["5"]
        self.assertEqual((jwk["n"], jwk["e"]), (mine["n"], mine["e"]))
        token = self.register(ECS, CTR, 5, nonce="imported")["Signature"]
        res = verify(token, pem=public_pem)
        self.assertTrue(res.get("pyjwt_ok") and res.get("crypto_ok"), res)
        # The private key never appears in what meterd serves.
        body = http_get(self.endpoint, "/keys/%s" % CTR)[2] + served.encode()
        self.assertNotIn(private_pem.splitlines()[1].encode(), body)


class RegisterUsageThrottlingTests(_RegisterMixin, ServerTestCase):
    """D14: RegisterUsage is limited to 5/s per (account, region), bursts of 10; over the limit
    -> 400 ThrottlingException (a modeled error of RegisterUsage). The buckets refill with the
    business clock, so a frozen test clock makes the burst exact whatever the machine's speed
    (refilling is a unit test of the throttler)."""

    attempts = 1
    extra_args = ("--clock", "manual")
    throttle = True

    def test_exact_burst_then_throttled(self):
        c = self.client(ECS, max_attempts=1)
        outcomes = []
        for _ in range(40):
            try:
                c.register_usage(ProductCode=CTR, PublicKeyVersion=1)
                outcomes.append("ok")
            except ClientError as e:
                outcomes.append((e.response["Error"]["Code"],
                                 e.response["ResponseMetadata"]["HTTPStatusCode"]))
        summary = {str(o): outcomes.count(o) for o in set(outcomes)}
        self.assertTrue(("ThrottlingException", 400) in outcomes,
                        "%d calls in a row, none throttled: %s" % (len(outcomes), summary))
        self.assertEqual(outcomes[:10], ["ok"] * 10, summary)
        self.assertEqual(outcomes[10:], [("ThrottlingException", 400)] * 30, summary)
        # Another region of the same buyer account has its own bucket.
        self.register(EKS_WEST, CTR, 1, region="us-west-2", max_attempts=1)


# =============================================================================================
class _RegisterCliBase(_RegisterMixin, CliTestCase):

    @classmethod
    def setUpClass(cls):
        require_jwt_python()
        super().setUpClass()

    def test_success_and_signature_verifies(self):
        before = int(time.time())
        out = self.aws_ok("register-usage", {"ProductCode": CTR, "PublicKeyVersion": 1,
                                             "Nonce": "cli-%d" % self.cli_major}, creds=ECS)
        self.assertNotIn("PublicKeyRotationTimestamp", out)
        self.assertValidToken(out["Signature"], CTR, 1, nonce="cli-%d" % self.cli_major,
                              iat_range=(before - 2, int(time.time()) + 2))

    def test_expired_version_rotation_timestamp(self):
        out = self.aws_ok("register-usage", {"ProductCode": CTR, "PublicKeyVersion": 2},
                          creds=ECS)
        self.assertEqual(to_epoch(out["PublicKeyRotationTimestamp"]), EXPIRED_AT.timestamp(), out)
        self.assertValidToken(out["Signature"], CTR, 2)

    def test_shorthand_arguments_fargate(self):
        out = self.aws_ok("register-usage", None, creds=FARGATE, extra=[
            "--product-code", CTR, "--public-key-version", "3", "--nonce", "shorthand"])
        self.assertValidToken(out["Signature"], CTR, 3, nonce="shorthand")

    def test_eks_in_its_region(self):
        out = self.aws_ok("register-usage", {"ProductCode": CTR, "PublicKeyVersion": 1},
                          creds=EKS_WEST, region="us-west-2")
        self.assertValidToken(out["Signature"], CTR, 1)

    def test_errors(self):
        cases = [
            ("AccessDeniedException", SELLER, "us-east-1", {"ProductCode": CTR, "PublicKeyVersion": 1}),
            ("PlatformNotSupportedException", EC2, "us-east-1", {"ProductCode": CTR, "PublicKeyVersion": 1}),
            ("InvalidRegionException", EKS_WEST, "us-east-1", {"ProductCode": CTR, "PublicKeyVersion": 1}),
            ("InvalidProductCodeException", ECS, "us-east-1", {"ProductCode": AMI, "PublicKeyVersion": 1}),
            ("InvalidPublicKeyVersionException", ECS, "us-east-1", {"ProductCode": CTR, "PublicKeyVersion": 9}),
            ("CustomerNotEntitledException", INITECH_ECS, "us-east-1", {"ProductCode": CTR, "PublicKeyVersion": 1}),
            ("DisabledApiException", ECS, "eu-south-2", {"ProductCode": CTR, "PublicKeyVersion": 1}),
        ]
        for code, creds, region, params in cases:
            with self.subTest(code=code):
                r = self.aws_error(code, "register-usage", params, creds=creds, region=region)
                if code == "InvalidPublicKeyVersionException":
                    self.assertIn(INVALID_VERSION_MESSAGE, r.stderr)


class RegisterUsageCliV1Tests(_RegisterCliBase):
    cli_major = 1


class RegisterUsageCliV2Tests(_RegisterCliBase):
    cli_major = 2


del _RegisterCliBase


if __name__ == "__main__":
    unittest.main()
