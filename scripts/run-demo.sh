#!/usr/bin/env bash
# Starts meterd on 127.0.0.1 with the example catalog and a local data dir, and prints what a
# seller needs to try it: endpoint, region, keys and a ready-to-paste AWS CLI command.
set -euo pipefail
meterd=${1:-build/bin/meterd}
port=${2:-8080}
data=${3:-data}
admin_port=${4:-$((port + 1))}
cd "$(dirname "$0")/.."
catalog=tests/fixtures/catalog.example.json
mkdir -p "$data"
endpoint="http://127.0.0.1:${port}"
cat <<MSG

meterd demo
  endpoint   ${endpoint}
  region     us-east-1
  data dir   $(realpath "$data")  (SQLite, survives restarts)
  catalog    ${catalog}
  admin API  http://127.0.0.1:${admin_port}  (bearer token in $(realpath "$data")/admin-token)
  console    http://127.0.0.1:${admin_port}/  (sign in with that token)

  seller key (BatchMeterUsage):  AKIAACMESELLER000001 / acmeSellerSecretKey0000000000000000000001
  EC2 workload key (MeterUsage): AKIAGLOBEXEC2000001 / globexEc2SecretKey00000000000000000000001

Try it (in another terminal):

  AWS_ACCESS_KEY_ID=AKIAACMESELLER000001 AWS_SECRET_ACCESS_KEY=acmeSellerSecretKey0000000000000000000001 \\
  aws meteringmarketplace batch-meter-usage --endpoint-url ${endpoint} --region us-east-1 \\
    --product-code acmesaas01 \\
    --usage-records "Timestamp=\$(date +%s),CustomerIdentifier=cust-globex-0001,Dimension=api_calls,Quantity=1"

  AWS_ACCESS_KEY_ID=AKIAGLOBEXEC2000001 AWS_SECRET_ACCESS_KEY=globexEc2SecretKey00000000000000000000001 \\
  aws meteringmarketplace meter-usage --endpoint-url ${endpoint} --region us-east-1 \\
    --product-code acmeami001 --usage-dimension hosts --usage-quantity 1 --timestamp \$(date +%s)

  AWS_ACCESS_KEY_ID=AKIAACMESELLER000001 AWS_SECRET_ACCESS_KEY=acmeSellerSecretKey0000000000000000000001 \\
  aws meteringmarketplace resolve-customer --endpoint-url ${endpoint} --region us-east-1 \\
    --registration-token demo-registration-token-globex-acmesaas01

  AWS_ACCESS_KEY_ID=AKIAGLOBEXECS000001 AWS_SECRET_ACCESS_KEY=globexEcsSecretKey00000000000000000000001 \\
  aws meteringmarketplace register-usage --endpoint-url ${endpoint} --region us-east-1 \\
    --product-code acmectr001 --public-key-version 1 --nonce my-container-42

  curl ${endpoint}/keys/acmectr001/1.pem     # the public key that verifies RegisterUsage's signature

Control plane (accounts, products, subscriptions, tokens, faults, test clock):

  build/bin/meterctl --endpoint http://127.0.0.1:${admin_port} --data ${data} accounts list
  build/bin/meterctl --endpoint http://127.0.0.1:${admin_port} --data ${data} tokens issue --product acmesaas01 --account 444455556666

Ctrl-C stops the server.
MSG
exec "$meterd" serve --listen "127.0.0.1:${port}" --admin-listen "127.0.0.1:${admin_port}" \
  --data "$data" --catalog "$catalog"
