"""ResolveCustomer through boto3, AWS CLI v1 and AWS CLI v2 (docs/BEHAVIOUR-DECISIONS.md
"ResolveCustomer", BEHAVIOUR.md D12): answers for legacy and concurrent-agreements tokens, every
modeled error and the order of checks, token expiry on a frozen business clock
(`--clock manual`, `--token-ttl-hours`, catalog `issuedAt`), and `meterctl tokens issue`."""
import copy
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (OwnDataDirTestCase,   # noqa: E402
    AGENTCORE, CA_LICENSE, DISABLED, EC2, ECS, EKS_WEST, GLOBEX_ACCOUNT, GLOBEX_CUSTOMER,
    OTHER_SAAS, OTHER_SELLER, SAAS, SAAS_CA, SELLER, TEMP_EC2, TEST_CATALOG, CliTestCase, Meterd,
    ServerTestCase, iso, ledger_snapshot, require_binary)
from meterd_harness import (  # noqa: E402
    FARGATE, TOKEN_GLOBEX_CA, TOKEN_GLOBEX_SAAS, TOKEN_ISSUED_2020, TOKEN_OTHER_SELLER)
from botocore.exceptions import ClientError  # noqa: E402

INVALID_TOKEN_MESSAGE = "Registration token is invalid"

SAAS_ANSWER = {"CustomerIdentifier": GLOBEX_CUSTOMER, "ProductCode": SAAS,
               "CustomerAWSAccountId": GLOBEX_ACCOUNT}
CA_ANSWER = {"ProductCode": SAAS_CA, "CustomerAWSAccountId": GLOBEX_ACCOUNT,
             "LicenseArn": CA_LICENSE}
OTHER_ANSWER = {"CustomerIdentifier": GLOBEX_CUSTOMER, "ProductCode": OTHER_SAAS,
                "CustomerAWSAccountId": GLOBEX_ACCOUNT}


def answer(out):
    """The modeled members of a ResolveCustomer response (ResponseMetadata dropped)."""
    return {k: v for k, v in out.items() if k != "ResponseMetadata"}


class _ResolveMixin:

    # Throttling (D14: ResolveCustomer 20/s per account and region) must not make these tests
    # flaky: botocore's standard retry mode re-sends a ThrottlingException. The throttling test
    # itself uses a single attempt.
    attempts = 5

    def resolve(self, token, creds=SELLER, region="us-east-1", **cfg):
        cfg.setdefault("max_attempts", self.attempts)
        out = self.client(creds, region, **cfg).resolve_customer(RegistrationToken=token)
        self.assertRequestId(out)
        return answer(out)

    def assertResolves(self, token, expected, creds=SELLER, region="us-east-1"):
        got = self.resolve(token, creds, region)
        self.assertEqual(got, expected)
        return got

    def assertResolveError(self, code, token, creds=SELLER, region="us-east-1", status=400,
                           message=None, **cfg):
        kw = {} if token is None else {"RegistrationToken": token}
        cfg.setdefault("max_attempts", self.attempts)
        resp = self.assertClientError(code, self.client(creds, region, **cfg).resolve_customer,
                                      status=status, **kw)
        if message is not None:
            self.assertIn(message, resp["Error"]["Message"], resp)
        return resp


