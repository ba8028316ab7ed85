// Browser tests of the web console (console/): playwright-core drives Debian's Chromium headless
// against the real meterd (build/bin/meterd, serving build/console at / of its admin listener),
// with usage seeded through the AWS SDK for JavaScript v3 as a seller and a workload would send
// it. Screenshots go to METERD_SCREENSHOT_DIR (default build/browser-screenshots).
//
// Run from the repository root:  node --test tests/browser/
// Needs: `npm ci` in tests/browser and tests/js (make js-deps), Chromium at /usr/bin/chromium
// (or METERD_CHROMIUM). A missing browser fails the suite: it is never skipped.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { EC2, INITECH_LICENSE, Meterd, REPO, SELLER } from '../js/meterd_harness.mjs';

// The SDK is installed once, in tests/js (the harness resolves it from there too).
const sdk = createRequire(path.join(REPO, 'tests', 'js', 'package.json'))(
  '@aws-sdk/client-marketplace-metering');

const CHROMIUM = process.env.METERD_CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = process.env.METERD_SCREENSHOT_DIR || path.join(REPO, 'build', 'browser-screenshots');
// The machine's network is closed: without these Chromium stalls on refused connections.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

// The business clock is frozen here; every seeded record lies in the 24 hours before it, over
// two UTC days, and the console's default range is the 7 days up to the end of this day.
const CLOCK = '2026-11-20T10:30:00Z';
const t = (iso) => new Date(iso);
const GLOBEX = '444455556666';
const INITECH = '777788889999';

// acmesaas01 (api_calls at 0.0001 per unit, storage_gb unpriced) for Globex, by the seller.
const SAAS_RECORDS = [
  ['2026-11-19T12:00:00Z', 'api_calls', 100], ['2026-11-19T18:00:00Z', 'api_calls', 250],
  ['2026-11-20T02:00:00Z', 'api_calls', 40], ['2026-11-20T09:00:00Z', 'api_calls', 7],
  ['2026-11-19T12:30:00Z', 'storage_gb', 3000], ['2026-11-20T09:15:00Z', 'storage_gb', 2000],
];
// acmesaasca1 (seats at 12.5) for Initech, by license, by the seller.
const SEAT_RECORDS = [['2026-11-19T13:00:00Z', 3], ['2026-11-20T03:00:00Z', 5]];
// acmeami001 by Globex's EC2 instance (MeterUsage: within 6 hours of the clock).
const AMI_CALLS = [['2026-11-20T08:00:00Z', 'vcpu_hours', 12], ['2026-11-20T10:00:00Z', 'hosts', 2]];

// What the console must show for that usage (exact decimals, as the page prints them).
const EXPECTED = {
  acmesaas01: { dims: { api_calls: ['397', '0.0397', 4], storage_gb: ['5000', '—', 2] }, days: 2, hours: 4 },
  acmesaasca1: { dims: { seats: ['8', '100', 2] }, days: 2, hours: 2 },
  acmeami001: { dims: { hosts: ['2', '—', 1], vcpu_hours: ['12', '—', 1] }, days: 1, hours: 2 },
};
const TOTAL_QUANTITY = '5419';
const TOTAL_AMOUNT = '100.0397';
const CUSTOMERS = { [GLOBEX]: ['5411', '0.0397'], [INITECH]: ['8', '100'] };

