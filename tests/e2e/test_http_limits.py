"""HTTP transport limits, on raw sockets: keep-alive, many connections, header and body size
limits, idle and slow-client timeouts. Requests are signed with botocore's signer."""
import concurrent.futures
import json
import socket
import time
import unittest

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.e2e_support import EC2, Meterd, ledger_snapshot


def signed_meter_usage(port, quantity=1, extra_headers=None):
    body = json.dumps({"ProductCode": "acmeami001", "Timestamp": int(time.time()),
                       "UsageDimension": "hosts", "UsageQuantity": quantity})
    req = AWSRequest(method="POST", url="http://127.0.0.1:%d/" % port, data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSMPMeteringService.MeterUsage"})
    SigV4Auth(Credentials(EC2[0], EC2[1]), "aws-marketplace", "us-east-1").add_auth(req)
    lines = ["POST / HTTP/1.1", "Host: 127.0.0.1:%d" % port]
    lines += ["%s: %s" % (k, v) for k, v in req.headers.items() if k.lower() != "host"]
    lines += ["%s: %s" % kv for kv in (extra_headers or [])]
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def read_response(sock):
    """Reads one HTTP/1.1 response; returns (status, headers dict, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def closed_by_peer(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class SocketTestCase(unittest.TestCase):
    """One meterd (started with `extra_args`) for the class, and raw sockets to it."""
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.m = Meterd(extra_args=list(cls.extra_args))
        cls.m.start()

    @classmethod
    def tearDownClass(cls):
        cls.m.cleanup()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.m.port), timeout=10)
        self.addCleanup(s.close)
        return s


class HttpLimitsTest(SocketTestCase):
    extra_args = ("--idle-timeout-seconds", "2", "--request-timeout-seconds", "2")

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        s = self.connect()
        ids = set()
        for _ in range(20):
            s.sendall(signed_meter_usage(self.m.port, quantity=1))
            status, headers, body = read_response(s)
            self.assertEqual(status, 200, body)
            self.assertTrue(headers["x-amzn-requestid"])
            ids.add(json.loads(body)["MeteringRecordId"])
        self.assertEqual(len(ids), 1)  # same hour, same quantity: one record

    def test_header_over_16k_is_refused_and_the_connection_closed(self):
        s = self.connect()
        s.sendall(signed_meter_usage(self.m.port, extra_headers=[("X-Padding", "a" * 20000)]))
        status, headers, body = read_response(s)
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["__type"], "ValidationException")
        self.assertTrue(headers["x-amzn-requestid"])
        self.assertTrue(closed_by_peer(s, 5))

    def test_more_than_100_header_fields_are_refused_and_nothing_stored(self):
        before = ledger_snapshot(self.m.data_dir)[0]
        s = self.connect()
        extra = [("X-Extra-%d" % i, "1") for i in range(100)]
        s.sendall(signed_meter_usage(self.m.port, quantity=1, extra_headers=extra))
        status, headers, body = read_response(s)
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["__type"], "ValidationException")
        self.assertIn("100 fields", json.loads(body)["message"])
        self.assertTrue(closed_by_peer(s, 5))
        self.assertEqual(ledger_snapshot(self.m.data_dir)[0], before)
        # A request with a few extra fields (well under the limit) is served.
        s = self.connect()
        s.sendall(signed_meter_usage(self.m.port, quantity=1, extra_headers=extra[:50]))
        self.assertEqual(read_response(s)[0], 200)

    def test_body_of_1_mib_is_refused_without_reading_it(self):
        s = self.connect()
        head = ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
                "Content-Length: %d\r\n\r\n" % (1 << 20)).encode()
        s.sendall(head)  # no body at all: the answer must come from the length alone
        status, _, body = read_response(s)
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["__type"], "ValidationException")
        self.assertIn("1048576", json.loads(body)["message"])
        self.assertTrue(closed_by_peer(s, 5))

    def test_idle_keep_alive_connection_is_closed(self):
        s = self.connect()
        s.sendall(signed_meter_usage(self.m.port))
        self.assertEqual(read_response(s)[0], 200)
        started = time.time()
        self.assertTrue(closed_by_peer(s, 10))
        self.assertLess(time.time() - started, 8)

    def test_slow_client_is_cut_off(self):
        s = self.connect()
        request = signed_meter_usage(self.m.port)
        s.sendall(request[:40])  # part of the headers, then nothing
        started = time.time()
        self.assertTrue(closed_by_peer(s, 10))
        self.assertLess(time.time() - started, 8)

    def test_garbage_is_answered_and_closed(self):
        s = self.connect()
        s.sendall(b"\x16\x03\x01\x02\x00hello not http\r\n\r\n")
        status, _, body = read_response(s)
        self.assertEqual(status, 400)
        self.assertTrue(closed_by_peer(s, 5))


class ManyConnectionsTest(SocketTestCase):
    """Hundreds of connections held open while others are served. Its own meterd with the
    default idle timeout (60 s): under a slow build (ASan) the 200 requests can take longer than
    HttpLimitsTest's 2 s idle timeout, which would rightly close the held connections."""

    def test_many_concurrent_connections(self):
        def one(_):
            with socket.create_connection(("127.0.0.1", self.m.port), timeout=20) as s:
                s.sendall(signed_meter_usage(self.m.port, quantity=1))
                return read_response(s)[0]
        socks = [self.connect() for _ in range(300)]  # held open while others are served
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(one, range(200)))
        self.assertEqual(statuses, [200] * 200)
        for s in socks[:5]:
            s.sendall(signed_meter_usage(self.m.port, quantity=1))
            self.assertEqual(read_response(s)[0], 200)


class ConnectionLimitTest(unittest.TestCase):
    """--max-connections: a connection over the limit is closed at once, without an answer;
    the ones within it are served, and a slot freed is usable again."""

    def setUp(self):
        self.m = Meterd(extra_args=["--max-connections", "4", "--threads", "1"])
        self.m.start()
        self.addCleanup(self.m.cleanup)

    def test_connection_over_the_limit_is_closed_and_a_freed_slot_is_reused(self):
        held = [socket.create_connection(("127.0.0.1", self.m.port), timeout=10)
                for _ in range(4)]
        for s in held:
            self.addCleanup(s.close)
        # The four are accepted and served (keep-alive: they stay open afterwards).
        for s in held:
            s.sendall(signed_meter_usage(self.m.port, quantity=1))
            self.assertEqual(read_response(s)[0], 200)
        extra = socket.create_connection(("127.0.0.1", self.m.port), timeout=10)
        self.addCleanup(extra.close)
        try:
            extra.sendall(signed_meter_usage(self.m.port, quantity=1))
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertTrue(closed_by_peer(extra, 5))
        held[0].close()
        deadline = time.time() + 5
        while True:  # the server notices the close on its own schedule
            s = socket.create_connection(("127.0.0.1", self.m.port), timeout=10)
            self.addCleanup(s.close)
            try:
                s.sendall(signed_meter_usage(self.m.port, quantity=1))
                self.assertEqual(read_response(s)[0], 200)
                break
            except (ConnectionError, BrokenPipeError):
                self.assertLess(time.time(), deadline, "a freed connection slot was not reused")
                time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