# =============================================================================================
class ResolveCustomerTests(_ResolveMixin, ServerTestCase):

    def test_legacy_token(self):
        got = self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        self.assertNotIn("LicenseArn", got)

    def test_concurrent_agreements_token_has_license_and_no_customer_identifier(self):
        got = self.assertResolves(TOKEN_GLOBEX_CA, CA_ANSWER)
        self.assertNotIn("CustomerIdentifier", got)

    def test_same_answer_on_repeated_calls(self):
        for token, expected in ((TOKEN_GLOBEX_SAAS, SAAS_ANSWER), (TOKEN_GLOBEX_CA, CA_ANSWER)):
            for i in range(3):
                with self.subTest(token=token, call=i):
                    self.assertResolves(token, expected)

    def test_other_regions_resolve_too(self):
        for region in ("us-west-2", "eu-west-1", "ap-east-1"):
            with self.subTest(region=region):
                self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER, region=region)

    def test_other_seller_resolves_its_own_token(self):
        self.assertResolves(TOKEN_OTHER_SELLER, OTHER_ANSWER, creds=OTHER_SELLER)

    def test_token_of_another_sellers_product_is_invalid(self):
        self.assertResolveError("InvalidTokenException", TOKEN_OTHER_SELLER,
                                message=INVALID_TOKEN_MESSAGE)
        self.assertResolveError("InvalidTokenException", TOKEN_GLOBEX_SAAS, creds=OTHER_SELLER,
                                message=INVALID_TOKEN_MESSAGE)
        self.assertResolveError("InvalidTokenException", TOKEN_GLOBEX_CA, creds=OTHER_SELLER,
                                message=INVALID_TOKEN_MESSAGE)

    def test_unknown_tokens_are_invalid(self):
        for token in ("no-such-token", TOKEN_GLOBEX_SAAS.upper(), TOKEN_GLOBEX_SAAS + " ",
                      " " + TOKEN_GLOBEX_SAAS, TOKEN_GLOBEX_SAAS[:-1], "x" * 5000,
                      "\u00e9\u4e2d-token"):
            with self.subTest(token=token[:40]):
                self.assertResolveError("InvalidTokenException", token,
                                        message=INVALID_TOKEN_MESSAGE)

    def test_token_issued_in_2020_is_expired(self):
        self.assertResolveError("ExpiredTokenException", TOKEN_ISSUED_2020)
        # Still expired on a retry (nothing renews it).
        self.assertResolveError("ExpiredTokenException", TOKEN_ISSUED_2020)

    def test_workload_credentials_are_access_denied(self):
        for creds in (EC2, ECS, EKS_WEST, AGENTCORE, TEMP_EC2, FARGATE):
            with self.subTest(key=creds[0]):
                self.assertResolveError("AccessDeniedException", TOKEN_GLOBEX_SAAS, creds=creds)

    def test_disabled_region(self):
        self.assertResolveError("DisabledApiException", TOKEN_GLOBEX_SAAS, region="eu-south-2")
        self.assertResolveError("DisabledApiException", TOKEN_GLOBEX_CA, region="eu-south-2")

    def test_order_caller_before_region(self):
        self.assertResolveError("AccessDeniedException", TOKEN_GLOBEX_SAAS, creds=EC2,
                                region="eu-south-2")

    def test_order_region_before_token(self):
        for token in ("no-such-token", TOKEN_OTHER_SELLER, TOKEN_ISSUED_2020):
            with self.subTest(token=token):
                self.assertResolveError("DisabledApiException", token, region="eu-south-2")

    def test_order_caller_before_token(self):
        self.assertResolveError("AccessDeniedException", "no-such-token", creds=ECS)
        self.assertResolveError("AccessDeniedException", TOKEN_ISSUED_2020, creds=ECS)

    def test_empty_or_missing_token_is_validation(self):
        resp = self.assertResolveError("ValidationException", "", parameter_validation=False)
        self.assertIn("registrationToken", resp["Error"]["Message"])
        resp = self.assertResolveError("ValidationException", None, parameter_validation=False)
        self.assertIn("registrationToken", resp["Error"]["Message"])

    def test_validation_before_caller(self):
        self.assertResolveError("ValidationException", "", creds=EC2, parameter_validation=False)

    def test_auth_errors(self):
        self.assertResolveError("UnrecognizedClientException", TOKEN_GLOBEX_SAAS, creds=DISABLED,
                                status=403)
        self.assertResolveError("InvalidSignatureException", TOKEN_GLOBEX_SAAS,
                                creds=(SELLER[0], "w" * 40), status=403)

    def test_resolving_stores_no_usage(self):
        self.resolve(TOKEN_GLOBEX_SAAS)
        self.assertEqual(ledger_snapshot(self.server.data_dir)[0], 0)


class ResolveCustomerThrottlingTests(_ResolveMixin, ServerTestCase):
    """D14: ResolveCustomer is limited to 20/s per (account, region), bursts of 40; over the
    limit -> 400 ThrottlingException (a modeled error of ResolveCustomer). A frozen test clock
    makes the burst exact (refilling is a unit test of the throttler)."""

    attempts = 1
    extra_args = ("--clock", "manual")
    throttle = True

    def test_exact_burst_then_throttled(self):
        c = self.client(SELLER, max_attempts=1)
        outcomes = []
        for _ in range(120):
            try:
                c.resolve_customer(RegistrationToken=TOKEN_GLOBEX_SAAS)
                outcomes.append("ok")
            except ClientError as e:
                outcomes.append((e.response["Error"]["Code"],
                                 e.response["ResponseMetadata"]["HTTPStatusCode"]))
        summary = {str(o): outcomes.count(o) for o in set(outcomes)}
        self.assertTrue(("ThrottlingException", 400) in outcomes,
                        "%d calls in a row, none throttled: %s" % (len(outcomes), summary))
        self.assertEqual(outcomes[:40], ["ok"] * 40, summary)
        self.assertEqual(outcomes[40:], [("ThrottlingException", 400)] * 80, summary)
        # Another seller account has its own bucket; so has another region.
        self.assertResolves(TOKEN_OTHER_SELLER, OTHER_ANSWER, creds=OTHER_SELLER)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER, region="us-west-2")


