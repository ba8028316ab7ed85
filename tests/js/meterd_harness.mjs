// Start and stop a real meterd binary for the JavaScript end-to-end tests.
//
// Mirrors tests/lib/meterd_harness.py: every server binds to 127.0.0.1 on a port the kernel
// picks (`--listen 127.0.0.1:0`); meterd prints `meterd: listening on 127.0.0.1:PORT` on stdout
// once it accepts connections. Servers are stopped by PID (SIGTERM, then SIGKILL after 10 s).
// Only loopback traffic is ever sent.
//
// The store backend, as in the Python harness: $METERD_STORE_BACKEND `embedded` (default, nothing
// added to meterd's command line), `sqlite` (`--store sqlite`) or `postgresql`: every server then
// gets `--store URL`, a database
// created on the PostgreSQL server of $METERD_PG_URL (run the tests under
// `python3 tests/lib/pg_server.py exec -- node --test tests/js/`, which starts one and sets both).
// A data dir keeps its database across restarts; a new data dir gets a new, empty one.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { MarketplaceMeteringClient } from '@aws-sdk/client-marketplace-metering';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const METERD = process.env.METERD_BIN || path.join(REPO, 'build', 'bin', 'meterd');
export const TEST_CATALOG = path.join(REPO, 'tests', 'fixtures', 'catalog.test.json');
export const EXAMPLE_CATALOG = path.join(REPO, 'tests', 'fixtures', 'catalog.example.json');

// Credentials of tests/fixtures/catalog.test.json (same as tests/lib/meterd_harness.py).
const cred = (accessKeyId, secretAccessKey, sessionToken) =>
  Object.freeze(sessionToken === undefined
    ? { accessKeyId, secretAccessKey }
    : { accessKeyId, secretAccessKey, sessionToken });
export const SELLER = cred('AKIAACMESELLER000001', 'acmeSellerSecretKey0000000000000000000001');
export const OTHER_SELLER = cred('AKIAOTHERSELLER00001', 'otherSellerSecretKey000000000000000000001');
export const EC2 = cred('AKIAGLOBEXEC2000001', 'globexEc2SecretKey00000000000000000000001');
export const ECS = cred('AKIAGLOBEXECS000001', 'globexEcsSecretKey00000000000000000000001');
export const EKS_WEST = cred('AKIAGLOBEXEKS000001', 'globexEksSecretKey00000000000000000000001');
export const AGENTCORE = cred('AKIAGLOBEXAGC000001', 'globexAgcSecretKey00000000000000000000001');
export const INITECH_EC2 = cred('AKIAINITECEC2000001', 'initechEc2SecretKey0000000000000000000001');
export const TEMP_EC2 = cred('ASIAGLOBEXTEMP000001', 'globexTempSecretKey0000000000000000000001',
  'FwoGZXIvYXdzEGlobexSessionToken0001');
export const DISABLED = cred('AKIADISABLEDKEY00001', 'disabledSecretKey00000000000000000000001');
export const FARGATE = cred('AKIAGLOBEXFGT000001', 'globexFargateSecretKey000000000000000001');
export const INITECH_ECS = cred('AKIAINITECECS000001', 'initechEcsSecretKey0000000000000000000001');

export const CA_LICENSE = 'arn:aws:license-manager::294406891311:license:l-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
export const EXPIRED_LICENSE = 'arn:aws:license-manager::294406891311:license:l-00000000000000000000000000expired';
export const INITECH_LICENSE = 'arn:aws:license-manager::294406891311:license:l-11111111111111111111111111initech';
export const OTHER_PRODUCT_LICENSE = 'arn:aws:license-manager::294406891311:license:l-22222222222222222222222222other01';

// Registration tokens of tests/fixtures/catalog.test.json (ResolveCustomer).
export const TOKEN_LEGACY = 'demo-registration-token-globex-acmesaas01';
export const TOKEN_CA = 'demo-registration-token-globex-acmesaasca1';
export const TOKEN_OTHER_SELLER = 'registration-token-other-seller-othersaas01';
export const TOKEN_ISSUED_2020 = 'registration-token-issued-2020-acmesaas01';

export const STORE_BACKEND = process.env.METERD_STORE_BACKEND || 'embedded';
if (!['embedded', 'sqlite', 'postgresql'].includes(STORE_BACKEND)) {
  throw new Error(`METERD_STORE_BACKEND=${STORE_BACKEND}: want embedded, sqlite or postgresql`);
}
const storeUrls = new Map(); // realpath(data dir) -> database URL
let databases = 0;

function psql(url, sql) {
  const exe = process.env.METERD_PSQL || 'psql';
  const r = spawnSync(exe, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql],
    { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`psql ${sql} on ${url} failed: ${r.error ?? ''}${r.stderr}`);
  }
}

