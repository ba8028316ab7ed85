// The list panels: subscriptions and their state, recent API calls (the audit trail), and the
// products' signing keys with downloads.
import { Api } from './api';
import { byId, download, el, showError } from './dom';

interface Subscription {
  id: string;
  account: string;
  product: string;
  status: string;
  licenseArn?: string;
  start?: string;
  end?: string;
}

export async function renderSubscriptions(api: Api, accountNames: Map<string, string>): Promise<void> {
  showError('subscriptions-error', '');
  const list = await api.get<Subscription[]>('/v1/subscriptions');
  const tbody = byId('subscriptions-table').querySelector('tbody')!;
  tbody.replaceChildren(
    ...list.map((s) =>
      el(
        'tr',
        { 'data-subscription': s.id, 'data-status': s.status },
        el('td', {}, el('span', { class: 'mono' }, s.account), ' ', el('span', { class: 'muted' }, accountNames.get(s.account) ?? '')),
        el('td', { class: 'mono' }, s.product),
        el('td', {}, el('span', { class: `badge status-${s.status}` }, s.status)),
        el('td', { class: 'mono small' }, s.licenseArn ?? '—'),
        el('td', { class: 'nowrap' }, s.start ?? ''),
        el('td', { class: 'nowrap' }, s.end ?? ''),
      ),
    ),
  );
}

interface AuditEvent {
  eventTime: string;
  eventSource: string;
  eventName: string;
  userIdentity?: { type?: string; accountId?: string; accessKeyId?: string };
  errorCode?: string;
  errorMessage?: string;
  requestID?: string;
  eventID: string;
}

interface AuditPage {
  events: AuditEvent[];
  nextCursor?: string;
}

export interface CallFilters {
  eventName: string;
  errorCode: string; // '' all, 'any' failed only, or one code
  account: string;
}

const PAGE = 50;
let callsCursor: string | undefined;
let callsFilters: CallFilters | undefined;

function callRow(e: AuditEvent): HTMLTableRowElement {
  const failed = e.errorCode !== undefined && e.errorCode !== '';
  return el(
    'tr',
    {
      class: failed ? 'error-row' : undefined,
      'data-event-id': e.eventID,
      'data-event-name': e.eventName,
      'data-error-code': failed ? e.errorCode : undefined,
    },
    el('td', { class: 'nowrap' }, e.eventTime),
    el('td', {}, e.eventName),
    el(
      'td',
      { class: 'muted small', title: e.eventSource },
      e.eventSource === 'metering-marketplace.amazonaws.com' ? 'metering API' : e.eventSource,
    ),
    el('td', { class: 'mono' }, e.userIdentity?.accountId ?? ''),
    el('td', { class: 'mono small' }, e.userIdentity?.accessKeyId ?? ''),
    el(
      'td',
      {},
      failed
        ? el('span', { class: 'error-text', title: e.errorMessage ?? '' }, `${e.errorCode}${e.errorMessage ? `: ${e.errorMessage}` : ''}`)
        : el('span', { class: 'ok-text' }, 'OK'),
    ),
    el('td', { class: 'mono small' }, e.requestID ?? ''),
  );
}

// The first page of events for `filters` (replacing the table), or the next page (appended).
export async function renderCalls(api: Api, filters: CallFilters | null): Promise<void> {
  showError('calls-error-text', '');
  const tbody = byId('calls-table').querySelector('tbody')!;
  if (filters) {
    callsFilters = filters;
    callsCursor = undefined;
  }
  const f = callsFilters!;
  const page = await api.get<AuditPage>('/v1/audit/events', {
    eventName: f.eventName || undefined,
    errorCode: f.errorCode || undefined,
    account: f.account || undefined,
    limit: String(PAGE),
    cursor: filters ? undefined : callsCursor,
  });
  const rows = page.events.map(callRow);
  if (filters) tbody.replaceChildren(...rows);
  else tbody.append(...rows);
  if (tbody.childElementCount === 0) {
    tbody.append(el('tr', {}, el('td', { colspan: '7', class: 'empty' }, 'No calls match.')));
  }
  callsCursor = page.nextCursor;
  byId('calls-more').hidden = !callsCursor;
}

interface Product {
  code: string;
  kind?: string;
  signingKeys?: Array<{ version: number }>;
}

interface KeyVersion {
  version: number;
  expired?: boolean;
  expiredAt?: string;
  publicKeyPem: string;
}

export async function renderKeys(api: Api, products: Product[]): Promise<void> {
  showError('keys-error', '');
  const list = byId('keys-list');
  const signing = products.filter((p) => (p.signingKeys?.length ?? 0) > 0);
  const cards = await Promise.all(
    signing.map(async (p) => {
      const keys = await api.get<KeyVersion[]>(`/v1/products/${encodeURIComponent(p.code)}/keys`);
      const jwks = el('button', { type: 'button', 'data-download': 'jwks' }, 'Download JWKS');
      jwks.addEventListener('click', () => {
        api
          .get<unknown>(`/v1/products/${encodeURIComponent(p.code)}/jwks`)
          .then((body) => download(`${p.code}.jwks.json`, 'application/json', `${JSON.stringify(body, null, 2)}\n`))
          .catch((e: unknown) => showError('keys-error', String(e)));
      });
      const rows = keys.map((k) => {
        const pem = el('button', { type: 'button', 'data-download': 'pem' }, 'PEM');
        pem.addEventListener('click', () =>
          download(`${p.code}-v${k.version}.pem`, 'application/x-pem-file', k.publicKeyPem),
        );
        return el(
          'tr',
          { 'data-version': String(k.version) },
          el('td', {}, `v${k.version}`),
          el('td', {}, k.expired ? el('span', { class: 'badge status-expired' }, `expired ${k.expiredAt ?? ''}`) : el('span', { class: 'badge status-active' }, 'current')),
          el('td', {}, pem),
        );
      });
      return el(
        'div',
        { class: 'key-card', 'data-product': p.code },
        el('h3', {}, p.code, ' ', jwks),
        el('table', { class: 'data' }, el('thead', {}, el('tr', {}, el('th', {}, 'Version'), el('th', {}, 'State'), el('th', {}, 'Public key'))), el('tbody', {}, ...rows)),
      );
    }),
  );
  list.replaceChildren(...cards);
  if (cards.length === 0) list.append(el('p', { class: 'empty' }, 'No product has signing keys.'));
}
