// End-to-end tests of meterd with the AWS SDK for JavaScript v3
// (@aws-sdk/client-marketplace-metering), used exactly as a seller or a workload would use it
// against AWS, with only the endpoint overridden.
//
// Run from the repository root:  node --test tests/js/
// The expected behaviour is docs/BEHAVIOUR-DECISIONS.md and ../shared/spec/BEHAVIOUR.md §13.
//
// Every describe() block starts its own meterd (fresh data dir, tests/fixtures/catalog.test.json).
// Tests inside a block run one after another and share that server, so each test uses its own
// dedup keys: BatchMeterUsage keys include the SigV4 region (D2), so tests use distinct regions;
// MeterUsage keys are (workload, product, dimension, UTC hour), so tests use distinct
// dimensions / hours.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  BatchMeterUsageCommand,
  CustomerNotEntitledException,
  DisabledApiException,
  DuplicateRequestException,
  IdempotencyConflictException,
  InvalidCustomerIdentifierException,
  InvalidEndpointRegionException,
  InvalidLicenseException,
  InvalidProductCodeException,
  InvalidTagException,
  InvalidUsageAllocationsException,
  InvalidUsageDimensionException,
  MeterUsageCommand,
  TimestampOutOfBoundsException,
} from '@aws-sdk/client-marketplace-metering';

import {
  AGENTCORE, CA_LICENSE, DISABLED, EC2, EKS_WEST, EXPIRED_LICENSE, INITECH_EC2,
  INITECH_LICENSE, Meterd, OTHER_PRODUCT_LICENSE, SELLER, TEMP_EC2,
} from './meterd_harness.mjs';
import { assertOk, assertRequestId, expectError } from './assertions.mjs';

// ---------------------------------------------------------------------------------------------
// Helpers

const HOUR = 3600 * 1000;
const GLOBEX_ACCOUNT = '444455556666';
const GLOBEX_CUSTOMER = 'cust-globex-0001';
const UNKNOWN_LICENSE = 'arn:aws:license-manager::294406891311:license:l-99999999999999999999999999unknown';

/** A Date `hoursAgo` hours before now (negative: in the future), its millisecond part set to `ms`. */
function at(hoursAgo, ms = 0) {
  const t = Date.now() - hoursAgo * HOUR;
  return new Date(Math.floor(t / 1000) * 1000 + ms);
}

/** Start (ms since epoch) of the UTC hour that was current `hoursAgo` hours ago. */
function hourStart(hoursAgo) {
  return Math.floor((Date.now() - hoursAgo * HOUR) / HOUR) * HOUR;
}


const plain = (v) => JSON.parse(JSON.stringify(v));

/** The echoed UsageRecord of a result must be the record that was sent (Timestamp to the ms). */
function assertEcho(result, sent) {
  const u = result.UsageRecord;
  assert.ok(u, 'result carries no UsageRecord');
  assert.ok(u.Timestamp instanceof Date, 'echoed Timestamp is not a Date');
  assert.equal(u.Timestamp.getTime(), sent.Timestamp.getTime(),
    `echoed Timestamp ${u.Timestamp.toISOString()} != sent ${sent.Timestamp.toISOString()}`);
  for (const k of ['CustomerIdentifier', 'CustomerAWSAccountId', 'LicenseArn', 'Dimension', 'Quantity']) {
    if (sent[k] !== undefined) assert.equal(u[k], sent[k], `echoed ${k}`);
  }
  if (sent.UsageAllocations !== undefined) {
    assert.deepEqual(plain(u.UsageAllocations), plain(sent.UsageAllocations), 'echoed UsageAllocations');
  }
}

function assertSuccess(result, sent) {
  assert.equal(result.Status, 'Success', `record status: ${JSON.stringify(result)}`);
  assert.equal(typeof result.MeteringRecordId, 'string');
  assert.ok(result.MeteringRecordId.length > 0, 'empty MeteringRecordId');
  if (sent) assertEcho(result, sent);
}

function assertBatchOk(resp, n) {
  assertOk(resp);
  assert.ok(Array.isArray(resp.Results), 'Results missing');
  assert.equal(resp.Results.length, n, `Results: ${JSON.stringify(resp.Results)}`);
  assert.deepEqual(resp.UnprocessedRecords, [], 'UnprocessedRecords must be present and empty');
}

const batch = (input) => new BatchMeterUsageCommand(input);
const meter = (input) => new MeterUsageCommand(input);

/** A valid acmesaas01 record for Globex (by CustomerIdentifier). */
const saasRecord = (o = {}) => ({
  Timestamp: at(0.25), CustomerIdentifier: GLOBEX_CUSTOMER, Dimension: 'api_calls', Quantity: 1, ...o,
});

/** A valid acmesaasca1 record for Globex (account + license, no ProductCode). */
const caRecord = (o = {}) => ({
  Timestamp: at(0.25), CustomerAWSAccountId: GLOBEX_ACCOUNT, LicenseArn: CA_LICENSE,
  Dimension: 'seats', Quantity: 1, ...o,
});

