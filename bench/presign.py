#!/usr/bin/env python3
"""Writes N distinct, SigV4-signed metering requests (botocore's signer) for wrk to replay.

A first rough throughput check (issue 2); the real load generator is meterd-bench (issue 7).
Signatures stay valid for 15 minutes, so generate right before the run.

  bench/presign.py --op batch --count 20000 --out /tmp/batch.req  # 25 distinct records each
  bench/presign.py --op meter --count 50000 --out /tmp/meter.req  # AgentCore: one record each

Distinct BatchMeterUsage records come from distinct regions (the region is part of the dedup
key, D2); distinct MeterUsage records from distinct ClientTokens of an AgentCore workload (D3).
"""
import argparse
import json
import time
import uuid

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SELLER = Credentials("AKIAACMESELLER000001", "acmeSellerSecretKey0000000000000000000001")
AGENTCORE = Credentials("AKIAGLOBEXAGC000001", "globexAgcSecretKey00000000000000000000001")


def raw(target, body, creds, region, host):
    req = AWSRequest(method="POST", url="http://%s/" % host, data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSMPMeteringService." + target})
    SigV4Auth(creds, "aws-marketplace", region).add_auth(req)
    lines = ["POST / HTTP/1.1", "Host: %s" % host]
    for k, v in req.headers.items():
        if k.lower() != "host":
            lines.append("%s: %s" % (k, v))
    lines.append("Content-Length: %d" % len(body))
    return "\r\n".join(lines) + "\r\n\r\n" + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--op", choices=["batch", "meter"], required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--host", default="127.0.0.1:8080")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    now = int(time.time())
    run = uuid.uuid4().hex[:8]
    with open(args.out, "w") as out:
        for i in range(args.count):
            if args.op == "batch":
                region = "bench-%s-%d" % (run, i)
                records = [{"Timestamp": now - 3600 * (k % 12), "CustomerIdentifier": "cust-globex-0001",
                            "Dimension": "api_calls" if k < 12 else "storage_gb", "Quantity": k + 1}
                           for k in range(24)]
                records.append({"Timestamp": now, "CustomerAWSAccountId": "888899990000",
                                "Dimension": "api_calls", "Quantity": 1})
                body = json.dumps({"ProductCode": "acmesaas01", "UsageRecords": records})
                text = raw("BatchMeterUsage", body, SELLER, region, args.host)
            else:
                body = json.dumps({"ProductCode": "acmectr001", "Timestamp": now,
                                   "UsageDimension": "invocations", "UsageQuantity": 1,
                                   "ClientToken": str(uuid.uuid4())})
                text = raw("MeterUsage", body, AGENTCORE, "us-east-1", args.host)
            out.write(text.replace("\n", "\\n") + "\n")


if __name__ == "__main__":
    main()
