// The meterd console: sign-in with the admin token, then the panels, all fed by the admin API.
import { Api, ApiError, UnauthorizedError } from './api';
import { byId, showError } from './dom';
import { CallFilters, renderCalls, renderKeys, renderSubscriptions } from './panels';
import { Granularity, UsageQuery, isoUtc, renderCustomers, renderUsage } from './usage';

const TOKEN_KEY = 'meterd.adminToken';
const DAY = 86_400_000;

interface ServerStatus {
  service: string;
  version: string;
  catalogVersion: number;
  clock: { mode: string; now: string };
  store: string;
}

interface Product {
  code: string;
  kind?: string;
  dimensions?: Array<{ name: string; unit?: string }>;
  signingKeys?: Array<{ version: number }>;
}

interface Account {
  id: string;
  name?: string;
}

let api: Api | null = null;
let products: Product[] = [];
const accountNames = new Map<string, string>();
const units = new Map<string, string>();
const usage: UsageQuery = { granularity: 'day', from: 0, to: 0, product: '', dimension: '' };

function signOut(message: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  api = null;
  byId('app').hidden = true;
  byId('sign-out').hidden = true;
  byId('server-facts').textContent = '';
  byId('sign-in').hidden = false;
  showError('sign-in-error', message);
  byId<HTMLInputElement>('token').focus();
}

// Runs a panel's load; a refused token signs out, other errors show in the panel's alert.
// body[data-pending] counts the loads in flight (0 when the page shows what it has asked for).
let pending = 0;
function setPending(delta: number): void {
  pending += delta;
  document.body.dataset.pending = String(pending);
}

async function guarded(errorId: string, work: () => Promise<void>): Promise<void> {
  setPending(+1);
  try {
    await work();
  } catch (e) {
    if (e instanceof UnauthorizedError) {
      signOut('The server refused the token (401 Unauthorized). Sign in again.');
    } else if (e instanceof ApiError) {
      showError(errorId, `${e.code}: ${e.message}`);
    } else {
      showError(errorId, String(e));
    }
  } finally {
    setPending(-1);
  }
}

// "YYYY-MM-DDTHH:MM" of a datetime-local input, read as UTC.
function inputToMs(value: string): number {
  return Date.parse(`${value}:00Z`);
}
function msToInput(ms: number): string {
  return isoUtc(ms).slice(0, 16);
}

function loadUsage(): Promise<void> {
  const a = api!;
  return Promise.all([
    guarded('usage-error', () => renderUsage(a, usage, units)),
    loadCustomers(),
  ]).then(() => undefined);
}

function loadCustomers(): Promise<void> {
  const a = api!;
  const sortBy = byId<HTMLSelectElement>('customers-sort').value as 'quantity' | 'amount';
  return guarded('customers-error', () => renderCustomers(a, usage, sortBy, accountNames));
}

function callFilters(): CallFilters {
  const code = byId<HTMLInputElement>('calls-error-code').value.trim();
  return {
    eventName: byId<HTMLSelectElement>('calls-event').value,
    errorCode: code || byId<HTMLSelectElement>('calls-error').value,
    account: byId<HTMLInputElement>('calls-account').value.trim(),
  };
}

function fillDimensions(): void {
  const select = byId<HTMLSelectElement>('usage-dimension');
  const product = products.find((p) => p.code === usage.product);
  const names = product
    ? (product.dimensions ?? []).map((d) => d.name)
    : [...new Set(products.flatMap((p) => (p.dimensions ?? []).map((d) => d.name)))].sort();
  select.replaceChildren(new Option('all', ''), ...names.map((n) => new Option(n, n)));
  usage.dimension = names.includes(usage.dimension) ? usage.dimension : '';
  select.value = usage.dimension;
}

async function start(token: string): Promise<void> {
  const candidate = new Api(token);
  let status: ServerStatus;
  try {
    status = await candidate.get<ServerStatus>('/v1/status');
  } catch (e) {
    signOut(
      e instanceof UnauthorizedError
        ? 'The server refused this token (401 Unauthorized).'
        : `Cannot reach the admin API: ${String(e)}`,
    );
    return;
  }
  api = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  byId('sign-in').hidden = true;
  showError('sign-in-error', '');
  byId('app').hidden = false;
  byId('sign-out').hidden = false;
  byId('server-facts').textContent =
    `${status.service} ${status.version} · catalog v${status.catalogVersion} · ` +
    `${status.store} store · ${status.clock.mode} clock ${status.clock.now}`;

  // The default range: the last 7 days of the server's clock (which may be a test clock).
  const now = Date.parse(status.clock.now);
  usage.to = Math.floor(now / DAY) * DAY + DAY;
  usage.from = usage.to - 7 * DAY;
  byId<HTMLInputElement>('usage-from').value = msToInput(usage.from);
  byId<HTMLInputElement>('usage-to').value = msToInput(usage.to);

  await guarded('usage-error', async () => {
    const [productList, accounts] = await Promise.all([
      candidate.get<Product[]>('/v1/products'),
      candidate.get<Account[]>('/v1/accounts'),
    ]);
    products = productList;
    for (const a of accounts) accountNames.set(a.id, a.name ?? '');
    for (const p of products) for (const d of p.dimensions ?? []) units.set(`${p.code}/${d.name}`, d.unit ?? '');
    const select = byId<HTMLSelectElement>('usage-product');
    select.replaceChildren(new Option('all', ''), ...products.map((p) => new Option(p.code, p.code)));
    fillDimensions();
  });
  if (!api) return;
  await Promise.all([
    loadUsage(),
    guarded('subscriptions-error', () => renderSubscriptions(candidate, accountNames)),
    guarded('calls-error-text', () => renderCalls(candidate, callFilters())),
    guarded('keys-error', () => renderKeys(candidate, products)),
  ]);
  document.body.dataset.loaded = 'true';
}

function wire(): void {
  byId('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = byId<HTMLInputElement>('token');
    const token = input.value.trim();
    input.value = '';
    if (token) void start(token);
  });
  byId('sign-out').addEventListener('click', () => signOut(''));

  for (const g of ['hour', 'day'] as Granularity[]) {
    byId(`granularity-${g}`).addEventListener('click', () => {
      usage.granularity = g;
      for (const other of ['hour', 'day']) {
        byId(`granularity-${other}`).classList.toggle('active', other === g);
      }
      void loadUsage();
    });
  }
  for (const id of ['usage-from', 'usage-to']) {
    byId(id).addEventListener('change', () => {
      const from = inputToMs(byId<HTMLInputElement>('usage-from').value);
      const to = inputToMs(byId<HTMLInputElement>('usage-to').value);
      if (Number.isNaN(from) || Number.isNaN(to) || from >= to) {
        showError('usage-error', 'Choose a start before the end.');
        return;
      }
      usage.from = from;
      usage.to = to;
      void loadUsage();
    });
  }
  byId('usage-product').addEventListener('change', () => {
    usage.product = byId<HTMLSelectElement>('usage-product').value;
    fillDimensions();
    void loadUsage();
  });
  byId('usage-dimension').addEventListener('change', () => {
    usage.dimension = byId<HTMLSelectElement>('usage-dimension').value;
    void loadUsage();
  });
  byId('customers-sort').addEventListener('change', () => void loadCustomers());
  byId('calls-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    if (api) void guarded('calls-error-text', () => renderCalls(api!, callFilters()));
  });
  byId('calls-more').addEventListener('click', () => {
    if (api) void guarded('calls-error-text', () => renderCalls(api!, null));
  });

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) void start(saved);
  else signOut('');
}

wire();