function withServer(extraArgs = [], throttle = false) {
  const m = new Meterd({ extraArgs, throttle });
  before(async () => { await m.start(); });
  after(async () => { await m.cleanup(); });
  return m;
}

// ---------------------------------------------------------------------------------------------

describe('BatchMeterUsage: accepted records', () => {
  const m = withServer();

  test('CustomerIdentifier record succeeds; Timestamp echoed to the millisecond', async () => {
    const c = m.client(SELLER, { region: 'us-east-1' });
    const rec = saasRecord({ Timestamp: at(0.25, 123), Quantity: 42 });
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [rec] }));
    assertBatchOk(resp, 1);
    assertSuccess(resp.Results[0], rec);
  });

  test('CustomerAWSAccountId record succeeds; Timestamp echoed to the millisecond', async () => {
    const c = m.client(SELLER, { region: 'us-west-2' });
    const rec = { Timestamp: at(0.5, 7), CustomerAWSAccountId: GLOBEX_ACCOUNT, Dimension: 'storage_gb', Quantity: 3 };
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [rec] }));
    assertBatchOk(resp, 1);
    assertSuccess(resp.Results[0], rec);
  });

  test('concurrent-agreements: CustomerAWSAccountId + LicenseArn without ProductCode succeeds', async () => {
    const c = m.client(SELLER, { region: 'us-east-1' });
    const rec = caRecord({ Timestamp: at(0.75, 999), Quantity: 5 });
    const resp = await c.send(batch({ UsageRecords: [rec] }));
    assertBatchOk(resp, 1);
    assertSuccess(resp.Results[0], rec);
  });

  test('a batch of several records: every record echoed with its own millisecond Timestamp', async () => {
    const c = m.client(SELLER, { region: 'sa-east-1' });
    const recs = [
      saasRecord({ Timestamp: at(1, 1), Dimension: 'api_calls', Quantity: 0 }),
      saasRecord({ Timestamp: at(1, 500), Dimension: 'storage_gb', Quantity: 2147483647 }),
      { Timestamp: at(2, 998), CustomerAWSAccountId: GLOBEX_ACCOUNT, Dimension: 'api_calls', Quantity: 9 },
    ];
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: recs }));
    assertBatchOk(resp, 3);
    const ids = new Set();
    for (const rec of recs) {
      const r = resp.Results.find((x) => x.UsageRecord?.Dimension === rec.Dimension
        && x.UsageRecord?.Timestamp?.getTime() === rec.Timestamp.getTime());
      assert.ok(r, `no result for ${JSON.stringify(rec)}`);
      assertSuccess(r, rec);
      ids.add(r.MeteringRecordId);
    }
    assert.equal(ids.size, 3, 'distinct records must get distinct MeteringRecordIds');
  });

  test('an identical resend (and a subset, and another second of the same hour) returns the same MeteringRecordId', async () => {
    const c = m.client(SELLER, { region: 'eu-west-1' });
    const a = saasRecord({ Timestamp: new Date(hourStart(2) + 1234), Dimension: 'api_calls', Quantity: 10 });
    const b = saasRecord({ Timestamp: new Date(hourStart(2) + 5678), Dimension: 'storage_gb', Quantity: 20 });
    const first = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [a, b] }));
    assertBatchOk(first, 2);
    const idOf = (resp, dim) => resp.Results.find((r) => r.UsageRecord.Dimension === dim);
    const ra = idOf(first, 'api_calls');
    const rb = idOf(first, 'storage_gb');
    assertSuccess(ra, a);
    assertSuccess(rb, b);
    assert.notEqual(ra.MeteringRecordId, rb.MeteringRecordId);

    const again = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [a, b] }));
    assertBatchOk(again, 2);
    assertSuccess(idOf(again, 'api_calls'), a);
    assertSuccess(idOf(again, 'storage_gb'), b);
    assert.equal(idOf(again, 'api_calls').MeteringRecordId, ra.MeteringRecordId);
    assert.equal(idOf(again, 'storage_gb').MeteringRecordId, rb.MeteringRecordId);

    const subset = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [b] }));
    assertBatchOk(subset, 1);
    assertSuccess(subset.Results[0], b);
    assert.equal(subset.Results[0].MeteringRecordId, rb.MeteringRecordId);

    // Same customer/dimension/UTC hour and quantity, another Timestamp inside that hour (D2).
    const a2 = { ...a, Timestamp: new Date(hourStart(2) + 30 * 60 * 1000 + 42) };
    const laterInHour = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [a2] }));
    assertBatchOk(laterInHour, 1);
    assertSuccess(laterInHour.Results[0], a2);
    assert.equal(laterInHour.Results[0].MeteringRecordId, ra.MeteringRecordId);
  });

  test('same customer/dimension/hour with another quantity is DuplicateRecord; the original stays', async () => {
    const c = m.client(SELLER, { region: 'eu-central-1' });
    const ts = at(1.5, 250);
    const orig = saasRecord({ Timestamp: ts, Quantity: 5 });
    const first = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [orig] }));
    assertBatchOk(first, 1);
    assertSuccess(first.Results[0], orig);
    const id = first.Results[0].MeteringRecordId;

    const changed = saasRecord({ Timestamp: ts, Quantity: 6 });
    const dup = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [changed] }));
    assertBatchOk(dup, 1);
    assert.equal(dup.Results[0].Status, 'DuplicateRecord');
    assertEcho(dup.Results[0], changed);
    // No new id: either none, or the original one.
    if (dup.Results[0].MeteringRecordId !== undefined && dup.Results[0].MeteringRecordId !== '') {
      assert.equal(dup.Results[0].MeteringRecordId, id, 'DuplicateRecord must not mint a new MeteringRecordId');
    }

    // The same buyer by CustomerAWSAccountId is the same customer (never billed twice).
    const byAccount = { Timestamp: ts, CustomerAWSAccountId: GLOBEX_ACCOUNT, Dimension: 'api_calls', Quantity: 7 };
    const dup2 = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [byAccount] }));
    assertBatchOk(dup2, 1);
    assert.equal(dup2.Results[0].Status, 'DuplicateRecord');
    assertEcho(dup2.Results[0], byAccount);

    const sameQtyByAccount = { ...byAccount, Quantity: 5 };
    const ok2 = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [sameQtyByAccount] }));
    assertBatchOk(ok2, 1);
    assertSuccess(ok2.Results[0], sameQtyByAccount);
    assert.equal(ok2.Results[0].MeteringRecordId, id);

    // The original quantity is still the one on record.
    const resend = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [orig] }));
    assertBatchOk(resend, 1);
    assertSuccess(resend.Results[0], orig);
    assert.equal(resend.Results[0].MeteringRecordId, id);
  });

  test('records inside one batch are applied in order (first wins)', async () => {
    const c = m.client(SELLER, { region: 'eu-west-2' });
    const ts = at(3, 10);
    const r1 = saasRecord({ Timestamp: ts, Dimension: 'storage_gb', Quantity: 1 });
    const r2 = saasRecord({ Timestamp: ts, Dimension: 'storage_gb', Quantity: 2 });
    const r3 = saasRecord({ Timestamp: ts, Dimension: 'storage_gb', Quantity: 1 });
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [r1, r2, r3] }));
    assertBatchOk(resp, 3);
    const byQty = (q) => resp.Results.filter((r) => r.UsageRecord.Quantity === q);
    const ones = byQty(1);
    const twos = byQty(2);
    assert.equal(ones.length, 2);
    assert.equal(twos.length, 1);
    for (const r of ones) assertSuccess(r, r1);
    assert.equal(ones[0].MeteringRecordId, ones[1].MeteringRecordId);
    assert.equal(twos[0].Status, 'DuplicateRecord');
  });

  test('CustomerNotSubscribed is per record; the rest of the batch succeeds', async () => {
    const c = m.client(SELLER, { region: 'ap-southeast-2' });
    const ts = at(0.5, 321);
    const good = saasRecord({ Timestamp: ts, Quantity: 4 });
    const pending = saasRecord({ Timestamp: ts, CustomerIdentifier: 'cust-umbrella-0003', Quantity: 4 });
    const notSubscribed = [
      saasRecord({ Timestamp: ts, CustomerIdentifier: 'cust-initech-0002' }), // unsubscribed
      saasRecord({ Timestamp: ts, CustomerIdentifier: 'cust-hooli-0004' }), // pending, grace over
      saasRecord({ Timestamp: ts, CustomerIdentifier: 'cust-nobody-9999' }), // unknown identifier
      { Timestamp: ts, CustomerAWSAccountId: '777788889999', Dimension: 'api_calls', Quantity: 1 }, // unsubscribed
      { Timestamp: ts, CustomerAWSAccountId: '123456789012', Dimension: 'api_calls', Quantity: 1 }, // unknown
      { Timestamp: ts, CustomerAWSAccountId: '222233334444', Dimension: 'api_calls', Quantity: 1 }, // a seller, no subscription
    ];
    const all = [good, ...notSubscribed.slice(0, 3), pending, ...notSubscribed.slice(3)];
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: all }));
    assertBatchOk(resp, all.length);
    const find = (rec) => {
      const r = resp.Results.find((x) => (rec.CustomerIdentifier !== undefined
        ? x.UsageRecord.CustomerIdentifier === rec.CustomerIdentifier
        : x.UsageRecord.CustomerAWSAccountId === rec.CustomerAWSAccountId));
      assert.ok(r, `no result for ${JSON.stringify(rec)}`);
      return r;
    };
    assertSuccess(find(good), good);
    // unsubscribe-pending within 1 h of unsubscribedAt (default: catalog load) still meters.
    assertSuccess(find(pending), pending);
    for (const rec of notSubscribed) {
      const r = find(rec);
      assert.equal(r.Status, 'CustomerNotSubscribed', `for ${JSON.stringify(rec)}: ${JSON.stringify(r)}`);
      assert.ok(r.MeteringRecordId === undefined || r.MeteringRecordId === '',
        `CustomerNotSubscribed must carry no MeteringRecordId: ${JSON.stringify(r)}`);
      assertEcho(r, rec);
    }
  });

  test('UsageAllocations with Tags are accepted and echoed', async () => {
    const c = m.client(SELLER, { region: 'ca-central-1' });
    const rec = saasRecord({
      Timestamp: at(0.5, 654),
      Quantity: 10,
      UsageAllocations: [
        { AllocatedUsageQuantity: 6, Tags: [{ Key: 'team', Value: 'blue' }, { Key: 'env', Value: 'prod' }] },
        { AllocatedUsageQuantity: 3, Tags: [{ Key: 'team', Value: 'red' }] },
        { AllocatedUsageQuantity: 1 }, // the untagged bucket
      ],
    });
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [rec] }));
    assertBatchOk(resp, 1);
    assertSuccess(resp.Results[0], rec);

    const ca = caRecord({
      Timestamp: at(0.5, 655),
      Quantity: 4,
      UsageAllocations: [
        { AllocatedUsageQuantity: 4, Tags: [{ Key: 'k1', Value: 'v1' }, { Key: 'k2', Value: 'v2' },
          { Key: 'k3', Value: 'v3' }, { Key: 'k4', Value: 'v4' }, { Key: 'cost:center', Value: 'a/b@c.d=e+f_g h-1' }] },
      ],
    });
    const resp2 = await c.send(batch({ UsageRecords: [ca] }));
    assertBatchOk(resp2, 1);
    assertSuccess(resp2.Results[0], ca);
  });
});