/** PostgreSQL backend: the database URL of `dataDir` (created on first use); else null. */
export function storeUrl(dataDir) {
  if (STORE_BACKEND !== 'postgresql') return null;
  const key = realpathSync(dataDir);
  let url = storeUrls.get(key);
  if (url === undefined) {
    const admin = process.env.METERD_PG_URL;
    if (!admin) {
      throw new Error('METERD_STORE_BACKEND=postgresql needs METERD_PG_URL: run under ' +
        'python3 tests/lib/pg_server.py exec -- node --test tests/js/');
    }
    const name = `meterd_js_${process.pid}_${++databases}`;
    psql(admin, `CREATE DATABASE ${name}`);
    url = admin.split('?')[0].replace(/\/[^/]*$/, `/${name}`);
    storeUrls.set(key, url);
  }
  return url;
}

function forgetStore(dataDir) {
  const key = realpathSync(dataDir);
  const url = storeUrls.get(key);
  if (url === undefined) return;
  storeUrls.delete(key);
  const name = url.slice(url.lastIndexOf('/') + 1);
  psql(process.env.METERD_PG_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** One meterd process. `await new Meterd().start()`, then `await m.cleanup()`. */
export class Meterd {
  // throttle: false starts meterd with --throttle off: tests of everything but throttling (D14)
  // must not depend on how fast the machine sends. Throttling tests pass true.
  constructor({ catalog = TEST_CATALOG, dataDir = null, extraArgs = [], throttle = false } = {}) {
    this.catalog = catalog;
    this.ownDir = dataDir === null;
    this.dataDir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'meterd-test-'));
    this.extraArgs = [...extraArgs, ...(throttle ? [] : ['--throttle', 'off'])];
    this.proc = null;
    this.port = null;
    this.adminPort = null;
    this.clients = [];
  }

  get endpoint() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The admin listener (and web console), from `meterd: admin API listening on HOST:PORT`. */
  get adminEndpoint() {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  /** The admin API's bearer token (DATA/admin-token, created at first start). */
  adminToken() {
    return readFileSync(path.join(this.dataDir, 'admin-token'), 'utf8').trim();
  }

  start(timeoutMs = 20000) {
    if (!existsSync(METERD)) {
      return Promise.reject(new Error(`meterd binary not found at ${METERD} (build it or set METERD_BIN)`));
    }
    this.logPath = path.join(this.dataDir, 'meterd.stderr.log');
    const logFd = openSync(this.logPath, 'a');
    const ownStore = this.extraArgs.includes('--store');
    const store = ownStore || STORE_BACKEND === 'embedded' ? []
      : STORE_BACKEND === 'sqlite' ? ['--store', 'sqlite'] : ['--store', storeUrl(this.dataDir)];
    const args = ['serve', '--listen', '127.0.0.1:0', '--data', this.dataDir,
      '--catalog', this.catalog, '--admin-listen', '127.0.0.1:0', ...store, ...this.extraArgs];
    const proc = spawn(METERD, args, { stdio: ['ignore', 'pipe', logFd] });
    closeSync(logFd); // the child keeps its own copy
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));

    return new Promise((resolve, reject) => {
      let buf = '';
      let done = false;
      const fail = async (why) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        await this.stop();
        let log = '';
        try { log = readFileSync(this.logPath, 'utf8'); } catch { /* no log */ }
        reject(new Error(`meterd did not start (${why}); stderr:\n${log}`));
      };
      const onData = (chunk) => {
        if (done) return; // keep draining stdout so the server never blocks on a full pipe
        buf += chunk.toString('utf8');
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line.startsWith('meterd: admin API listening on ')) {
            this.adminPort = Number.parseInt(line.slice(line.lastIndexOf(':') + 1), 10);
          }
          if (line.startsWith('meterd: listening on ')) {
            this.port = Number.parseInt(line.slice(line.lastIndexOf(':') + 1), 10);
            done = true;
            clearTimeout(timer);
            resolve(this);
            return;
          }
        }
      };
      const timer = setTimeout(() => fail('timeout'), timeoutMs);
      proc.stdout.on('data', onData);
      proc.stdout.once('end', () => fail('stdout closed'));
      proc.once('error', (e) => fail(String(e)));
    });
  }

  /** Stop by PID: SIGTERM (or `signal`), SIGKILL if it has not exited after 10 s. */
  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      try { process.kill(proc.pid, signal); } catch { /* already gone */ }
      const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 10000).unref());
      if ((await Promise.race([this.exited, timeout])) === 'timeout') {
        try { process.kill(proc.pid, 'SIGKILL'); } catch { /* already gone */ }
        await this.exited;
      }
    }
    proc.stdout?.destroy();
  }

  kill() {
    return this.stop('SIGKILL');
  }

  async cleanup() {
    for (const c of this.clients.splice(0)) c.destroy();
    await this.stop();
    if (this.ownDir) {
      if (STORE_BACKEND === 'postgresql') forgetStore(this.dataDir);
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  /** A client for this server. maxAttempts defaults to 1 (no SDK retries). */
  client(credentials, { region = 'us-east-1', maxAttempts = 1 } = {}) {
    const c = new MarketplaceMeteringClient({
      endpoint: this.endpoint,
      region,
      credentials: { ...credentials },
      maxAttempts,
    });
    this.clients.push(c);
    return c;
  }
}