# =============================================================================================
class TokensIssueCommandTests(_ResolveMixin, ServerTestCase):
    """`meterctl tokens issue` against the running server's admin API; the token resolves at
    once."""

    def issue(self, *args):
        p = self.server.meterctl("tokens", "issue", *args, check=False)
        self.assertEqual(p.returncode, 0, "rc %s\nstdout=%s\nstderr=%s"
                         % (p.returncode, p.stdout, p.stderr))
        token = p.stdout.strip()
        self.assertTrue(token, p.stdout)
        self.assertNotIn("\n", token, "expected just the token on stdout: %r" % p.stdout)
        return token

    def test_issue_legacy_token_resolves(self):
        token = self.issue("--product", SAAS, "--account", GLOBEX_ACCOUNT)
        self.assertNotIn(token, (TOKEN_GLOBEX_SAAS, TOKEN_GLOBEX_CA))
        self.assertResolves(token, SAAS_ANSWER)
        self.assertResolves(token, SAAS_ANSWER)
        # Tokens are opaque and random: a second one differs and resolves the same way.
        token2 = self.issue("--product", SAAS, "--account", GLOBEX_ACCOUNT)
        self.assertNotEqual(token, token2)
        self.assertResolves(token2, SAAS_ANSWER)

    def test_issue_concurrent_agreements_token_resolves_with_license(self):
        token = self.issue("--product", SAAS_CA, "--account", GLOBEX_ACCOUNT, "--license-arn",
                           CA_LICENSE)
        got = self.assertResolves(token, CA_ANSWER)
        self.assertNotIn("CustomerIdentifier", got)

    def test_issued_token_belongs_to_the_products_seller(self):
        token = self.issue("--product", SAAS, "--account", GLOBEX_ACCOUNT)
        self.assertResolveError("InvalidTokenException", token, creds=OTHER_SELLER,
                                message=INVALID_TOKEN_MESSAGE)
        other = self.issue("--product", OTHER_SAAS, "--account", GLOBEX_ACCOUNT)
        self.assertResolves(other, OTHER_ANSWER, creds=OTHER_SELLER)
        self.assertResolveError("InvalidTokenException", other, creds=SELLER)

    def test_issued_token_is_refused_to_workloads_and_in_disabled_regions(self):
        token = self.issue("--product", SAAS, "--account", GLOBEX_ACCOUNT)
        self.assertResolveError("AccessDeniedException", token, creds=EC2)
        self.assertResolveError("DisabledApiException", token, region="eu-south-2")