// ---------------------------------------------------------------------------------------------

describe('BatchMeterUsage: request-level errors', () => {
  const m = withServer();
  const seller = (region = 'us-east-1') => m.client(SELLER, { region });

  test('InvalidProductCodeException: unknown, not SaaS, or another seller\'s product', async () => {
    const c = seller();
    for (const code of ['nosuchproduct', 'acmeami001', 'acmectr001', 'othersaas01']) {
      await expectError(c.send(batch({ ProductCode: code, UsageRecords: [saasRecord()] })),
        'InvalidProductCodeException', 400, { ctor: InvalidProductCodeException });
    }
  });

  test('InvalidUsageDimensionException (case-sensitive), and nothing of the batch is stored', async () => {
    const c = seller('eu-north-1');
    const ts = at(1, 111);
    const good = saasRecord({ Timestamp: ts, Quantity: 1 });
    for (const dim of ['API_CALLS', 'no_such_dimension', 'seats']) {
      await expectError(c.send(batch({
        ProductCode: 'acmesaas01', UsageRecords: [good, saasRecord({ Timestamp: ts, Dimension: dim })],
      })), 'InvalidUsageDimensionException', 400, { ctor: InvalidUsageDimensionException });
    }
    // The good record of the failed batch was not stored: another quantity is still accepted.
    const other = { ...good, Quantity: 2 };
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [other] }));
    assertBatchOk(resp, 1);
    assertSuccess(resp.Results[0], other);
  });

  test('InvalidUsageAllocationsException: wrong sum, repeated tag set, two untagged buckets', async () => {
    const c = seller();
    const cases = [
      [{ AllocatedUsageQuantity: 3 }],
      [{ AllocatedUsageQuantity: 6, Tags: [{ Key: 'team', Value: 'a' }] }, { AllocatedUsageQuantity: 5 }],
      [{ AllocatedUsageQuantity: 2, Tags: [{ Key: 'team', Value: 'a' }] },
        { AllocatedUsageQuantity: 3, Tags: [{ Key: 'team', Value: 'a' }] }],
      [{ AllocatedUsageQuantity: 2 }, { AllocatedUsageQuantity: 3 }],
    ];
    for (const allocs of cases) {
      await expectError(c.send(batch({
        ProductCode: 'acmesaas01', UsageRecords: [saasRecord({ Quantity: 5, UsageAllocations: allocs })],
      })), 'InvalidUsageAllocationsException', 400, { ctor: InvalidUsageAllocationsException });
    }
  });

  test('InvalidTagException: >5 tags, bad key/value, >5 distinct keys across allocations', async () => {
    const c = seller();
    const tags = (n, p = 'k') => Array.from({ length: n }, (_, i) => ({ Key: `${p}${i}`, Value: 'v' }));
    const cases = [
      [{ AllocatedUsageQuantity: 5, Tags: tags(6) }],
      [{ AllocatedUsageQuantity: 5, Tags: [{ Key: 'bad~key', Value: 'v' }] }],
      [{ AllocatedUsageQuantity: 5, Tags: [{ Key: 'k', Value: 'bad{value}' }] }],
      [{ AllocatedUsageQuantity: 5, Tags: [{ Key: 'k'.repeat(101), Value: 'v' }] }],
      [{ AllocatedUsageQuantity: 5, Tags: [{ Key: 'k', Value: 'v'.repeat(257) }] }],
      [{ AllocatedUsageQuantity: 5, Tags: [{ Key: '', Value: 'v' }] }],
      [{ AllocatedUsageQuantity: 2, Tags: tags(3, 'a') }, { AllocatedUsageQuantity: 3, Tags: tags(3, 'b') }],
    ];
    for (const allocs of cases) {
      await expectError(c.send(batch({
        ProductCode: 'acmesaas01', UsageRecords: [saasRecord({ Quantity: 5, UsageAllocations: allocs })],
      })), 'InvalidTagException', 400, { ctor: InvalidTagException });
    }
  });

  test('InvalidCustomerIdentifierException: both identities, neither, CustomerIdentifier on a concurrent-agreements product', async () => {
    const c = seller();
    await expectError(c.send(batch({
      ProductCode: 'acmesaas01',
      UsageRecords: [saasRecord({ CustomerAWSAccountId: GLOBEX_ACCOUNT })],
    })), 'InvalidCustomerIdentifierException', 400, { ctor: InvalidCustomerIdentifierException });
    await expectError(c.send(batch({
      ProductCode: 'acmesaas01',
      UsageRecords: [saasRecord(), { Timestamp: at(0.25), Dimension: 'api_calls', Quantity: 1 }],
    })), 'InvalidCustomerIdentifierException', 400, { ctor: InvalidCustomerIdentifierException });
    await expectError(c.send(batch({
      UsageRecords: [{ Timestamp: at(0.25), CustomerIdentifier: GLOBEX_CUSTOMER, LicenseArn: CA_LICENSE,
        Dimension: 'seats', Quantity: 1 }],
    })), 'InvalidCustomerIdentifierException', 400, { ctor: InvalidCustomerIdentifierException });
  });

  test('InvalidLicenseException: unknown, expired, another account\'s, two products, missing on a CA product', async () => {
    const c = seller();
    const cases = [
      { UsageRecords: [caRecord({ LicenseArn: UNKNOWN_LICENSE })] },
      { UsageRecords: [caRecord({ LicenseArn: EXPIRED_LICENSE })] },
      { UsageRecords: [caRecord({ LicenseArn: INITECH_LICENSE })] },
      { UsageRecords: [caRecord(), caRecord({ LicenseArn: OTHER_PRODUCT_LICENSE })] },
      { ProductCode: 'acmesaasca1',
        UsageRecords: [{ Timestamp: at(0.25), CustomerAWSAccountId: GLOBEX_ACCOUNT, Dimension: 'seats', Quantity: 1 }] },
    ];
    for (const input of cases) {
      await expectError(c.send(batch(input)), 'InvalidLicenseException', 400, { ctor: InvalidLicenseException });
    }
  });

  test('TimestampOutOfBoundsException: one old or future record rejects the whole batch, nothing stored', async () => {
    const c = seller('ap-northeast-1');
    const good = saasRecord({ Timestamp: at(0.5, 77), Quantity: 1 });
    for (const bad of [at(25), at(24.02), at(-0.25), at(-2)]) {
      await expectError(c.send(batch({
        ProductCode: 'acmesaas01', UsageRecords: [good, saasRecord({ Timestamp: bad, Dimension: 'storage_gb' })],
      })), 'TimestampOutOfBoundsException', 400, { ctor: TimestampOutOfBoundsException });
    }
    const other = { ...good, Quantity: 2 };
    const resp = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [other] }));
    assertBatchOk(resp, 1);
    assertSuccess(resp.Results[0], other);
  });

  test('DisabledApiException in eu-south-2', async () => {
    const c = seller('eu-south-2');
    await expectError(c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [saasRecord()] })),
      'DisabledApiException', 400, { ctor: DisabledApiException, message: /disabled/i });
  });

  test('ValidationException for 26 records (the JS SDK does not validate client-side)', async () => {
    const c = seller();
    const recs = Array.from({ length: 26 }, (_, i) => saasRecord({ Timestamp: at(0.25, i), Quantity: i }));
    await expectError(c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: recs })),
      'ValidationException', 400, {
        message: /1 validation error detected: Value '26' at 'usageRecords' failed to satisfy constraint: Member must have length less than or equal to 25/,
      });
  });

  test('ValidationException for Quantity -1', async () => {
    const c = seller();
    await expectError(c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [saasRecord({ Quantity: -1 })] })),
      'ValidationException', 400,
      { message: /1 validation error detected: Value '-1' at 'usageRecords\.1\.member\.quantity' failed to satisfy constraint/ });
  });

  test('ValidationException: ProductCode together with LicenseArn; no ProductCode and no LicenseArn', async () => {
    const c = seller();
    await expectError(c.send(batch({ ProductCode: 'acmesaasca1', UsageRecords: [caRecord()] })),
      'ValidationException', 400);
    await expectError(c.send(batch({
      UsageRecords: [{ Timestamp: at(0.25), CustomerAWSAccountId: GLOBEX_ACCOUNT, Dimension: 'api_calls', Quantity: 1 }],
    })), 'ValidationException', 400);
  });

  test('AccessDeniedException: a workload credential may not call BatchMeterUsage', async () => {
    await expectError(m.client(EC2).send(batch({ ProductCode: 'acmesaas01', UsageRecords: [saasRecord()] })),
      'AccessDeniedException', 400);
  });
});

