// End-to-end tests of RegisterUsage, the public signing keys and ResolveCustomer, through the AWS
// SDK for JavaScript v3 (@aws-sdk/client-marketplace-metering) with only the endpoint overridden.
//
// Run from the repository root:  node --test tests/js/
// The expected behaviour is docs/BEHAVIOUR-DECISIONS.md ("RegisterUsage", "Signing keys",
// "ResolveCustomer") and ../shared/spec/BEHAVIOUR.md §5, §6, D10, D12.
//
// Every describe() block starts its own meterd (fresh data dir, tests/fixtures/catalog.test.json),
// except the restart blocks, which reuse one data dir across servers, and the blocks that need a
// variant of the catalog: they write a changed copy of catalog.test.json to a temporary directory.
// The RegisterUsage signature (a PS256 JWT) is verified with Node's own crypto only, against the
// public keys meterd serves without credentials on GET /keys/<product>[/<version>.pem].
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  CustomerNotEntitledException,
  DisabledApiException,
  ExpiredTokenException,
  InvalidProductCodeException,
  InvalidPublicKeyVersionException,
  InvalidRegionException,
  InvalidTokenException,
  MeterUsageCommand,
  PlatformNotSupportedException,
  RegisterUsageCommand,
  ResolveCustomerCommand,
} from '@aws-sdk/client-marketplace-metering';

import {
  CA_LICENSE, EC2, ECS, EKS_WEST, FARGATE, INITECH_ECS, METERD, Meterd, OTHER_SELLER, SELLER, TEST_CATALOG,
  TOKEN_CA, TOKEN_ISSUED_2020, TOKEN_LEGACY, TOKEN_OTHER_SELLER,
} from './meterd_harness.mjs';
import { assertOk, assertRequestId, expectError } from './assertions.mjs';

// ---------------------------------------------------------------------------------------------
// Helpers

const PRODUCT = 'acmectr001';
const GLOBEX_ACCOUNT = '444455556666';
const GLOBEX_CUSTOMER = 'cust-globex-0001';
const KEY2_EXPIRED_AT = new Date('2026-06-01T00:00:00Z');
const PSS = crypto.constants.RSA_PKCS1_PSS_PADDING;
const B64URL = /^[A-Za-z0-9_-]+$/;


/** The response members only (no $metadata), as plain JSON. */
const members = (resp) => {
  const { $metadata, ...rest } = resp;
  return JSON.parse(JSON.stringify(rest));
};

const register = (input) => new RegisterUsageCommand({ ProductCode: PRODUCT, PublicKeyVersion: 1, ...input });
const resolve = (token) => new ResolveCustomerCommand({ RegistrationToken: token });

