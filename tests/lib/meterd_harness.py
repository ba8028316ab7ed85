"""Start and stop a real meterd binary for end-to-end tests.

Every server binds to 127.0.0.1 on a port the kernel picks (``--listen 127.0.0.1:0``); meterd
prints ``meterd: listening on 127.0.0.1:PORT`` on stdout once it accepts connections. Servers
are stopped by PID. Only loopback traffic is ever sent.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
METERD = os.environ.get("METERD_BIN", os.path.join(REPO, "build", "bin", "meterd"))
TEST_CATALOG = os.path.join(REPO, "tests", "fixtures", "catalog.test.json")
EXAMPLE_CATALOG = os.path.join(REPO, "tests", "fixtures", "catalog.example.json")

# Credentials of tests/fixtures/catalog.test.json.
SELLER = ("AKIAACMESELLER000001", "acmeSellerSecretKey0000000000000000000001")
OTHER_SELLER = ("AKIAOTHERSELLER00001", "otherSellerSecretKey000000000000000000001")
EC2 = ("AKIAGLOBEXEC2000001", "globexEc2SecretKey00000000000000000000001")
ECS = ("AKIAGLOBEXECS000001", "globexEcsSecretKey00000000000000000000001")
EKS_WEST = ("AKIAGLOBEXEKS000001", "globexEksSecretKey00000000000000000000001")
AGENTCORE = ("AKIAGLOBEXAGC000001", "globexAgcSecretKey00000000000000000000001")
INITECH_EC2 = ("AKIAINITECEC2000001", "initechEc2SecretKey0000000000000000000001")
TEMP_EC2 = ("ASIAGLOBEXTEMP000001", "globexTempSecretKey0000000000000000000001",
            "FwoGZXIvYXdzEGlobexSessionToken0001")
DISABLED = ("AKIADISABLEDKEY00001", "disabledSecretKey00000000000000000000001")
FARGATE = ("AKIAGLOBEXFGT000001", "globexFargateSecretKey000000000000000001")
INITECH_ECS = ("AKIAINITECECS000001", "initechEcsSecretKey0000000000000000000001")

# Workload ids (for catalogs that tests derive, e.g. with "stoppedAt").
ECS_TASK = "arn:aws:ecs:us-east-1:444455556666:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
FARGATE_TASK = "arn:aws:ecs:us-east-1:444455556666:task/fargate/7a6b5c4d3e2f10011223344556677889"

# Registration tokens (ResolveCustomer).
TOKEN_GLOBEX_SAAS = "demo-registration-token-globex-acmesaas01"
TOKEN_GLOBEX_CA = "demo-registration-token-globex-acmesaasca1"
TOKEN_OTHER_SELLER = "registration-token-other-seller-othersaas01"
TOKEN_ISSUED_2020 = "registration-token-issued-2020-acmesaas01"

CA_LICENSE = "arn:aws:license-manager::294406891311:license:l-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
EXPIRED_LICENSE = "arn:aws:license-manager::294406891311:license:l-00000000000000000000000000expired"
INITECH_LICENSE = "arn:aws:license-manager::294406891311:license:l-11111111111111111111111111initech"
OTHER_PRODUCT_LICENSE = "arn:aws:license-manager::294406891311:license:l-22222222222222222222222222other01"


class Meterd:
    """One meterd process. Use as a context manager, or call start()/stop()."""

    def __init__(self, catalog=TEST_CATALOG, data_dir=None, extra_args=(), throttle=False):
        """throttle=False starts meterd with --throttle off: tests of everything but throttling
        (D14) must not depend on how fast the machine sends. Throttling tests pass True."""
        self.catalog = catalog
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="meterd-test-")
        self.extra_args = list(extra_args) + ([] if throttle else ["--throttle", "off"])
        self.proc = None
        self.port = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=20):
        self.log_path = os.path.join(self.data_dir, "meterd.stderr.log")
        args = [METERD, "serve", "--listen", "127.0.0.1:0", "--data", self.data_dir,
                "--catalog", self.catalog] + self.extra_args
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            if line.startswith("meterd: listening on "):
                self.port = int(line.strip().rsplit(":", 1)[1])
                return self
        self.stop()
        raise RuntimeError("meterd did not start; stderr:\n" + open(self.log_path).read())

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()
        self.proc = None

    def kill(self):
        self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