// ---------------------------------------------------------------------------------------------

describe('MeterUsage', () => {
  const m = withServer();
  const ec2 = () => m.client(EC2);

  test('EC2 workload meters usage', async () => {
    const resp = await ec2().send(meter({
      ProductCode: 'acmeami001', Timestamp: at(0, 321), UsageDimension: 'hosts', UsageQuantity: 2,
    }));
    assertOk(resp);
    assert.equal(typeof resp.MeteringRecordId, 'string');
    assert.ok(resp.MeteringRecordId.length > 0);
  });

  test('same hour and quantity (new ClientToken each time) returns the same MeteringRecordId', async () => {
    const c = ec2();
    const base = hourStart(1);
    const r1 = await c.send(meter({
      ProductCode: 'acmeami001', Timestamp: new Date(base + 1234), UsageDimension: 'vcpu_hours', UsageQuantity: 3,
    }));
    assertOk(r1);
    const r2 = await c.send(meter({
      ProductCode: 'acmeami001', Timestamp: new Date(base + 1800 * 1000 + 567), UsageDimension: 'vcpu_hours', UsageQuantity: 3,
    }));
    assertOk(r2);
    assert.ok(r1.MeteringRecordId);
    assert.equal(r2.MeteringRecordId, r1.MeteringRecordId);
  });

  test('same hour with another quantity is DuplicateRequestException; the original stays', async () => {
    const c = ec2();
    const base = hourStart(1);
    const first = await c.send(meter({
      ProductCode: 'acmeami001', Timestamp: new Date(base + 60 * 1000), UsageDimension: 'hosts', UsageQuantity: 1,
    }));
    assertOk(first);
    await expectError(c.send(meter({
      ProductCode: 'acmeami001', Timestamp: new Date(base + 120 * 1000), UsageDimension: 'hosts', UsageQuantity: 2,
    })), 'DuplicateRequestException', 400, { ctor: DuplicateRequestException });
    const again = await c.send(meter({
      ProductCode: 'acmeami001', Timestamp: new Date(base + 180 * 1000), UsageDimension: 'hosts', UsageQuantity: 1,
    }));
    assertOk(again);
    assert.equal(again.MeteringRecordId, first.MeteringRecordId);
  });

  test('ClientToken: same token and parameters -> same id; same token, other quantity -> 409 IdempotencyConflictException', async () => {
    const c = ec2();
    const token = randomUUID();
    const ts = at(2, 42);
    const input = { ProductCode: 'acmeami001', Timestamp: ts, UsageDimension: 'hosts', UsageQuantity: 1, ClientToken: token };
    const r1 = await c.send(meter(input));
    assertOk(r1);
    const r2 = await c.send(meter({ ...input }));
    assertOk(r2);
    assert.equal(r2.MeteringRecordId, r1.MeteringRecordId);

    // Other quantity (and another hour, so the hourly dedup key cannot be what answers).
    await expectError(c.send(meter({ ...input, Timestamp: at(3, 42), UsageQuantity: 2 })),
      'IdempotencyConflictException', 409, { ctor: IdempotencyConflictException });
    // Only successful calls are remembered: that usage with a fresh token is accepted.
    const r3 = await c.send(meter({ ...input, Timestamp: at(3, 42), UsageQuantity: 2, ClientToken: randomUUID() }));
    assertOk(r3);
    assert.notEqual(r3.MeteringRecordId, r1.MeteringRecordId);
  });

  test('AgentCore workload: two ClientTokens in the same hour are two records', async () => {
    const c = m.client(AGENTCORE);
    const ts = at(0, 555);
    const input = { ProductCode: 'acmectr001', Timestamp: ts, UsageDimension: 'invocations', UsageQuantity: 5 };
    const t1 = randomUUID();
    const r1 = await c.send(meter({ ...input, ClientToken: t1 }));
    const r2 = await c.send(meter({ ...input, ClientToken: randomUUID() }));
    assertOk(r1);
    assertOk(r2);
    assert.ok(r1.MeteringRecordId && r2.MeteringRecordId);
    assert.notEqual(r1.MeteringRecordId, r2.MeteringRecordId);
    // Replaying the first token is idempotent.
    const r3 = await c.send(meter({ ...input, ClientToken: t1 }));
    assertOk(r3);
    assert.equal(r3.MeteringRecordId, r1.MeteringRecordId);
  });

  test('DryRun answers 412 DryRunOperation, stores nothing, and runs the dedup check', async () => {
    const c = ec2();
    const ts = at(2, 900);
    const input = { ProductCode: 'acmeami001', Timestamp: ts, UsageDimension: 'vcpu_hours' };
    await expectError(c.send(meter({ ...input, UsageQuantity: 1, DryRun: true })), 'DryRunOperation', 412);
    // Nothing was stored: another quantity in that hour is accepted.
    const real = await c.send(meter({ ...input, UsageQuantity: 2 }));
    assertOk(real);
    await expectError(c.send(meter({ ...input, UsageQuantity: 2, DryRun: true })), 'DryRunOperation', 412);
    await expectError(c.send(meter({ ...input, UsageQuantity: 3, DryRun: true })),
      'DuplicateRequestException', 400, { ctor: DuplicateRequestException });
    const again = await c.send(meter({ ...input, UsageQuantity: 2 }));
    assertOk(again);
    assert.equal(again.MeteringRecordId, real.MeteringRecordId);
    // A DryRun that would fail answers the real error.
    await expectError(c.send(meter({ ...input, UsageDimension: 'HOSTS', UsageQuantity: 1, DryRun: true })),
      'InvalidUsageDimensionException', 400, { ctor: InvalidUsageDimensionException });
  });

  test('UsageAllocations with Tags are accepted', async () => {
    const resp = await ec2().send(meter({
      ProductCode: 'acmeami001', Timestamp: at(3, 3), UsageDimension: 'vcpu_hours', UsageQuantity: 10,
      UsageAllocations: [
        { AllocatedUsageQuantity: 7, Tags: [{ Key: 'team', Value: 'blue' }] },
        { AllocatedUsageQuantity: 3 },
      ],
    }));
    assertOk(resp);
    assert.ok(resp.MeteringRecordId);
  });

  test('CustomerNotEntitledException: buyer without an active subscription', async () => {
    await expectError(m.client(INITECH_EC2).send(meter({
      ProductCode: 'acmeami001', Timestamp: at(0), UsageDimension: 'hosts', UsageQuantity: 1,
    })), 'CustomerNotEntitledException', 400, { ctor: CustomerNotEntitledException });
  });

  test('InvalidEndpointRegionException: a us-west-2 workload calling us-east-1; its own region works', async () => {
    const input = { ProductCode: 'acmectr001', Timestamp: at(0, 8), UsageDimension: 'nodes', UsageQuantity: 1 };
    await expectError(m.client(EKS_WEST, { region: 'us-east-1' }).send(meter(input)),
      'InvalidEndpointRegionException', 400, { ctor: InvalidEndpointRegionException });
    const resp = await m.client(EKS_WEST, { region: 'us-west-2' }).send(meter(input));
    assertOk(resp);
    assert.ok(resp.MeteringRecordId);
  });

  test('temporary credentials with a session token work', async () => {
    const resp = await m.client(TEMP_EC2).send(meter({
      ProductCode: 'acmeami001', Timestamp: at(0, 1), UsageDimension: 'hosts', UsageQuantity: 1,
    }));
    assertOk(resp);
    assert.ok(resp.MeteringRecordId);
  });

  test('errors: unknown/SaaS product, unknown dimension, timestamp out of the 6 h window, seller caller', async () => {
    const c = ec2();
    const ok = { ProductCode: 'acmeami001', Timestamp: at(4), UsageDimension: 'hosts', UsageQuantity: 1 };
    for (const code of ['acmesaas01', 'nosuchproduct']) {
      await expectError(c.send(meter({ ...ok, ProductCode: code })),
        'InvalidProductCodeException', 400, { ctor: InvalidProductCodeException });
    }
    await expectError(c.send(meter({ ...ok, UsageDimension: 'Hosts' })),
      'InvalidUsageDimensionException', 400, { ctor: InvalidUsageDimensionException });
    for (const ts of [at(7), at(6.02), at(-0.25)]) {
      await expectError(c.send(meter({ ...ok, Timestamp: ts })),
        'TimestampOutOfBoundsException', 400, { ctor: TimestampOutOfBoundsException });
    }
    await expectError(m.client(SELLER).send(meter(ok)), 'AccessDeniedException', 400);
  });

  test('ValidationException for UsageQuantity -1', async () => {
    await expectError(ec2().send(meter({
      ProductCode: 'acmeami001', Timestamp: at(0), UsageDimension: 'hosts', UsageQuantity: -1,
    })), 'ValidationException', 400,
    { message: /1 validation error detected: Value '-1' at 'usageQuantity' failed to satisfy constraint/ });
  });
});