/** Splits a compact JWS; checks the three parts are unpadded base64url; decodes them. */
function decodeJwt(token) {
  assert.equal(typeof token, 'string', 'Signature is not a string');
  const parts = token.split('.');
  assert.equal(parts.length, 3, `Signature is not a three-part JWT: ${token}`);
  for (const p of parts) assert.match(p, B64URL, `JWT part is not unpadded base64url: ${p}`);
  const [h, p, s] = parts;
  return {
    headerB64: h,
    payloadB64: p,
    signature: Buffer.from(s, 'base64url'),
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

/** PS256 check with Node crypto: RSA-PSS, SHA-256, salt length exactly 32. `key`: PEM or KeyObject. */
function verifyJwt(token, key) {
  const [h, p, s] = token.split('.');
  return crypto.verify('sha256', Buffer.from(`${h}.${p}`),
    { key, padding: PSS, saltLength: 32 }, Buffer.from(s, 'base64url'));
}

/** Checks header and payload of a RegisterUsage JWT; returns the decoded token. */
function assertRegisterJwt(token, { version = 1, nonce, iatNear = Date.now() / 1000, iatExact } = {}) {
  const jwt = decodeJwt(token);
  assert.deepEqual(jwt.header, { alg: 'PS256', typ: 'JWT' }, 'JWT header');
  const iat = jwt.payload.iat;
  assert.ok(Number.isInteger(iat), `iat is not an integer number of seconds: ${iat}`);
  if (iatExact !== undefined) {
    assert.equal(iat, iatExact, 'iat must be the business clock in epoch seconds');
  } else {
    assert.ok(Math.abs(iat - iatNear) <= 120, `iat ${iat} is not near now (${Math.round(iatNear)})`);
  }
  const expected = { productCode: PRODUCT, publicKeyVersion: version };
  if (nonce !== undefined) expected.nonce = nonce;
  expected.iat = iat;
  assert.deepEqual(jwt.payload, expected, 'JWT payload');
  if (nonce === undefined) assert.ok(!('nonce' in jwt.payload), 'no nonce was sent: the payload must have none');
  assert.equal(jwt.signature.length, 256, 'an RSA-2048 signature is 256 bytes');
  return jwt;
}

/** GET on the API listener, without credentials. */
async function get(m, urlPath) {
  const res = await fetch(`${m.endpoint}${urlPath}`);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function publicPem(m, version, product = PRODUCT) {
  const r = await get(m, `/keys/${product}/${version}.pem`);
  assert.equal(r.status, 200, `GET /keys/${product}/${version}.pem: ${r.status} ${r.text}`);
  return r.text;
}

async function jwks(m, product = PRODUCT) {
  const r = await get(m, `/keys/${product}`);
  assert.equal(r.status, 200, `GET /keys/${product}: ${r.status} ${r.text}`);
  return JSON.parse(r.text);
}

/** A token with its payload replaced by `payload` (signature kept). */
function withPayload(token, payload) {
  const [h, , s] = token.split('.');
  return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
}

/** Writes a copy of the test catalog changed by `edit(catalog)` into `dir`; returns its path. */
function derivedCatalog(dir, name, edit) {
  const cat = JSON.parse(readFileSync(TEST_CATALOG, 'utf8'));
  edit(cat);
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(cat, null, 1));
  return file;
}

const ctrProduct = (cat) => cat.products.find((p) => p.code === PRODUCT);

function withServer(opts) {
  const m = new Meterd(opts);
  before(async () => { await m.start(); });
  after(async () => { await m.cleanup(); });
  return m;
}

// ---------------------------------------------------------------------------------------------

describe('RegisterUsage: signature', () => {
  const m = withServer();

  test('ECS task, version 1, with a Nonce: a PS256 JWT that verifies against GET /keys/acmectr001/1.pem', async () => {
    const nonce = `nonce-${crypto.randomUUID()}`;
    const resp = await m.client(ECS).send(register({ Nonce: nonce }));
    assertOk(resp);
    assert.equal(resp.PublicKeyRotationTimestamp, undefined, 'version 1 is not expired');
    const jwt = assertRegisterJwt(resp.Signature, { nonce });

    const pem = await publicPem(m, 1);
    assert.match(pem, /^-----BEGIN PUBLIC KEY-----\r?\n/);
    assert.doesNotMatch(pem, /PRIVATE/);
    const key = crypto.createPublicKey(pem);
    assert.equal(key.asymmetricKeyType, 'rsa');
    assert.equal(key.asymmetricKeyDetails.modulusLength, 2048);

    assert.equal(verifyJwt(resp.Signature, pem), true, 'signature does not verify with the served PEM');

    // Tampering with any claim breaks the signature.
    for (const bad of [
      { ...jwt.payload, nonce: `${nonce}x` },
      { ...jwt.payload, productCode: 'acmectr002' },
      { ...jwt.payload, publicKeyVersion: 3 },
      { ...jwt.payload, iat: jwt.payload.iat + 1 },
    ]) {
      assert.equal(verifyJwt(withPayload(resp.Signature, bad), pem), false,
        `tampered payload verified: ${JSON.stringify(bad)}`);
    }
    // A flipped signature bit fails too.
    const sig = Buffer.from(jwt.signature);
    sig[10] ^= 0x01;
    assert.equal(verifyJwt(`${jwt.headerB64}.${jwt.payloadB64}.${sig.toString('base64url')}`, pem), false);
    // The salt length is exactly 32: a verifier that insists on another length refuses it.
    assert.equal(crypto.verify('sha256', Buffer.from(`${jwt.headerB64}.${jwt.payloadB64}`),
      { key: pem, padding: PSS, saltLength: 20 }, jwt.signature), false, 'salt length is not 32');
  });

  test('Fargate task: same shape; no nonce key when no Nonce is sent', async () => {
    const resp = await m.client(FARGATE).send(register({}));
    assertOk(resp);
    assert.equal(resp.PublicKeyRotationTimestamp, undefined);
    assertRegisterJwt(resp.Signature);
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 1)), true);
  });

  test('an empty Nonce is echoed as "nonce": ""', async () => {
    const resp = await m.client(FARGATE).send(register({ Nonce: '' }));
    assertOk(resp);
    assertRegisterJwt(resp.Signature, { nonce: '' });
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 1)), true);
  });

  test('GET /keys/acmectr001 is a JWKS (kid 1, 2, 3) that verifies the same token', async () => {
    const nonce = 'jwks-check';
    const resp = await m.client(ECS).send(register({ Nonce: nonce }));
    assertOk(resp);
    assertRegisterJwt(resp.Signature, { nonce });

    const set = await jwks(m);
    assert.ok(Array.isArray(set.keys), `JWKS has no keys array: ${JSON.stringify(set)}`);
    assert.deepEqual(set.keys.map((k) => k.kid).sort(), ['1', '2', '3']);
    for (const k of set.keys) {
      assert.equal(k.kty, 'RSA', `kid ${k.kid}: kty`);
      assert.equal(k.alg, 'PS256', `kid ${k.kid}: alg`);
      assert.equal(k.use, 'sig', `kid ${k.kid}: use`);
      assert.match(k.n, B64URL, `kid ${k.kid}: n`);
      assert.match(k.e, B64URL, `kid ${k.kid}: e`);
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) {
        assert.ok(!(secret in k), `kid ${k.kid}: the JWKS leaks private member ${secret}`);
      }
      const pub = crypto.createPublicKey({ key: k, format: 'jwk' });
      assert.equal(pub.asymmetricKeyDetails.modulusLength, 2048, `kid ${k.kid}: RSA-2048`);
    }
    const jwk1 = set.keys.find((k) => k.kid === '1');
    const fromJwk = crypto.createPublicKey({ key: jwk1, format: 'jwk' });
    assert.equal(verifyJwt(resp.Signature, fromJwk), true, 'token does not verify with JWKS kid 1');

    // kid 1 is the key of 1.pem; the three versions are three different keys.
    const fromPem = crypto.createPublicKey(await publicPem(m, 1)).export({ format: 'jwk' });
    assert.equal(fromPem.n, jwk1.n);
    assert.equal(fromPem.e, jwk1.e);
    assert.equal(new Set(set.keys.map((k) => k.n)).size, 3, 'versions 1, 2, 3 must be distinct keys');
    for (const kid of ['2', '3']) {
      const other = crypto.createPublicKey({ key: set.keys.find((k) => k.kid === kid), format: 'jwk' });
      assert.equal(verifyJwt(resp.Signature, other), false, `a version-1 token verifies with kid ${kid}`);
    }
  });

  test('version 2 is expired: still signs, and answers PublicKeyRotationTimestamp = its expiredAt', async () => {
    const resp = await m.client(ECS).send(register({ PublicKeyVersion: 2, Nonce: 'v2' }));
    assertOk(resp);
    assert.ok(resp.PublicKeyRotationTimestamp instanceof Date, 'PublicKeyRotationTimestamp missing');
    assert.equal(resp.PublicKeyRotationTimestamp.getTime(), KEY2_EXPIRED_AT.getTime());
    assertRegisterJwt(resp.Signature, { version: 2, nonce: 'v2' });
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 2)), true, 'does not verify with 2.pem');
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 1)), false, 'a version-2 token verifies with 1.pem');
  });

  test('version 3 signs with its own key, no PublicKeyRotationTimestamp', async () => {
    const resp = await m.client(FARGATE).send(register({ PublicKeyVersion: 3, Nonce: 'v3' }));
    assertOk(resp);
    assert.equal(resp.PublicKeyRotationTimestamp, undefined);
    assertRegisterJwt(resp.Signature, { version: 3, nonce: 'v3' });
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 3)), true);
  });

  test('EKS pod in us-west-2 succeeds when signing for us-west-2', async () => {
    const resp = await m.client(EKS_WEST, { region: 'us-west-2' }).send(register({ Nonce: 'eks' }));
    assertOk(resp);
    assertRegisterJwt(resp.Signature, { nonce: 'eks' });
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 1)), true);
  });

});

