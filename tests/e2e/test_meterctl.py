"""meterctl, the command line of the admin API (docs/CONTROL-PLANE.md), as a user runs it: the
real binary (build/bin/meterctl) against a real meterd, through the harness (METERD_ADMIN_URL and
METERD_ADMIN_TOKEN set). --help at every level, table and JSON output, exit codes, apply, and
the commands whose effect a real boto3 client sees on its next metering call."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from e2e_support import (ServerTestCase,   # noqa: E402
    CTR, EXAMPLE_CATALOG, GLOBEX_ACCOUNT, GLOBEX_CUSTOMER, OTHER_SAAS, OTHER_SELLER, SAAS, SELLER,
    iso, require_binary)
from meterd_harness import METERCTL  # noqa: E402
from test_admin_api import (AdminMixin, T0_ISO, enc, new_account_id,   # noqa: E402
                            parse_time, rec)

ACME_SELLER = "111122223333"
SAAS_ANSWER = {"CustomerIdentifier": GLOBEX_CUSTOMER, "ProductCode": SAAS,
               "CustomerAWSAccountId": GLOBEX_ACCOUNT}

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT = 0, 1, 2, 3, 4
EXIT_UNAUTHORIZED, EXIT_UNAVAILABLE = 5, 6


def require_meterctl():
    require_binary()
    if not os.access(METERCTL, os.X_OK):
        raise AssertionError("meterctl binary not built: %s (cmake --build build)" % METERCTL)


def run_meterctl(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("METERD_ADMIN_")}
    e.update(env or {})
    return subprocess.run([METERCTL] + [str(a) for a in args], capture_output=True, text=True,
                          env=e, timeout=60)


def subcommands(help_text):
    """The subcommand names listed under 'Subcommands:' in a CLI11 help text."""
    names = []
    if "Subcommands:" not in help_text:
        return names
    for line in help_text.split("Subcommands:", 1)[1].splitlines()[1:]:
        if not line.strip():
            if names:
                break
            continue
        m = re.match(r"^  (\S+)(\s|$)", line)
        if m is None:
            break
        names.append(m.group(1))
    return names


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# =============================================================================================
class MeterctlHelpTests(unittest.TestCase):
    """--help at every level exits 0 and shows the usage; no server needed."""

    @classmethod
    def setUpClass(cls):
        require_meterctl()

    def test_help_at_every_level(self):
        seen = []
        queue = [[]]
        while queue:
            path = queue.pop(0)
            for flag in ("--help", "-h"):
                p = run_meterctl(*(path + [flag]))
                with self.subTest(command=" ".join(path + [flag])):
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertIn("Usage:", p.stdout)
                    self.assertEqual(p.stderr, "")
            seen.append(" ".join(path))
            p = run_meterctl(*(path + ["--help"]))
            for name in subcommands(p.stdout):
                queue.append(path + [name])
        top = subcommands(run_meterctl("--help").stdout)
        for noun in ("status", "catalog", "apply", "accounts", "credentials", "workloads",
                     "products", "dimensions", "keys", "subscriptions", "subscribe",
                     "unsubscribe", "tokens", "regions", "settings", "clock", "faults"):
            self.assertIn(noun, top)
        for command in ("accounts create", "accounts list", "accounts get", "accounts update",
                        "accounts delete", "tokens issue", "keys export", "regions disable",
                        "regions enable", "settings set", "settings get", "clock get",
                        "clock set", "clock advance", "faults set", "faults list",
                        "faults clear"):
            self.assertIn(command, seen)
        self.assertGreater(len(seen), 50, seen)

    def test_top_level_help_documents_the_exit_codes(self):
        out = run_meterctl("--help").stdout
        for code in range(7):
            self.assertRegex(out, r"\n\s+%d\s+\S" % code)

    def test_no_command_is_a_usage_error(self):
        p = run_meterctl()
        self.assertEqual(p.returncode, EXIT_USAGE, p)
        p = run_meterctl("accounts")
        self.assertEqual(p.returncode, EXIT_USAGE, p)
        p = run_meterctl("no-such-command")
        self.assertEqual(p.returncode, EXIT_USAGE, p)


# =============================================================================================
class _CtlMixin(AdminMixin):

    def ctl(self, *args, rc=EXIT_OK):
        p = self.server.meterctl(*args, check=False)
        self.assertEqual(p.returncode, rc, "meterctl %s: rc %d\nstdout=%s\nstderr=%s"
                         % (" ".join(map(str, args)), p.returncode, p.stdout, p.stderr))
        if rc != EXIT_OK:
            self.assertRegex(p.stderr, r"^meterctl: \w+: ", p.stderr)
        return p

    def ctl_json(self, *args):
        p = self.ctl("-o", "json", *args)
        return json.loads(p.stdout)

    def ctl_error(self, rc, *args):
        with self.assertNothingChanged():
            return self.ctl(*args, rc=rc)


class MeterctlTests(_CtlMixin, ServerTestCase):
    """meterctl against one server on the test catalog and a manual business clock."""

    extra_args = ("--clock", "manual", "--clock-start", T0_ISO)

    @classmethod
    def setUpClass(cls):
        require_meterctl()
        super().setUpClass()

    # --- output ----------------------------------------------------------------------------------
    def test_table_and_json_output(self):
        accounts = self.api("GET", "/v1/accounts", status=200)
        table = self.ctl("accounts", "list").stdout.splitlines()
        self.assertEqual(table[0].split()[:2], ["ID", "NAME"], table)
        rows = [line for line in table[1:] if line.strip()]
        self.assertEqual(len(rows), len(accounts), table)
        for account, row in zip(accounts, rows):
            self.assertTrue(row.startswith(account["id"] + " "), (row, account))
            self.assertIn(account["name"], row)
        self.assertEqual(self.ctl_json("accounts", "list"), accounts)
        p = self.ctl("--output", "json", "accounts", "list")
        self.assertEqual(json.loads(p.stdout), accounts)

        one = self.ctl("accounts", "get", GLOBEX_ACCOUNT).stdout
        self.assertRegex(one, r"(?m)^id:\s+%s$" % GLOBEX_ACCOUNT)
        self.assertRegex(one, r"(?m)^customerIdentifier:\s+%s$" % GLOBEX_CUSTOMER)
        self.assertEqual(self.ctl_json("accounts", "get", GLOBEX_ACCOUNT),
                         self.api("GET", "/v1/accounts/" + GLOBEX_ACCOUNT))

        status = self.ctl("status").stdout
        self.assertRegex(status, r"(?m)^catalogVersion:\s+%d$" % self.catalog_version())
        self.assertRegex(status, r"(?m)^clock\.mode:\s+manual$")
        js = self.ctl_json("status")
        self.assertEqual(js["catalogVersion"], self.catalog_version())
        self.assertEqual(self.ctl_json("catalog", "get"), self.api("GET", "/v1/catalog"))
        # Global options may come after the command too.
        self.assertEqual(json.loads(self.ctl("accounts", "list", "-o", "json").stdout), accounts)

    # --- exit codes ------------------------------------------------------------------------------
    def test_exit_codes(self):
        self.ctl("status", rc=EXIT_OK)
        # 2: usage errors (nothing is sent)
        for args in (["accounts"], ["no-such-command"], ["accounts", "create", "--id", "1"],
                     ["accounts", "update", GLOBEX_ACCOUNT], ["-o", "yaml", "status"],
                     ["clock", "advance", "soon"], ["clock", "set", "yesterday"],
                     ["apply", "-f", "/nonexistent/catalog.json"], ["settings", "set"],
                     ["settings", "set", "--token-ttl-hours", "four"],
                     ["faults", "clear", "--caller", SELLER[0]],
                     ["credentials", "create"], ["keys", "export", CTR, "--format", "xml"]):
            with self.subTest(args=args):
                self.ctl_error(EXIT_USAGE, *args)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("accounts: []\n")
        self.addCleanup(os.unlink, f.name)
        self.ctl_error(EXIT_USAGE, "apply", "-f", f.name)
        # 3: not found
        for args in (["accounts", "get", "000000000000"], ["products", "get", "nosuch"],
                     ["accounts", "delete", "000000000000"], ["tokens", "revoke", "no-such"],
                     ["workloads", "stop", "i-0nosuchinstance0"],
                     ["faults", "clear", "--operation", "MeterUsage"]):
            with self.subTest(args=args):
                p = self.ctl_error(EXIT_NOT_FOUND, *args)
                self.assertIn("meterctl: NotFound: ", p.stderr)
        # 4: conflict
        for args in (["accounts", "create", "--id", GLOBEX_ACCOUNT, "--name", "again",
                      "--role", "buyer"],
                     ["accounts", "delete", GLOBEX_ACCOUNT],
                     ["dimensions", "delete", CTR, "task_hours"]):
            with self.subTest(args=args):
                p = self.ctl_error(EXIT_CONFLICT, *args)
                self.assertIn("meterctl: Conflict: ", p.stderr)
        # 1: refused (400)
        p = self.ctl_error(EXIT_REFUSED, "accounts", "create", "--id", "1234", "--name", "x",
                           "--role", "buyer")
        self.assertIn("meterctl: InvalidArgument: ", p.stderr)
        # 5: wrong token (from --token, and from --token-file)
        p = self.ctl_error(EXIT_UNAUTHORIZED, "--token", "wrong-token-000000000000", "status")
        self.assertIn("meterctl: Unauthorized: ", p.stderr)
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("another-wrong-token-0000000000000000\n")
        self.addCleanup(os.unlink, f.name)
        self.ctl_error(EXIT_UNAUTHORIZED, "--token-file", f.name, "accounts", "list")
        # --data DIR reads DIR/admin-token: the right one.
        self.ctl("--data", self.server.data_dir, "status")
        # 6: nothing listens there
        p = self.ctl("--endpoint", "http://127.0.0.1:%d" % free_port(), "--timeout", "5",
                     "status", rc=EXIT_UNAVAILABLE)

    # --- accounts --------------------------------------------------------------------------------
    def test_accounts_create_list_get_update_delete(self):
        account = new_account_id()
        customer = "cust-ctl-" + account
        p = self.ctl("accounts", "create", "--id", account, "--name", "Ctl Buyer", "--role",
                     "buyer", "--customer-identifier", customer)
        self.assertIn(account, p.stdout)
        expected = {"id": account, "name": "Ctl Buyer", "roles": ["buyer"],
                    "customerIdentifier": customer}
        self.assertEqual(self.api("GET", "/v1/accounts/" + account, status=200), expected)
        self.assertEqual(self.ctl_json("accounts", "get", account), expected)
        self.assertIn(expected, self.ctl_json("accounts", "list"))
        self.assertRegex(self.ctl("accounts", "list").stdout,
                         r"(?m)^%s\s+Ctl Buyer\s+buyer\s+%s\s*$" % (account, customer))

        updated = self.ctl_json("accounts", "update", account, "--name", "Ctl Buyer 2",
                                "--role", "buyer", "--role", "seller")
        expected.update(name="Ctl Buyer 2", roles=["buyer", "seller"])
        self.assertEqual(updated, expected)
        self.assertEqual(self.api("GET", "/v1/accounts/" + account), expected)

        p = self.ctl("accounts", "delete", account)
        self.assertIn(account, p.stdout)
        self.api_error("GET", "/v1/accounts/" + account, status=404, code="NotFound")
        self.ctl("accounts", "get", account, rc=EXIT_NOT_FOUND)

    def test_credentials_create_disable_enable_delete(self):
        created = self.ctl_json("credentials", "create", "--account", ACME_SELLER)
        creds = (created["accessKeyId"], created["secretAccessKey"])
        self.assertNotIn("secretAccessKey", self.ctl_json("credentials", "get", creds[0]))
        listed = self.ctl("credentials", "list").stdout
        self.assertIn(creds[0], listed)
        self.assertNotIn(creds[1], listed)
        token = self.issue_token()["token"]
        self.assertEqual(self.resolve(token, creds), SAAS_ANSWER)
        self.ctl("credentials", "disable", creds[0])
        self.assertBotoError("UnrecognizedClientException", self.boto(creds).resolve_customer,
                             RegistrationToken=token)
        self.ctl("credentials", "enable", creds[0])
        self.assertEqual(self.resolve(token, creds), SAAS_ANSWER)
        self.ctl("credentials", "delete", creds[0])
        self.assertBotoError("UnrecognizedClientException", self.boto(creds).resolve_customer,
                             RegistrationToken=token)

    def test_products_dimensions_and_workloads(self):
        code = "ctlsaas%05d" % (int(new_account_id()) % 10 ** 5)
        product = self.ctl_json("products", "create", "--code", code, "--seller", ACME_SELLER,
                                "--kind", "saas", "--dimension", "alpha:Units:0.5",
                                "--dimension", "beta")
        self.assertEqual(product["dimensions"],
                         [{"name": "alpha", "unit": "Units", "pricePerUnit": 0.5},
                          {"name": "beta"}])
        self.ctl("subscribe", "--account", GLOBEX_ACCOUNT, "--product", code)
        ts = self.clock_now() - 3600
        self.assertBotoError("InvalidUsageDimensionException", self.boto().batch_meter_usage,
                             ProductCode=code, UsageRecords=[rec(ts, GLOBEX_CUSTOMER, "gamma")])
        self.ctl("dimensions", "add", code, "--name", "gamma", "--unit", "GB", "--price", "2")
        self.assertEqual(self.batch_results([rec(ts, GLOBEX_CUSTOMER, "gamma")], product=code),
                         ["Success"])
        got = self.ctl_json("dimensions", "update", code, "gamma", "--unit", "TB")
        self.assertIn({"name": "gamma", "unit": "TB", "pricePerUnit": 2}, got["dimensions"])
        self.ctl("dimensions", "delete", code, "gamma")
        self.assertBotoError("InvalidUsageDimensionException", self.boto().batch_meter_usage,
                             ProductCode=code,
                             UsageRecords=[rec(ts - 3600, GLOBEX_CUSTOMER, "gamma")])
        self.ctl("products", "delete", code, rc=EXIT_CONFLICT)   # still subscribed
        self.ctl("subscriptions", "delete", "%s:%s" % (GLOBEX_ACCOUNT, code))
        self.ctl("products", "delete", code)
        self.ctl("products", "get", code, rc=EXIT_NOT_FOUND)

        task = "arn:aws:ecs:us-east-1:%s:task/ctl/%s" % (GLOBEX_ACCOUNT, new_account_id())
        self.ctl("workloads", "create", "--id", task, "--platform", "ecs", "--region",
                 "us-east-1", "--account", GLOBEX_ACCOUNT)
        self.assertEqual(self.ctl_json("workloads", "get", task)["id"], task)
        self.assertEqual(self.api("GET", "/v1/workloads/" + enc(task), status=200)["id"], task)
        stopped = self.ctl_json("workloads", "stop", task)
        self.assertEqual(parse_time(stopped["stoppedAt"]), self.clock_now())
        self.ctl("workloads", "delete", task)
        self.ctl("workloads", "get", task, rc=EXIT_NOT_FOUND)

    # --- subscriptions, tokens -------------------------------------------------------------------
    def test_subscribe_and_unsubscribe(self):
        account = new_account_id()
        customer = "cust-ctl-" + account
        self.ctl("accounts", "create", "--id", account, "--name", "Sub", "--role", "buyer",
                 "--customer-identifier", customer)
        now = self.clock_now()
        out = self.boto().batch_meter_usage(ProductCode=SAAS,
                                            UsageRecords=[rec(now - 3600, customer)])
        self.assertEqual(out["Results"][0]["Status"], "CustomerNotSubscribed")
        sub = self.ctl_json("subscribe", "--account", account, "--product", SAAS)
        self.assertEqual(sub["id"], "%s:%s" % (account, SAAS))
        self.assertEqual(self.batch_results([rec(now - 3600, customer)]), ["Success"])

        pending = self.ctl_json("unsubscribe", "--account", account, "--product", SAAS)
        self.assertEqual(pending["status"], "unsubscribe-pending")
        self.assertRegex(self.ctl("subscriptions", "list", "--account", account).stdout,
                         r"%s:%s\s+%s\s+%s\s+unsubscribe-pending" % (account, SAAS, account, SAAS))
        self.assertEqual(self.batch_results([rec(now - 2 * 3600, customer)]), ["Success"])
        self.ctl("clock", "advance", "1h1s")
        out = self.boto().batch_meter_usage(ProductCode=SAAS,
                                            UsageRecords=[rec(now - 3 * 3600, customer)])
        self.assertEqual(out["Results"][0]["Status"], "CustomerNotSubscribed")
        self.assertEqual(self.ctl_json("subscriptions", "get", "%s:%s" % (account, SAAS))
                         ["status"], "unsubscribed")
        self.ctl("unsubscribe", rc=EXIT_USAGE)

    def test_tokens_issue_prints_just_the_token_and_it_resolves(self):
        p = self.ctl("tokens", "issue", "--product", SAAS, "--account", GLOBEX_ACCOUNT)
        token = p.stdout.strip()
        self.assertEqual(p.stdout, token + "\n", "stdout is just the token: %r" % p.stdout)
        self.assertTrue(re.fullmatch(r"\S+", token), token)
        self.assertEqual(self.resolve(token), SAAS_ANSWER)
        self.assertIn(token, self.ctl("tokens", "list", "--account", GLOBEX_ACCOUNT).stdout)
        self.assertIn(token, [t["token"] for t in self.ctl_json("tokens", "list", "--product",
                                                                SAAS)])
        issued = self.ctl_json("tokens", "issue", "--product", OTHER_SAAS, "--account",
                               GLOBEX_ACCOUNT)
        self.assertEqual(self.resolve(issued["token"], OTHER_SELLER),
                         {"CustomerIdentifier": GLOBEX_CUSTOMER, "ProductCode": OTHER_SAAS,
                          "CustomerAWSAccountId": GLOBEX_ACCOUNT})
        self.ctl("tokens", "revoke", token)
        self.assertBotoError("InvalidTokenException", self.boto().resolve_customer,
                             RegistrationToken=token)

    # --- keys, regions, settings -----------------------------------------------------------------
    def test_keys_export(self):
        jwks = json.loads(self.ctl("keys", "export", CTR, "--format", "jwks").stdout)
        self.assertEqual(jwks, self.api("GET", "/v1/products/%s/jwks" % CTR, status=200))
        self.assertEqual([k["kid"] for k in jwks["keys"]], ["1", "2", "3"])
        keys = self.api("GET", "/v1/products/%s/keys" % CTR, status=200)
        self.assertEqual(self.ctl("keys", "export", CTR).stdout, keys[-1]["publicKeyPem"])
        self.assertEqual(self.ctl("keys", "export", CTR, "--version", "1").stdout,
                         keys[0]["publicKeyPem"])
        self.assertEqual(self.ctl_json("keys", "list", CTR), keys)
        self.ctl("keys", "export", CTR, "--version", "9", rc=EXIT_NOT_FOUND)
        self.ctl("keys", "export", "nosuch", "--format", "jwks", rc=EXIT_NOT_FOUND)

    def test_regions_disable_and_enable(self):
        region = "me-central-1"
        ts = self.clock_now() - 3600
        self.ctl("regions", "disable", region, "--operation", "BatchMeterUsage",
                 "--operation", "ResolveCustomer")
        self.assertIn({"region": region, "operations": ["BatchMeterUsage", "ResolveCustomer"]},
                      self.ctl_json("regions", "list"))
        self.assertRegex(self.ctl("regions", "list").stdout, r"(?m)^%s\s" % region)
        self.assertBotoError("DisabledApiException", self.boto(region=region).batch_meter_usage,
                             ProductCode=SAAS, UsageRecords=[rec(ts, GLOBEX_CUSTOMER)])
        self.ctl("regions", "enable", region)
        self.assertNotIn(region, [r["region"] for r in self.ctl_json("regions", "list")])
        self.assertEqual(self.batch_results([rec(ts, GLOBEX_CUSTOMER)], region=region),
                         ["Success"])

    def test_settings_set_and_get(self):
        self.addCleanup(self.server.admin, "PATCH", "/v1/settings",
                        {"tokenTtlHours": 4, "throttle": {"batchMeterUsage": 10}})
        got = self.ctl_json("settings", "set", "--token-ttl-hours", "2.5",
                            "--throttle-batch-meter-usage", "3")
        self.assertEqual(got["tokenTtlHours"], 2.5)
        self.assertEqual(got["throttle"]["batchMeterUsage"], 3)
        self.assertEqual(self.ctl_json("settings", "get"),
                         self.api("GET", "/v1/settings", status=200))
        table = self.ctl("settings", "get").stdout
        self.assertRegex(table, r"(?m)^tokenTtlHours:\s+2\.5$")
        self.assertRegex(table, r"(?m)^throttle\.batchMeterUsage:\s+3$")
        # In force for the next call: a token issued now expires 2.5 h later.
        issued = self.issue_token()
        self.assertEqual(parse_time(issued["expiresAt"]) - parse_time(issued["issuedAt"]), 9000)

    # --- clock, faults ---------------------------------------------------------------------------
    def test_clock_get_set_advance(self):
        clock = self.ctl_json("clock", "get")
        self.assertEqual(clock["mode"], "manual")
        start = parse_time(clock["now"])
        self.assertRegex(self.ctl("clock", "get").stdout, r"(?m)^mode:\s+manual$")
        self.assertEqual(parse_time(self.ctl_json("clock", "advance", "90s")["now"]), start + 90)
        self.assertEqual(parse_time(self.ctl_json("clock", "advance", "1h30m")["now"]),
                         start + 90 + 5400)
        self.assertEqual(parse_time(self.ctl_json("clock", "advance", "30")["now"]),
                         start + 90 + 5400 + 30)
        target = start + 2 * 86400
        got = self.ctl_json("clock", "set", iso(target))
        self.assertEqual(parse_time(got["now"]), target)
        self.assertEqual(self.clock_now(), target)
        p = self.ctl_error(EXIT_CONFLICT, "clock", "set", iso(target - 60))
        self.assertIn("meterctl: Conflict: ", p.stderr)
        self.assertEqual(self.clock_now(), target)

    def test_faults_set_list_clear(self):
        self.addCleanup(self.server.admin, "DELETE", "/v1/faults")
        rules = self.ctl_json("faults", "set", "--operation", "ResolveCustomer", "--caller",
                              SELLER[0], "--throttle-rate", "1", "--seed", "5")
        self.assertEqual(len(rules["rules"]), 1, rules)
        rule = rules["rules"][0]
        self.assertEqual((rule["operation"], rule["caller"], rule["throttleRate"], rule["seed"]),
                         ("ResolveCustomer", SELLER[0], 1, 5), rule)
        token = self.issue_token()["token"]
        self.assertBotoError("ThrottlingException", self.boto().resolve_customer,
                             RegistrationToken=token)
        other = self.issue_token(OTHER_SAAS)["token"]
        self.assertEqual(self.resolve(other, OTHER_SELLER)["ProductCode"], OTHER_SAAS)
        listed = self.ctl_json("faults", "list")["rules"]
        self.assertEqual(listed[0]["counts"]["throttled"], 1, listed)
        self.assertEqual(listed[0]["counts"]["calls"], 1, listed)
        self.assertIn("ResolveCustomer", self.ctl("faults", "list").stdout)

        self.ctl("faults", "set", "--operation", "BatchMeterUsage", "--latency-ms", "1")
        self.assertEqual(len(self.ctl_json("faults", "list")["rules"]), 2)
        self.ctl("faults", "clear", "--operation", "ResolveCustomer", "--caller", SELLER[0])
        self.assertEqual([r["operation"] for r in self.ctl_json("faults", "list")["rules"]],
                         ["BatchMeterUsage"])
        self.assertEqual(self.resolve(token), SAAS_ANSWER)
        p = self.ctl("faults", "clear")
        self.assertEqual(self.api("GET", "/v1/faults", status=200), {"rules": []})
        self.assertTrue(p.stdout.strip())
        self.ctl("faults", "set", "--operation", "Nope", "--throttle-rate", "1",
                 rc=EXIT_REFUSED)
        self.ctl("faults", "set", "--operation", "BatchMeterUsage", "--throttle-rate", "2",
                 rc=EXIT_REFUSED)
        self.assertEqual(self.api("GET", "/v1/faults", status=200), {"rules": []})


# =============================================================================================
class MeterctlApplyTests(_CtlMixin, ServerTestCase):
    """`meterctl apply -f` on a server started without --catalog, on the system clock."""

    catalog = None

    @classmethod
    def setUpClass(cls):
        require_meterctl()
        super().setUpClass()

    def test_apply_twice_second_reports_nothing_changed(self):
        first = self.ctl("apply", "-f", EXAMPLE_CATALOG).stdout
        created = int(re.search(r"(?m)^created:\s+(\d+)", first).group(1))
        self.assertGreater(created, 10, first)
        self.assertNotIn("nothing changed", first)
        version = self.catalog_version()
        catalog = self.catalog_raw()

        second = self.ctl("apply", "-f", EXAMPLE_CATALOG).stdout
        self.assertIn("nothing changed", second)
        self.assertRegex(second, r"(?m)^created:\s+0$")
        self.assertRegex(second, r"(?m)^updated:\s+0$")
        self.assertRegex(second, r"(?m)^unchanged:\s+%d$" % created)
        js = self.ctl_json("apply", "-f", EXAMPLE_CATALOG)
        self.assertEqual((js["changed"], js["created"], js["updated"], js["version"]),
                         (False, [], [], version), js)
        self.assertEqual(self.catalog_version(), version)
        self.assertEqual(self.catalog_raw(), catalog)
        self.assertEqual(self.resolve("demo-registration-token-globex-acmesaas01"), SAAS_ANSWER)

    def test_clock_commands_on_the_system_clock(self):
        clock = self.ctl_json("clock", "get")
        self.assertEqual(clock["mode"], "system")
        p = self.ctl_error(EXIT_CONFLICT, "clock", "advance", "1h")
        self.assertIn("meterctl: Conflict: ", p.stderr)
        self.ctl_error(EXIT_CONFLICT, "clock", "set", "2099-01-01T00:00:00Z")


if __name__ == "__main__":
    unittest.main()