// ---------------------------------------------------------------------------------------------

describe('authentication', () => {
  const m = withServer();
  const input = () => ({ ProductCode: 'acmeami001', Timestamp: at(0), UsageDimension: 'hosts', UsageQuantity: 1 });

  test('wrong secret key -> 403 InvalidSignatureException', async () => {
    await expectError(m.client({ ...EC2, secretAccessKey: 'wrongSecretKey000000000000000000000000001' }).send(meter(input())),
      'InvalidSignatureException', 403, { message: /signature we calculated does not match/ });
    await expectError(m.client({ ...SELLER, secretAccessKey: 'wrongSecretKey000000000000000000000000001' })
      .send(batch({ ProductCode: 'acmesaas01', UsageRecords: [saasRecord()] })),
    'InvalidSignatureException', 403);
  });

  test('unknown or disabled access key -> 403 UnrecognizedClientException', async () => {
    await expectError(m.client({ accessKeyId: 'AKIAUNKNOWNKEY000001', secretAccessKey: 'x'.repeat(40) }).send(meter(input())),
      'UnrecognizedClientException', 403);
    await expectError(m.client(DISABLED).send(batch({ ProductCode: 'acmesaas01', UsageRecords: [saasRecord()] })),
      'UnrecognizedClientException', 403);
  });

  test('session-token credential without its token, or with another token -> 403 UnrecognizedClientException', async () => {
    const { accessKeyId, secretAccessKey } = TEMP_EC2;
    await expectError(m.client({ accessKeyId, secretAccessKey }).send(meter(input())),
      'UnrecognizedClientException', 403);
    await expectError(m.client({ accessKeyId, secretAccessKey, sessionToken: 'not-the-token' }).send(meter(input())),
      'UnrecognizedClientException', 403);
    await expectError(m.client({ ...EC2, sessionToken: 'FwoGZXIvYXdzEGlobexSessionToken0001' }).send(meter(input())),
      'UnrecognizedClientException', 403);
  });
});