describe('web console', () => {
  const m = new Meterd({ extraArgs: ['--clock', 'manual', '--clock-start', CLOCK] });
  let context;
  let page;
  let token;
  const failedCalls = []; // the error names the SDK saw, in order
  const pageProblems = []; // page errors and console errors (a CSP violation logs one)
  const foreignRequests = [];

  async function api(pathAndQuery) {
    const r = await fetch(m.adminEndpoint + pathAndQuery, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, `${pathAndQuery}: ${await r.clone().text()}`);
    return r.json();
  }

  // Waits until the page has answered every load it started.
  const settled = (p = page) => p.waitForFunction(() => document.body.dataset.pending === '0');

  async function shoot(name) {
    await page.screenshot({ path: path.join(SCREENSHOTS, name), fullPage: true });
  }

  async function usageTotals() {
    return page.$$eval('#usage-charts .chart-card', (cards) => Object.fromEntries(cards.map((card) => [
      card.dataset.product,
      {
        periods: Number(card.dataset.periods),
        withUsage: Number(card.dataset.periodsWithUsage),
        dims: Object.fromEntries([...card.querySelectorAll('tbody tr')].map((row) => [
          row.dataset.dimension,
          [row.querySelector('[data-total-quantity]').textContent,
            row.querySelector('[data-total-amount]').textContent,
            Number(row.querySelector('[data-total-records]').textContent)],
        ])),
      },
    ])));
  }

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (scripts/install-deps.sh installs it)`);
    mkdirSync(SCREENSHOTS, { recursive: true });
    await m.start();
    token = m.adminToken();

    const seller = m.client(SELLER);
    const batch = await seller.send(new sdk.BatchMeterUsageCommand({
      ProductCode: 'acmesaas01',
      UsageRecords: SAAS_RECORDS.map(([at, Dimension, Quantity]) => ({
        Timestamp: t(at), CustomerIdentifier: 'cust-globex-0001', Dimension, Quantity })),
    }));
    const seats = await seller.send(new sdk.BatchMeterUsageCommand({
      UsageRecords: SEAT_RECORDS.map(([at, Quantity]) => ({
        Timestamp: t(at), CustomerAWSAccountId: INITECH, LicenseArn: INITECH_LICENSE, Dimension: 'seats', Quantity })),
    }));
    for (const r of [...batch.Results, ...seats.Results]) assert.equal(r.Status, 'Success', JSON.stringify(r));
    assert.deepEqual([...batch.UnprocessedRecords, ...seats.UnprocessedRecords], []);
    const ec2 = m.client(EC2);
    for (const [at, UsageDimension, UsageQuantity] of AMI_CALLS) {
      await ec2.send(new sdk.MeterUsageCommand({
        ProductCode: 'acmeami001', Timestamp: t(at), UsageDimension, UsageQuantity }));
    }
    // Two refused calls, for the recent-calls table to highlight.
    for (const refused of [
      () => ec2.send(new sdk.MeterUsageCommand({
        ProductCode: 'acmeami001', Timestamp: t('2026-11-20T10:00:00Z'), UsageDimension: 'no_such_dimension', UsageQuantity: 1 })),
      () => seller.send(new sdk.BatchMeterUsageCommand({
        ProductCode: 'othersaas01', UsageRecords: [{ Timestamp: t('2026-11-20T10:00:00Z'), CustomerIdentifier: 'cust-globex-0001', Dimension: 'api_calls', Quantity: 1 }] })),
    ]) {
      await assert.rejects(refused(), (e) => { failedCalls.push(e.name); return true; });
    }

    const userDataDir = mkdtempSync(path.join(tmpdir(), 'meterd-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS, // the fresh --user-data-dir is the first parameter
      viewport: { width: 1400, height: 1000 },
      acceptDownloads: true,
    });
    context.userDataDir = userDataDir;
    const watch = (p) => {
      p.on('pageerror', (e) => pageProblems.push(`pageerror: ${e.message}`));
      p.on('console', (msg) => { if (msg.type() === 'error') pageProblems.push(`console: ${msg.text()}`); });
      p.on('request', (req) => {
        const url = new URL(req.url());
        if (url.hostname !== '127.0.0.1' && url.protocol !== 'blob:') foreignRequests.push(req.url());
      });
    };
    context.pages().forEach(watch);
    context.on('page', watch);
    page = context.pages()[0] ?? await context.newPage();
  });

  after(async () => {
    if (context) {
      await context.close();
      rmSync(context.userDataDir, { recursive: true, force: true });
    }
    await m.cleanup();
  });

  test('the console is served without a token, under a Content-Security-Policy; the API is not', async () => {
    const index = await fetch(`${m.adminEndpoint}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    const csp = index.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    const html = await index.text();
    assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]|https?:\/\//, 'inline script or external URL in index.html');
    const script = await fetch(`${m.adminEndpoint}/assets/console.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type'), /^text\/javascript/);
    assert.equal((await fetch(`${m.adminEndpoint}/v1/status`)).status, 401);
  });

  test('a wrong token is refused', async () => {
    await page.goto(`${m.adminEndpoint}/`);
    await page.waitForSelector('#sign-in:not([hidden])');
    const answered = page.waitForResponse((r) => r.url().endsWith('/v1/status'));
    await page.fill('#token', 'not-the-admin-token-0000000000000000');
    await page.click('#sign-in-form button[type=submit]');
    assert.equal((await answered).status(), 401);
    await page.waitForSelector('#sign-in-error:not([hidden])');
    assert.match(await page.textContent('#sign-in-error'), /refused/);
    assert.equal(await page.isHidden('#app'), true);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('meterd.adminToken')), null);
    await shoot('sign-in-refused.png');
  });

  test('signed in, the charts render the seeded usage per product and dimension (per day)', async () => {
    await page.fill('#token', token);
    await page.click('#sign-in-form button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.loaded === 'true');
    await settled();
    assert.equal(await page.isHidden('#sign-in'), true);
    const shown = await usageTotals();
    assert.deepEqual(Object.keys(shown).sort(), Object.keys(EXPECTED).sort());
    for (const [product, want] of Object.entries(EXPECTED)) {
      assert.deepEqual(shown[product].dims, want.dims, product);
      assert.equal(shown[product].periods, 7, `${product}: 7 days on the axis`);
      assert.equal(shown[product].withUsage, want.days, `${product}: days with usage`);
    }
    assert.equal(await page.textContent('#usage-total-quantity'), TOTAL_QUANTITY);
    assert.equal(await page.textContent('#usage-total-amount'), TOTAL_AMOUNT);
    // Every chart drew bars: its canvas has a size and coloured pixels.
    const painted = await page.$$eval('#usage-charts canvas', (canvases) => canvases.map((c) => {
      const { data } = c.getContext('2d').getImageData(0, 0, c.width, c.height);
      let coloured = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && (data[i] !== data[i + 1] || data[i + 1] !== data[i + 2])) coloured++;
      return { width: c.width, height: c.height, coloured };
    }));
    assert.equal(painted.length, 3);
    for (const p of painted) {
      assert.ok(p.width > 100 && p.height > 100, JSON.stringify(p));
      assert.ok(p.coloured > 100, `a chart drew no bars: ${JSON.stringify(p)}`);
    }
    await shoot('console-day.png');
  });

  test('the hour toggle shows the same totals over hourly periods', async () => {
    await page.click('#granularity-hour');
    await settled();
    assert.equal(await page.getAttribute('#usage-charts', 'data-granularity'), 'hour');
    const shown = await usageTotals();
    for (const [product, want] of Object.entries(EXPECTED)) {
      assert.deepEqual(shown[product].dims, want.dims, product);
      assert.equal(shown[product].periods, 7 * 24, `${product}: 168 hours on the axis`);
      assert.equal(shown[product].withUsage, want.hours, `${product}: hours with usage`);
    }
    assert.equal(await page.textContent('#usage-total-quantity'), TOTAL_QUANTITY);
    await shoot('console-hour.png');
    await page.click('#granularity-day');
    await settled();
  });

  test('the product and dimension filters narrow the charts and totals', async () => {
    await page.selectOption('#usage-product', 'acmesaas01');
    await settled();
    let shown = await usageTotals();
    assert.deepEqual(Object.keys(shown), ['acmesaas01']);
    assert.deepEqual(shown.acmesaas01.dims, EXPECTED.acmesaas01.dims);
    assert.equal(await page.textContent('#usage-total-quantity'), '5397');
    // Only acmesaas01's dimensions are offered now.
    assert.deepEqual(await page.$$eval('#usage-dimension option', (o) => o.map((x) => x.value)),
      ['', 'api_calls', 'storage_gb']);

    await page.selectOption('#usage-dimension', 'api_calls');
    await settled();
    shown = await usageTotals();
    assert.deepEqual(shown.acmesaas01.dims, { api_calls: EXPECTED.acmesaas01.dims.api_calls });
    assert.equal(await page.textContent('#usage-total-quantity'), '397');
    assert.deepEqual(await page.$$eval('#customers-table tbody tr', (rows) => rows.map((r) => r.dataset.account)), [GLOBEX]);

    // A range that ends before the second day: only the first day's usage.
    await page.fill('#usage-to', '2026-11-20T00:00');
    await page.dispatchEvent('#usage-to', 'change');
    await settled();
    assert.equal(await page.textContent('#usage-total-quantity'), '350');

    await page.fill('#usage-to', '2026-11-21T00:00');
    await page.dispatchEvent('#usage-to', 'change');
    // The dimension filter stays while it is still offered: clear it, then the product.
    await page.selectOption('#usage-dimension', '');
    await page.selectOption('#usage-product', '');
    await settled();
    assert.equal(await page.textContent('#usage-total-quantity'), TOTAL_QUANTITY);
  });

  test('top customers by quantity and by amount', async () => {
    const rows = () => page.$$eval('#customers-table tbody tr', (trs) => trs.map((r) => [
      r.dataset.account, r.querySelector('[data-quantity]').textContent, r.querySelector('[data-amount]').textContent]));
    assert.deepEqual(await rows(), [[GLOBEX, ...CUSTOMERS[GLOBEX]], [INITECH, ...CUSTOMERS[INITECH]]]);
    await page.selectOption('#customers-sort', 'amount');
    await settled();
    assert.deepEqual(await rows(), [[INITECH, ...CUSTOMERS[INITECH]], [GLOBEX, ...CUSTOMERS[GLOBEX]]]);
    await page.selectOption('#customers-sort', 'quantity');
    await settled();
  });

  test('subscriptions and their state', async () => {
    const fromApi = await api('/v1/subscriptions');
    const shown = await page.$$eval('#subscriptions-table tbody tr', (trs) => trs.map((r) => [r.dataset.subscription, r.dataset.status]));
    assert.deepEqual(shown, fromApi.map((s) => [s.id, s.status]));
    const states = new Set(shown.map(([, status]) => status));
    for (const s of ['active', 'unsubscribed', 'unsubscribe-pending']) assert.ok(states.has(s), `no ${s} subscription shown`);
  });

  test('recent API calls: errors highlighted, filters by error, event name and account', async () => {
    const rows = () => page.$$eval('#calls-table tbody tr', (trs) => trs.map((r) => ({
      name: r.dataset.eventName, error: r.dataset.errorCode ?? null, highlighted: r.classList.contains('error-row'),
      account: r.children[3]?.textContent, background: getComputedStyle(r.children[0]).backgroundColor })));
    let all = await rows();
    const metering = all.filter((r) => r.name === 'MeterUsage' || r.name === 'BatchMeterUsage');
    assert.equal(metering.length, 2 + AMI_CALLS.length + failedCalls.length, JSON.stringify(all));
    const errors = all.filter((r) => r.error);
    assert.deepEqual(errors.map((r) => r.error).sort(), [...failedCalls].sort());
    for (const r of all) {
      assert.equal(r.highlighted, r.error !== null, JSON.stringify(r));
      if (r.error) assert.notEqual(r.background, 'rgba(0, 0, 0, 0)', 'an error row has no highlight');
    }

    await page.selectOption('#calls-error', 'any');
    await page.click('#calls-filters button[type=submit]');
    await settled();
    all = await rows();
    assert.deepEqual(all.map((r) => r.error).sort(), [...failedCalls].sort());
    await page.locator('#calls').screenshot({ path: path.join(SCREENSHOTS, 'calls-errors.png') });

    await page.selectOption('#calls-error', '');
    await page.selectOption('#calls-event', 'MeterUsage');
    await page.click('#calls-filters button[type=submit]');
    await settled();
    all = await rows();
    assert.equal(all.length, AMI_CALLS.length + 1);
    assert.ok(all.every((r) => r.name === 'MeterUsage'), JSON.stringify(all));

    await page.selectOption('#calls-event', '');
    await page.fill('#calls-account', GLOBEX);
    await page.click('#calls-filters button[type=submit]');
    await settled();
    all = await rows();
    assert.ok(all.length > 0 && all.every((r) => r.account === GLOBEX), JSON.stringify(all));
    await page.fill('#calls-account', '');
    await page.click('#calls-filters button[type=submit]');
    await settled();
  });

  test('signing keys download as PEM and JWKS', async () => {
    const keys = await api('/v1/products/acmectr001/keys');
    const card = page.locator('.key-card[data-product="acmectr001"]');
    assert.equal(await card.locator('tbody tr').count(), keys.length);
    const [pem] = await Promise.all([
      page.waitForEvent('download'),
      card.locator('tr[data-version="1"] [data-download=pem]').click(),
    ]);
    assert.equal(pem.suggestedFilename(), 'acmectr001-v1.pem');
    assert.equal(readFileSync(await pem.path(), 'utf8'), keys.find((k) => k.version === 1).publicKeyPem);
    const [jwks] = await Promise.all([
      page.waitForEvent('download'),
      card.locator('[data-download=jwks]').click(),
    ]);
    assert.equal(jwks.suggestedFilename(), 'acmectr001.jwks.json');
    assert.deepEqual(JSON.parse(readFileSync(await jwks.path(), 'utf8')), await api('/v1/products/acmectr001/jwks'));
  });

  test('a token the server no longer accepts signs the page out', async () => {
    await page.evaluate(() => sessionStorage.setItem('meterd.adminToken', 'rotated-token-00000000000000000000'));
    await page.reload();
    await page.waitForSelector('#sign-in-error:not([hidden])');
    assert.match(await page.textContent('#sign-in-error'), /refused/);
    assert.equal(await page.isHidden('#app'), true);
  });

  test('no page error, no CSP violation, no request beyond the admin listener', () => {
    // The refused sign-ins log "401 (Unauthorized)" resource errors; nothing else may appear.
    const unexpected = pageProblems.filter((p) => !/401 \(Unauthorized\)/.test(p));
    assert.deepEqual(unexpected, []);
    assert.deepEqual(foreignRequests, []);
  });
});