# =============================================================================================
class _ClockBase(_ResolveMixin, OwnDataDirTestCase):
    """Servers on a data dir the test owns, with a frozen business clock."""

    data_dir_prefix = "meterd-e2e-tokens-"

    def setUp(self):
        super().setUp()
        # A whole minute two days ago.
        self.t0 = (int(time.time()) // 60) * 60 - 2 * 86400
        self.srv = None

    def start_at(self, epoch, catalog=TEST_CATALOG, extra_args=(), data_dir=None):
        if self.srv is not None:
            self.srv.stop()
        srv = Meterd(catalog=catalog, data_dir=data_dir or self.data_dir,
                     extra_args=["--clock", "manual", "--clock-start", iso(epoch)]
                     + list(extra_args))
        srv.start()
        self.addCleanup(srv.stop)
        self.srv = srv
        type(self).server = srv
        type(self)._clients = {}
        return srv


class TokenExpiryTests(_ClockBase):

    def test_default_ttl_is_four_hours_from_first_sight(self):
        self.start_at(self.t0)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        self.assertResolves(TOKEN_GLOBEX_CA, CA_ANSWER)
        self.start_at(self.t0 + 3 * 3600 + 59 * 60)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        self.assertResolves(TOKEN_GLOBEX_CA, CA_ANSWER)
        self.start_at(self.t0 + 4 * 3600)
        self.assertResolveError("ExpiredTokenException", TOKEN_GLOBEX_SAAS)
        self.assertResolveError("ExpiredTokenException", TOKEN_GLOBEX_CA)
        # Expired tokens still obey the earlier checks.
        self.assertResolveError("AccessDeniedException", TOKEN_GLOBEX_SAAS, creds=ECS)
        self.assertResolveError("DisabledApiException", TOKEN_GLOBEX_SAAS, region="eu-south-2")
        self.assertResolveError("InvalidTokenException", TOKEN_GLOBEX_SAAS, creds=OTHER_SELLER)

    def test_first_sight_is_remembered_across_a_sigkill(self):
        srv = self.start_at(self.t0)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        srv.kill()
        self.srv = None
        self.start_at(self.t0 + 4 * 3600 + 60)
        self.assertResolveError("ExpiredTokenException", TOKEN_GLOBEX_SAAS)

    def test_token_ttl_hours_flag(self):
        ttl = ("--token-ttl-hours", "1")
        self.start_at(self.t0, extra_args=ttl)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        self.start_at(self.t0 + 59 * 60, extra_args=ttl)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        self.start_at(self.t0 + 3600, extra_args=ttl)
        self.assertResolveError("ExpiredTokenException", TOKEN_GLOBEX_SAAS)
        # The same data dir under the default TTL: 1 h after first sight is fine again.
        self.start_at(self.t0 + 3600)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)

    def test_catalog_issued_at_counts_instead_of_first_sight(self):
        def with_issued_at(cat):
            for t in cat["registrationTokens"]:
                if t["token"] == TOKEN_GLOBEX_SAAS:
                    t["issuedAt"] = iso(self.t0 - 3 * 3600)
        path = os.path.join(self.work_dir, "catalog.json")
        with open(TEST_CATALOG) as f:
            cat = json.load(f)
        with_issued_at(cat)
        with open(path, "w") as f:
            json.dump(cat, f)
        self.start_at(self.t0, catalog=path)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        self.start_at(self.t0 + 59 * 60, catalog=path)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        self.start_at(self.t0 + 3600, catalog=path)
        self.assertResolveError("ExpiredTokenException", TOKEN_GLOBEX_SAAS)
        # The token without issuedAt was first seen at t0 by this data dir: still valid.
        self.assertResolves(TOKEN_GLOBEX_CA, CA_ANSWER)

    def test_a_fresh_data_dir_sees_catalog_tokens_anew(self):
        self.start_at(self.t0)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)
        other_dir = tempfile.mkdtemp(prefix="meterd-e2e-tokens2-")
        self.addCleanup(shutil.rmtree, other_dir, True)
        self.start_at(self.t0 + 5 * 3600, data_dir=other_dir)
        self.assertResolves(TOKEN_GLOBEX_SAAS, SAAS_ANSWER)


# =============================================================================================
class _ResolveCliBase(CliTestCase):

    def test_legacy_token(self):
        out = self.aws_ok("resolve-customer", {"RegistrationToken": TOKEN_GLOBEX_SAAS})
        self.assertEqual(out, SAAS_ANSWER)

    def test_shorthand_argument_and_repeat(self):
        for _ in range(2):
            out = self.aws_ok("resolve-customer", None,
                              extra=["--registration-token", TOKEN_GLOBEX_SAAS])
            self.assertEqual(out, SAAS_ANSWER)

    def test_errors(self):
        cases = [
            ("InvalidTokenException", SELLER, "us-east-1", "no-such-token"),
            ("InvalidTokenException", SELLER, "us-east-1", TOKEN_OTHER_SELLER),
            ("ExpiredTokenException", SELLER, "us-east-1", TOKEN_ISSUED_2020),
            ("AccessDeniedException", ECS, "us-east-1", TOKEN_GLOBEX_SAAS),
            ("DisabledApiException", SELLER, "eu-south-2", TOKEN_GLOBEX_SAAS),
        ]
        for code, creds, region, token in cases:
            with self.subTest(code=code, token=token):
                r = self.aws_error(code, "resolve-customer", {"RegistrationToken": token},
                                   creds=creds, region=region)
                if code == "InvalidTokenException":
                    self.assertIn(INVALID_TOKEN_MESSAGE, r.stderr)


class ResolveCustomerCliV1Tests(_ResolveCliBase):
    cli_major = 1

    def test_concurrent_agreements_token(self):
        out = self.aws_ok("resolve-customer", {"RegistrationToken": TOKEN_GLOBEX_CA})
        self.assertEqual(out, CA_ANSWER)


class ResolveCustomerCliV2Tests(_ResolveCliBase):
    """CLI v2 2.9 knows no LicenseArn in ResolveCustomerResult: it drops it from the output."""
    cli_major = 2

    def test_concurrent_agreements_token_with_older_model(self):
        out = self.aws_ok("resolve-customer", {"RegistrationToken": TOKEN_GLOBEX_CA})
        expected = copy.deepcopy(CA_ANSWER)
        del expected["LicenseArn"]
        self.assertEqual(out, expected)


del _ResolveCliBase


if __name__ == "__main__":
    unittest.main()