// A second server, so that no block sends more than 10 RegisterUsage calls for one account and
// region (D14 burst) should throttling be switched on.
describe('RegisterUsage: repeated calls and Nonce values', () => {
  const m = withServer();

  test('a repeated RegisterUsage from the same task succeeds again with a fresh, valid token', async () => {
    const c = m.client(ECS);
    const a = await c.send(register({ Nonce: 'again-1' }));
    const b = await c.send(register({ Nonce: 'again-2' }));
    assertOk(a);
    assertOk(b);
    assertRegisterJwt(b.Signature, { nonce: 'again-2' });
    const pem = await publicPem(m, 1);
    assert.equal(verifyJwt(a.Signature, pem), true);
    assert.equal(verifyJwt(b.Signature, pem), true);
  });

  test('a Nonce with quotes, backslashes, control and non-ASCII characters comes back exactly', async () => {
    const nonce = 'q"uote\\back/slash\n\t\u0001 caf\u00e9 \u2028 \u{1F600} end';
    const resp = await m.client(ECS).send(register({ Nonce: nonce }));
    assertOk(resp);
    assertRegisterJwt(resp.Signature, { nonce });
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 1)), true);
  });

  test('Nonce of 255 characters is accepted, 256 -> ValidationException', async () => {
    const ok = await m.client(FARGATE).send(register({ Nonce: 'n'.repeat(255) }));
    assertOk(ok);
    assertRegisterJwt(ok.Signature, { nonce: 'n'.repeat(255) });
    await expectError(m.client(FARGATE).send(register({ Nonce: 'n'.repeat(256) })), 'ValidationException', 400,
      { message: /at 'nonce' failed to satisfy constraint/ });
  });
});