// ---------------------------------------------------------------------------------------------

describe('Injected server faults: the SDK retries a transient 500 and bills once', () => {
  const m = withServer();

  async function faults(method, rule) {
    const resp = await fetch(`${m.adminEndpoint}/v1/faults`, {
      method,
      headers: { Authorization: `Bearer ${m.adminToken()}`, 'Content-Type': 'application/json' },
      body: rule ? JSON.stringify(rule) : undefined,
    });
    assert.equal(resp.status, 200, await resp.clone().text());
    return resp.json();
  }

  test('InternalServiceErrorException at half the calls: the SDK gets through, one record stored', async () => {
    // Seeded: the same faults on every run; GET /v1/faults counts what was injected.
    await faults('POST', { operation: 'BatchMeterUsage', internalErrorRate: 0.5, seed: 11 });
    const rec = saasRecord({ Timestamp: at(2.5, 77), Dimension: 'storage_gb', Quantity: 9 });
    const c = m.client(SELLER, { region: 'ap-southeast-2', maxAttempts: 10 });
    const out = await c.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [rec] }));
    assertBatchOk(out, 1);
    assertSuccess(out.Results[0], rec);
    const rule = (await faults('GET')).rules.find((r) => r.operation === 'BatchMeterUsage');
    assert.ok(rule.counts.internalErrors >= 1, 'the seed injected no fault: nothing was retried');
    assert.equal(out.$metadata.attempts, rule.counts.calls, JSON.stringify(rule.counts));
    assert.equal(rule.counts.internalErrors, rule.counts.calls - 1, JSON.stringify(rule.counts));

    // Faults off: the same record again is answered from the ledger with the same id, and a
    // changed quantity is a DuplicateRecord: the retries stored it exactly once.
    await faults('DELETE');
    const once = m.client(SELLER, { region: 'ap-southeast-2' });
    const again = await once.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [rec] }));
    assertBatchOk(again, 1);
    assert.equal(again.Results[0].Status, 'Success');
    assert.equal(again.Results[0].MeteringRecordId, out.Results[0].MeteringRecordId);
    const changed = await once.send(batch({ ProductCode: 'acmesaas01', UsageRecords: [{ ...rec, Quantity: 10 }] }));
    assert.equal(changed.Results[0].Status, 'DuplicateRecord');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Throttling (D14)', () => {
  // A frozen business clock: buckets do not refill, so the burst is exact on any machine.
  const m = withServer(['--clock', 'manual'], true);

  test('MeterUsage: 20 calls of one buyer in a burst pass, then ThrottlingException (400)', async () => {
    const c = m.client(EC2);
    const outcomes = [];
    for (let i = 0; i < 30; i += 1) {
      try {
        await c.send(new MeterUsageCommand({
          ProductCode: 'acmeami001', UsageDimension: 'vcpu_hours', UsageQuantity: 1,
          Timestamp: new Date(Date.now() - 3600 * 1000),
        }));
        outcomes.push(200);
      } catch (err) {
        assert.equal(err.name, 'ThrottlingException');
        assert.equal(err.$metadata.httpStatusCode, 400);
        assert.ok(err.$metadata.requestId);
        outcomes.push(400);
      }
    }
    assert.deepEqual(outcomes, [...Array(20).fill(200), ...Array(10).fill(400)]);
    // The seller's own bucket is untouched.
    await m.client(SELLER).send(new BatchMeterUsageCommand({ ProductCode: 'acmesaas01', UsageRecords: [] }));
  });
});

describe('Throttling: the SDK backs off and succeeds', () => {
  // A real clock and a low rate (5/s, bucket of 5).
  const m = withServer(['--throttle-batch-meter-usage', '5', '--throttle-burst-seconds', '1'], true);

  test('every call gets through with the SDK\'s own retries, some needed them', async () => {
    const c = m.client(SELLER, { maxAttempts: 10 });
    let retried = 0;
    for (let i = 0; i < 12; i += 1) {
      const out = await c.send(new BatchMeterUsageCommand({ ProductCode: 'acmesaas01', UsageRecords: [] }));
      assert.ok(out.$metadata.requestId);
      retried += out.$metadata.attempts - 1;
    }
    assert.ok(retried > 0, 'the server never throttled');
  });
});