describe('RegisterUsage: concurrent first use of a key version', () => {
  const m = withServer();

  test('concurrent calls and key downloads all see one key per version', async () => {
    const calls = [];
    for (let i = 0; i < 4; i++) {
      calls.push(m.client(ECS).send(register({ PublicKeyVersion: 3, Nonce: `c-ecs-${i}` })));
      calls.push(m.client(FARGATE).send(register({ PublicKeyVersion: 3, Nonce: `c-fgt-${i}` })));
    }
    const pems = [1, 2, 3, 4].map(() => get(m, '/keys/acmectr001/3.pem'));
    const [resps, gotPems] = await Promise.all([Promise.all(calls), Promise.all(pems)]);
    for (const r of gotPems) assert.equal(r.status, 200);
    assert.equal(new Set(gotPems.map((r) => r.text)).size, 1, 'concurrent downloads saw different version-3 keys');
    const pem = await publicPem(m, 3);
    assert.equal(gotPems[0].text, pem);
    for (const r of resps) {
      assertOk(r);
      assert.equal(verifyJwt(r.Signature, pem), true, 'a concurrent token does not verify with the final 3.pem');
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('public keys over HTTP', () => {
  const m = withServer();

  test('unknown product or version -> 404', async () => {
    assert.equal((await get(m, '/keys/nosuchproduct')).status, 404);
    assert.equal((await get(m, '/keys/nosuchproduct/1.pem')).status, 404);
    assert.equal((await get(m, '/keys/acmectr001/9.pem')).status, 404);
    assert.equal((await get(m, '/keys/acmectr001/0.pem')).status, 404);
  });

  test('keys are served before any RegisterUsage call, without credentials', async () => {
    const set = await jwks(m);
    assert.deepEqual(set.keys.map((k) => k.kid).sort(), ['1', '2', '3']);
    for (const v of [1, 2, 3]) assert.match(await publicPem(m, v), /^-----BEGIN PUBLIC KEY-----/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('RegisterUsage: errors', () => {
  const m = withServer();

  test('seller credential -> AccessDeniedException', async () => {
    await expectError(m.client(SELLER).send(register({})), 'AccessDeniedException', 400);
  });

  test('EC2 workload -> PlatformNotSupportedException', async () => {
    await expectError(m.client(EC2).send(register({})), 'PlatformNotSupportedException', 400, {
      ctor: PlatformNotSupportedException,
      message: /This operation can only be called from within an ECS task or an EKS pod/,
    });
  });

  test('EKS pod of us-west-2 signing for us-east-1 -> InvalidRegionException', async () => {
    await expectError(m.client(EKS_WEST, { region: 'us-east-1' }).send(register({})),
      'InvalidRegionException', 400, { ctor: InvalidRegionException });
  });

  test('ECS task of us-east-1 signing for us-west-2 -> InvalidRegionException', async () => {
    await expectError(m.client(ECS, { region: 'us-west-2' }).send(register({})),
      'InvalidRegionException', 400, { ctor: InvalidRegionException });
  });

  test('not a container product, or unknown -> InvalidProductCodeException', async () => {
    for (const ProductCode of ['acmeami001', 'acmesaas01', 'nosuchproduct']) {
      await expectError(m.client(ECS).send(register({ ProductCode })),
        'InvalidProductCodeException', 400, { ctor: InvalidProductCodeException });
    }
  });

  test('PublicKeyVersion 9 -> InvalidPublicKeyVersionException', async () => {
    await expectError(m.client(ECS).send(register({ PublicKeyVersion: 9 })),
      'InvalidPublicKeyVersionException', 400,
      { ctor: InvalidPublicKeyVersionException, message: /Public Key version is invalid/ });
  });

  test('PublicKeyVersion 0 or -1 -> ValidationException (model min 1)', async () => {
    for (const v of [0, -1]) {
      await expectError(m.client(ECS).send(register({ PublicKeyVersion: v })), 'ValidationException', 400,
        { message: new RegExp(`Value '${v}' at 'publicKeyVersion' failed to satisfy constraint`) });
    }
  });

  test('ProductCode "" or missing PublicKeyVersion -> ValidationException', async () => {
    await expectError(m.client(ECS).send(register({ ProductCode: '' })), 'ValidationException', 400);
    await expectError(m.client(ECS).send(new RegisterUsageCommand({ ProductCode: PRODUCT })), 'ValidationException', 400,
      { message: /publicKeyVersion/ });
  });

  test('buyer without a subscription (Initech ECS task) -> CustomerNotEntitledException', async () => {
    await expectError(m.client(INITECH_ECS).send(register({})),
      'CustomerNotEntitledException', 400, { ctor: CustomerNotEntitledException });
    // Not remembered: an error is evaluated afresh.
    await expectError(m.client(INITECH_ECS).send(register({})),
      'CustomerNotEntitledException', 400, { ctor: CustomerNotEntitledException });
  });

  test('region eu-south-2 (RegisterUsage disabled) -> DisabledApiException', async () => {
    await expectError(m.client(ECS, { region: 'eu-south-2' }).send(register({})),
      'DisabledApiException', 400, { ctor: DisabledApiException, message: /The API is disabled in the Region/ });
  });
});

describe('RegisterUsage: order of checks', () => {
  const m = withServer();

  test('caller before region: seller in eu-south-2 -> AccessDeniedException', async () => {
    await expectError(m.client(SELLER, { region: 'eu-south-2' }).send(register({})), 'AccessDeniedException', 400);
  });

  test('region before platform: EC2 workload in eu-south-2 -> DisabledApiException', async () => {
    await expectError(m.client(EC2, { region: 'eu-south-2' }).send(register({})), 'DisabledApiException', 400);
  });

  test('platform before workload region: EC2 workload signing for us-west-2 -> PlatformNotSupportedException', async () => {
    await expectError(m.client(EC2, { region: 'us-west-2' }).send(register({})), 'PlatformNotSupportedException', 400);
  });

  test('workload region before product: EKS us-west-2 pod, us-east-1, acmeami001 -> InvalidRegionException', async () => {
    await expectError(m.client(EKS_WEST).send(register({ ProductCode: 'acmeami001' })), 'InvalidRegionException', 400);
  });

  test('product before key version: acmeami001 with version 9 -> InvalidProductCodeException', async () => {
    await expectError(m.client(ECS).send(register({ ProductCode: 'acmeami001', PublicKeyVersion: 9 })),
      'InvalidProductCodeException', 400);
  });

  test('key version before entitlement: Initech ECS task, version 9 -> InvalidPublicKeyVersionException', async () => {
    await expectError(m.client(INITECH_ECS).send(register({ PublicKeyVersion: 9 })),
      'InvalidPublicKeyVersionException', 400);
  });

  test('shape validation first: seller with version 0 -> ValidationException', async () => {
    await expectError(m.client(SELLER).send(register({ PublicKeyVersion: 0 })), 'ValidationException', 400);
  });
});

// ---------------------------------------------------------------------------------------------

describe('RegisterUsage: business clock', () => {
  const START = '2026-03-01T12:00:00Z';
  const m = withServer({ extraArgs: ['--clock', 'manual', '--clock-start', START] });

  test('iat is the business clock (manual clock) in epoch seconds', async () => {
    const resp = await m.client(ECS).send(register({ Nonce: 'clock' }));
    assertOk(resp);
    assertRegisterJwt(resp.Signature, { nonce: 'clock', iatExact: Date.parse(START) / 1000 });
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 1)), true);
  });
});

describe('signing keys survive a restart', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'meterd-test-keys-'));
  let m = null;
  after(async () => {
    if (m) await m.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('same public keys and tokens that still verify; DATA/keys is 0700, its files 0600', async () => {
    m = await new Meterd({ dataDir }).start();
    const first = await m.client(ECS).send(register({ Nonce: 'before-restart' }));
    assertOk(first);
    const pemBefore = await publicPem(m, 1);
    const setBefore = await jwks(m);
    assert.equal(verifyJwt(first.Signature, pemBefore), true);
    await m.cleanup();

    const keysDir = path.join(dataDir, 'keys');
    const dirMode = statSync(keysDir).mode & 0o777;
    assert.equal(dirMode, 0o700, `DATA/keys mode ${dirMode.toString(8)}`);
    const files = readdirSync(keysDir, { recursive: true })
      .map((f) => path.join(keysDir, String(f)))
      .filter((f) => statSync(f).isFile());
    assert.ok(files.length > 0, 'no key file in DATA/keys');
    for (const f of files) {
      const mode = statSync(f).mode & 0o777;
      assert.equal(mode, 0o600, `${f} mode ${mode.toString(8)}`);
    }

    m = await new Meterd({ dataDir }).start();
    assert.equal(await publicPem(m, 1), pemBefore, 'the version-1 public key changed across a restart');
    assert.deepEqual(await jwks(m), setBefore, 'the JWKS changed across a restart');
    assert.equal(verifyJwt(first.Signature, await publicPem(m, 1)), true);
    const second = await m.client(ECS).send(register({ Nonce: 'after-restart' }));
    assertOk(second);
    assertRegisterJwt(second.Signature, { nonce: 'after-restart' });
    assert.equal(verifyJwt(second.Signature, pemBefore), true, 'a token after restart does not verify with the old PEM');

    // A registration token keeps resolving to the same answer across the restart.
    const r = await m.client(SELLER).send(resolve(TOKEN_LEGACY));
    assertOk(r);
    assert.equal(r.CustomerIdentifier, GLOBEX_CUSTOMER);
  });

  test('offline: `meterd keys export` prints the served keys; `meterd verify-token` checks a token', async () => {
    assert.ok(m, 'the previous test did not start a server');
    const token = (await m.client(FARGATE).send(register({ Nonce: 'offline' }))).Signature;
    const pem1 = await publicPem(m, 1);
    const set = await jwks(m);
    await m.cleanup();
    m = null;

    const run = (args) => spawnSync(METERD, args, { encoding: 'utf8', timeout: 30000 });
    const base = ['--data', dataDir, '--catalog', TEST_CATALOG, '--product', PRODUCT];
    const pemOut = run(['keys', 'export', ...base, '--version', '1']);
    assert.equal(pemOut.status, 0, `keys export --version 1: ${pemOut.stderr}`);
    assert.equal(pemOut.stdout.trim(), pem1.trim(), 'keys export PEM differs from GET /keys/acmectr001/1.pem');
    const jwksOut = run(['keys', 'export', ...base, '--format', 'jwks']);
    assert.equal(jwksOut.status, 0, `keys export --format jwks: ${jwksOut.stderr}`);
    assert.deepEqual(JSON.parse(jwksOut.stdout), set, 'keys export JWKS differs from GET /keys/acmectr001');

    const pemFile = path.join(dataDir, 'acmectr001-1.pub.pem');
    writeFileSync(pemFile, pem1);
    const good = run(['verify-token', '--token', token, '--public-key', pemFile, '--product', PRODUCT]);
    assert.equal(good.status, 0, `verify-token refused a good token: ${good.stdout}${good.stderr}`);
    const jwt = decodeJwt(token);
    const tampered = withPayload(token, { ...jwt.payload, nonce: 'other' });
    const bad = run(['verify-token', '--token', tampered, '--public-key', pemFile]);
    assert.notEqual(bad.status, 0, 'verify-token accepted a tampered token');
    const wrongProduct = run(['verify-token', '--token', token, '--public-key', pemFile, '--product', 'acmectr002']);
    assert.notEqual(wrongProduct.status, 0, 'verify-token accepted a token of another product');
  });
});

describe('ResolveCustomer: when a data dir first saw a catalog token is remembered across restarts', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'meterd-test-tokens-'));
  let m = null;
  after(async () => {
    if (m) await m.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const at = (iso) => ['--clock', 'manual', '--clock-start', iso];

  test('first seen at 00:00, restarted at 04:00:01 -> ExpiredTokenException; a fresh data dir resolves it', async () => {
    m = await new Meterd({ dataDir, extraArgs: at('2026-03-01T00:00:00Z') }).start();
    assertOk(await m.client(SELLER).send(resolve(TOKEN_LEGACY)));
    await m.cleanup();
    m = null;

    m = await new Meterd({ dataDir, extraArgs: at('2026-03-01T03:59:00Z') }).start();
    assertOk(await m.client(SELLER).send(resolve(TOKEN_LEGACY)));
    await m.cleanup();
    m = null;

    m = await new Meterd({ dataDir, extraArgs: at('2026-03-01T04:00:01Z') }).start();
    await expectError(m.client(SELLER).send(resolve(TOKEN_LEGACY)), 'ExpiredTokenException', 400,
      { ctor: ExpiredTokenException });
    await m.cleanup();
    m = null;

    const fresh = await new Meterd({ extraArgs: at('2026-03-01T04:00:01Z') }).start();
    try {
      assertOk(await fresh.client(SELLER).send(resolve(TOKEN_LEGACY)));
    } finally {
      await fresh.cleanup();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('ResolveCustomer', () => {
  const m = withServer();

  test('legacy token -> CustomerIdentifier, ProductCode, CustomerAWSAccountId, no LicenseArn', async () => {
    const resp = await m.client(SELLER).send(resolve(TOKEN_LEGACY));
    assertOk(resp);
    assert.deepEqual(members(resp), {
      CustomerIdentifier: GLOBEX_CUSTOMER,
      ProductCode: 'acmesaas01',
      CustomerAWSAccountId: GLOBEX_ACCOUNT,
    });
    assert.equal(resp.LicenseArn, undefined);
  });

  test('concurrent-agreements token -> ProductCode, CustomerAWSAccountId, LicenseArn, no CustomerIdentifier', async () => {
    const resp = await m.client(SELLER).send(resolve(TOKEN_CA));
    assertOk(resp);
    assert.deepEqual(members(resp), {
      ProductCode: 'acmesaasca1',
      CustomerAWSAccountId: GLOBEX_ACCOUNT,
      LicenseArn: CA_LICENSE,
    });
    assert.equal(resp.CustomerIdentifier, undefined);
  });

  test('repeated calls give the same answer', async () => {
    const c = m.client(SELLER);
    for (const token of [TOKEN_LEGACY, TOKEN_CA]) {
      const a = await c.send(resolve(token));
      const b = await c.send(resolve(token));
      const d = await c.send(resolve(token));
      assertOk(b);
      assert.deepEqual(members(b), members(a));
      assert.deepEqual(members(d), members(a));
    }
  });

  test("another seller's token -> InvalidTokenException; that seller resolves it", async () => {
    await expectError(m.client(SELLER).send(resolve(TOKEN_OTHER_SELLER)), 'InvalidTokenException', 400,
      { ctor: InvalidTokenException, message: /Registration token is invalid/ });
    const resp = await m.client(OTHER_SELLER).send(resolve(TOKEN_OTHER_SELLER));
    assertOk(resp);
    // CustomerIdentifier is the buyer's, the same across products.
    assert.deepEqual(members(resp), {
      CustomerIdentifier: GLOBEX_CUSTOMER, ProductCode: 'othersaas01', CustomerAWSAccountId: GLOBEX_ACCOUNT,
    });
    await expectError(m.client(OTHER_SELLER).send(resolve(TOKEN_LEGACY)), 'InvalidTokenException', 400,
      { ctor: InvalidTokenException });
  });

  test('unknown token -> InvalidTokenException', async () => {
    for (const token of ['no-such-registration-token', `${TOKEN_LEGACY}x`]) {
      await expectError(m.client(SELLER).send(resolve(token)), 'InvalidTokenException', 400,
        { ctor: InvalidTokenException, message: /Registration token is invalid/ });
    }
  });

  test('empty or very long token', async () => {
    await expectError(m.client(SELLER).send(resolve('')), 'ValidationException', 400);
    await expectError(m.client(SELLER).send(resolve('t'.repeat(20000))), 'InvalidTokenException', 400,
      { ctor: InvalidTokenException });
  });

  test('token issued in 2020 -> ExpiredTokenException (every time)', async () => {
    for (let i = 0; i < 2; i++) {
      await expectError(m.client(SELLER).send(resolve(TOKEN_ISSUED_2020)), 'ExpiredTokenException', 400,
        { ctor: ExpiredTokenException });
    }
  });

  test('workload credential -> AccessDeniedException', async () => {
    for (const cred of [EC2, ECS]) {
      await expectError(m.client(cred).send(resolve(TOKEN_LEGACY)), 'AccessDeniedException', 400);
    }
  });

  test('region eu-south-2 (ResolveCustomer disabled) -> DisabledApiException', async () => {
    await expectError(m.client(SELLER, { region: 'eu-south-2' }).send(resolve(TOKEN_LEGACY)),
      'DisabledApiException', 400, { ctor: DisabledApiException, message: /The API is disabled in the Region/ });
  });

  test('order: caller before region, region before token', async () => {
    await expectError(m.client(EC2, { region: 'eu-south-2' }).send(resolve(TOKEN_LEGACY)), 'AccessDeniedException', 400);
    await expectError(m.client(SELLER, { region: 'eu-south-2' }).send(resolve('no-such-registration-token')),
      'DisabledApiException', 400);
  });

  test('any enabled region works (not tied to where metering happens)', async () => {
    const resp = await m.client(SELLER, { region: 'eu-west-1' }).send(resolve(TOKEN_LEGACY));
    assertOk(resp);
    assert.equal(resp.CustomerIdentifier, GLOBEX_CUSTOMER);
  });
});

describe('ResolveCustomer: token lifetime', () => {
  describe('--token-ttl-hours 100000 keeps the 2020 token valid', () => {
    const m = withServer({ extraArgs: ['--token-ttl-hours', '100000'] });

    test('the 2020 token resolves', async () => {
      const resp = await m.client(SELLER).send(resolve(TOKEN_ISSUED_2020));
      assertOk(resp);
      assert.deepEqual(members(resp), {
        CustomerIdentifier: GLOBEX_CUSTOMER, ProductCode: 'acmesaas01', CustomerAWSAccountId: GLOBEX_ACCOUNT,
      });
    });
  });

  describe('expiry follows the business clock', () => {
    // 3 h 59 min after the 2020 token's issuedAt: still inside the default 4 h.
    const m = withServer({ extraArgs: ['--clock', 'manual', '--clock-start', '2020-01-01T03:59:00Z'] });

    test('the 2020 token resolves at 2020-01-01T03:59Z', async () => {
      const resp = await m.client(SELLER).send(resolve(TOKEN_ISSUED_2020));
      assertOk(resp);
      assert.equal(resp.ProductCode, 'acmesaas01');
      assert.equal(resp.CustomerIdentifier, GLOBEX_CUSTOMER);
    });
  });

  describe('--token-ttl-hours 1 with the clock 1 h 1 s after issuedAt', () => {
    const m = withServer({
      extraArgs: ['--token-ttl-hours', '1', '--clock', 'manual', '--clock-start', '2020-01-01T01:00:01Z'],
    });

    test('the 2020 token has expired; a token first seen now has not', async () => {
      await expectError(m.client(SELLER).send(resolve(TOKEN_ISSUED_2020)), 'ExpiredTokenException', 400,
        { ctor: ExpiredTokenException });
      const resp = await m.client(SELLER).send(resolve(TOKEN_LEGACY));
      assertOk(resp);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('RegisterUsage: entitlement is checked only on the first call (D10), durably', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'meterd-test-entitle-'));
  const catDir = mkdtempSync(path.join(tmpdir(), 'meterd-test-cat-'));
  let m = null;
  after(async () => {
    if (m) await m.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(catDir, { recursive: true, force: true });
  });

  test('after the buyer unsubscribes, a registered task keeps working; a new one is refused', async () => {
    m = await new Meterd({ dataDir }).start();
    assertOk(await m.client(ECS).send(register({ Nonce: 'first' })));
    // The same first-call memory as MeterUsage on containers: the Fargate task meters first.
    assertOk(await m.client(FARGATE).send(new MeterUsageCommand({
      ProductCode: PRODUCT, Timestamp: new Date(), UsageDimension: 'nodes', UsageQuantity: 1,
    })));
    await m.cleanup();
    m = null;

    const unsubscribed = derivedCatalog(catDir, 'unsubscribed.json', (cat) => {
      const sub = cat.subscriptions.find((x) => x.account === GLOBEX_ACCOUNT && x.product === PRODUCT);
      sub.status = 'unsubscribed';
    });
    m = await new Meterd({ dataDir, catalog: unsubscribed }).start();
    const again = await m.client(ECS).send(register({ Nonce: 'after-unsubscribe' }));
    assertOk(again);
    assertRegisterJwt(again.Signature, { nonce: 'after-unsubscribe' });
    assertOk(await m.client(FARGATE).send(register({ Nonce: 'fargate-after-unsubscribe' })));
    // The EKS pod never called before: the unsubscribed buyer is not entitled.
    await expectError(m.client(EKS_WEST, { region: 'us-west-2' }).send(register({})),
      'CustomerNotEntitledException', 400, { ctor: CustomerNotEntitledException });
  });
});

describe('signing keys from the catalog', () => {
  const catDir = mkdtempSync(path.join(tmpdir(), 'meterd-test-cat-'));
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const importedPem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const catalog = derivedCatalog(catDir, 'keys.json', (cat) => {
    ctrProduct(cat).signingKeys = [
      { version: 1, privateKeyPem: importedPem },
      { version: 3, expired: true }, // no expiredAt: the catalog load time
    ];
  });
  const m = new Meterd({ catalog });
  let loadedFrom = 0;
  let loadedTo = 0;
  before(async () => {
    loadedFrom = Date.now();
    await m.start();
    loadedTo = Date.now();
  });
  after(async () => {
    await m.cleanup();
    rmSync(catDir, { recursive: true, force: true });
  });

  test('privateKeyPem is imported: the served key is its public half and tokens verify with it', async () => {
    const pem = await publicPem(m, 1);
    assert.equal(crypto.createPublicKey(pem).export({ format: 'jwk' }).n, publicKey.export({ format: 'jwk' }).n,
      'GET /keys/acmectr001/1.pem is not the imported key');
    const resp = await m.client(ECS).send(register({ Nonce: 'imported' }));
    assertOk(resp);
    assertRegisterJwt(resp.Signature, { nonce: 'imported' });
    assert.equal(verifyJwt(resp.Signature, publicKey), true, 'token does not verify with the imported key');
    const set = await jwks(m);
    assert.deepEqual(set.keys.map((k) => k.kid).sort(), ['1', '3']);
    assert.equal((await get(m, '/keys/acmectr001/2.pem')).status, 404);
  });

  test('only catalog versions are valid: version 2 -> InvalidPublicKeyVersionException', async () => {
    await expectError(m.client(ECS).send(register({ PublicKeyVersion: 2 })),
      'InvalidPublicKeyVersionException', 400, { ctor: InvalidPublicKeyVersionException });
  });

  test('an expired version without expiredAt answers the catalog load time as PublicKeyRotationTimestamp', async () => {
    const resp = await m.client(ECS).send(register({ PublicKeyVersion: 3 }));
    assertOk(resp);
    assert.ok(resp.PublicKeyRotationTimestamp instanceof Date, 'PublicKeyRotationTimestamp missing');
    const t = resp.PublicKeyRotationTimestamp.getTime();
    assert.ok(t >= Math.floor(loadedFrom / 1000) * 1000 && t <= loadedTo,
      `PublicKeyRotationTimestamp ${resp.PublicKeyRotationTimestamp.toISOString()} is not the load time `
      + `(${new Date(loadedFrom).toISOString()} .. ${new Date(loadedTo).toISOString()})`);
    assertRegisterJwt(resp.Signature, { version: 3 });
    assert.equal(verifyJwt(resp.Signature, await publicPem(m, 3)), true);
  });
});
