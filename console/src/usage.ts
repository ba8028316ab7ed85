// The usage panels: charts per product and dimension over time (GET /v1/reports/usage grouped by
// product and dimension, per hour or day) and the top customers (the same report grouped by
// customer). Totals are exact decimal sums of the report's rows.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  Title,
  Tooltip,
} from 'chart.js';

import { Api } from './api';
import { Decimal, ZERO, addDecimal, compareDecimal, formatDecimal, parseDecimal, toNumber } from './decimal';
import { byId, el, showError } from './dom';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Title, Tooltip);

export type Granularity = 'hour' | 'day';

export interface ReportRow {
  period: string;
  product?: string;
  customerAccount?: string;
  dimension?: string;
  unit?: string; // "second" for task-metering rows, which never add to quantities in units
  quantity: string;
  amount?: string;
  records: number;
}

interface Report {
  rows: ReportRow[];
  totals: { quantity: string; seconds?: string; amount?: string };
  nextCursor?: string;
}

export interface UsageQuery {
  granularity: Granularity;
  from: number; // ms, inclusive
  to: number; // ms, exclusive
  product: string; // '' for all
  dimension: string; // '' for all
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MAX_PERIODS = 2000;
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function isoUtc(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function periodLabel(ms: number, granularity: Granularity): string {
  const iso = isoUtc(ms);
  return granularity === 'day' ? iso.slice(0, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

// The periods of [from, to) at `granularity`, aligned to UTC hours or days.
function periods(q: UsageQuery): number[] {
  const step = q.granularity === 'day' ? DAY : HOUR;
  const list: number[] = [];
  for (let t = Math.floor(q.from / step) * step; t < q.to && list.length <= MAX_PERIODS; t += step) {
    list.push(t);
  }
  return list;
}

// The report's rows, every page of it.
async function fetchReport(api: Api, q: UsageQuery, groupBy: string): Promise<Report> {
  const params = {
    granularity: q.granularity,
    from: isoUtc(q.from),
    to: isoUtc(q.to),
    groupBy,
    product: q.product || undefined,
    dimension: q.dimension || undefined,
  };
  const first = await api.get<Report>('/v1/reports/usage', params);
  const rows = [...first.rows];
  let cursor = first.nextCursor;
  for (let page = 0; cursor && page < 100; page++) {
    const next = await api.get<Report>('/v1/reports/usage', { ...params, cursor });
    rows.push(...next.rows);
    cursor = next.nextCursor;
  }
  return { rows, totals: first.totals };
}

interface DimensionTotal {
  quantity: Decimal;
  amount: Decimal | null;
  records: number;
}

const charts: Chart[] = [];

export async function renderUsage(api: Api, q: UsageQuery, units: Map<string, string>): Promise<void> {
  const container = byId('usage-charts');
  const summary = byId('usage-summary');
  showError('usage-error', '');
  const axis = periods(q);
  if (axis.length > MAX_PERIODS) {
    showError('usage-error', `The range holds more than ${MAX_PERIODS} ${q.granularity}s: choose days or a shorter range.`);
    return;
  }
  const report = await fetchReport(api, q, 'product,dimension');
  for (const chart of charts.splice(0)) chart.destroy();
  container.replaceChildren();
  container.dataset.granularity = q.granularity;

  const byProduct = new Map<string, ReportRow[]>();
  for (const row of report.rows) {
    const product = row.product ?? '';
    if (!byProduct.has(product)) byProduct.set(product, []);
    byProduct.get(product)!.push(row);
  }
  // The amount of the priced rows (the report's totals.amount only exists when every row is priced).
  const amount = report.rows.reduce<Decimal | null>(
    (sum, r) => (r.amount === undefined ? sum : addDecimal(sum ?? ZERO, parseDecimal(r.amount))),
    null,
  );
  const unpriced = report.rows.some((r) => r.amount === undefined);
  summary.replaceChildren(
    'Total quantity ',
    el('strong', { id: 'usage-total-quantity' }, formatDecimal(parseDecimal(report.totals.quantity))),
    ...(report.totals.seconds !== undefined
      ? [', task seconds ', el('strong', { id: 'usage-total-seconds' }, report.totals.seconds)]
      : []),
    ...(amount !== null
      ? [`, amount${unpriced ? ' of the priced dimensions' : ''} `, el('strong', { id: 'usage-total-amount' }, formatDecimal(amount))]
      : []),
    ` in ${report.rows.reduce((n, r) => n + r.records, 0)} records, ${byProduct.size} product(s).`,
  );
  if (byProduct.size === 0) {
    container.append(el('p', { class: 'empty', id: 'usage-empty' }, 'No usage in this period.'));
    return;
  }

  const index = new Map(axis.map((t, i) => [t, i]));
  for (const [product, rows] of [...byProduct.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const dimensions = new Map<string, { data: number[]; total: DimensionTotal }>();
    const periodsWithUsage = new Set<number>();
    for (const row of rows) {
      // Task-metering seconds are their own series, never added to the dimension's units.
      const dimension = row.unit ? `${row.dimension ?? ''} (${row.unit}s)` : (row.dimension ?? '');
      if (!dimensions.has(dimension)) {
        dimensions.set(dimension, {
          data: axis.map(() => 0),
          total: { quantity: ZERO, amount: null, records: 0 },
        });
      }
      const d = dimensions.get(dimension)!;
      const at = index.get(Date.parse(row.period));
      if (at !== undefined) d.data[at] += toNumber(row.quantity);
      periodsWithUsage.add(Date.parse(row.period));
      d.total.quantity = addDecimal(d.total.quantity, parseDecimal(row.quantity));
      if (row.amount !== undefined) {
        d.total.amount = addDecimal(d.total.amount ?? ZERO, parseDecimal(row.amount));
      }
      d.total.records += row.records;
    }
    const names = [...dimensions.keys()].sort();
    const canvas = el('canvas', { 'aria-label': `Usage of ${product} per ${q.granularity}`, role: 'img' });
    const tbody = el('tbody');
    for (const name of names) {
      const t = dimensions.get(name)!.total;
      tbody.append(
        el(
          'tr',
          { 'data-dimension': name },
          el('td', {}, name),
          el('td', { class: 'muted' }, units.get(`${product}/${name}`) ?? 'seconds'),
          el('td', { class: 'num', 'data-total-quantity': '' }, formatDecimal(t.quantity)),
          el('td', { class: 'num', 'data-total-amount': '' }, t.amount ? formatDecimal(t.amount) : '—'),
          el('td', { class: 'num', 'data-total-records': '' }, String(t.records)),
        ),
      );
    }
    const card = el(
      'div',
      {
        class: 'chart-card',
        'data-product': product,
        'data-periods': String(axis.length),
        'data-periods-with-usage': String(periodsWithUsage.size),
      },
      el('h3', {}, product),
      el('div', { class: 'chart-box' }, canvas),
      el(
        'table',
        { class: 'data totals' },
        el(
          'thead',
          {},
          el('tr', {}, ...['Dimension', 'Unit', 'Quantity', 'Amount', 'Records'].map((h, i) =>
            el('th', i >= 2 ? { class: 'num' } : {}, h))),
        ),
        tbody,
      ),
    );
    container.append(card);
    charts.push(
      new Chart(canvas, {
        type: 'bar',
        data: {
          labels: axis.map((t) => periodLabel(t, q.granularity)),
          datasets: names.map((name, i) => ({
            label: name,
            data: dimensions.get(name)!.data,
            backgroundColor: COLORS[i % COLORS.length],
          })),
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          scales: { x: { ticks: { autoSkip: true, maxRotation: 0 } }, y: { beginAtZero: true } },
          plugins: { legend: { position: 'bottom' } },
        },
      }),
    );
  }
}

interface CustomerTotal {
  account: string;
  quantity: Decimal;
  amount: Decimal;
  records: number;
}

export async function renderCustomers(
  api: Api,
  q: UsageQuery,
  sortBy: 'quantity' | 'amount',
  accountNames: Map<string, string>,
): Promise<void> {
  showError('customers-error', '');
  // Grouped by dimension too, so that every row is in one unit and priced or not as a whole.
  const report = await fetchReport(api, q, 'customer,product,dimension');
  const totals = new Map<string, CustomerTotal>();
  for (const row of report.rows) {
    const account = row.customerAccount ?? '';
    const t = totals.get(account) ?? { account, quantity: ZERO, amount: ZERO, records: 0 };
    if (!row.unit) t.quantity = addDecimal(t.quantity, parseDecimal(row.quantity));
    if (row.amount !== undefined) t.amount = addDecimal(t.amount, parseDecimal(row.amount));
    t.records += row.records;
    totals.set(account, t);
  }
  const ranked = [...totals.values()].sort(
    (a, b) => compareDecimal(b[sortBy], a[sortBy]) || a.account.localeCompare(b.account),
  );
  const tbody = byId('customers-table').querySelector('tbody')!;
  tbody.replaceChildren(
    ...ranked.map((t, i) =>
      el(
        'tr',
        { 'data-account': t.account },
        el('td', {}, String(i + 1)),
        el('td', { class: 'mono' }, t.account),
        el('td', {}, accountNames.get(t.account) ?? ''),
        el('td', { class: 'num', 'data-quantity': '' }, formatDecimal(t.quantity)),
        el('td', { class: 'num', 'data-amount': '' }, formatDecimal(t.amount)),
        el('td', { class: 'num' }, String(t.records)),
      ),
    ),
  );
  if (ranked.length === 0) {
    tbody.append(el('tr', {}, el('td', { colspan: '6', class: 'empty' }, 'No usage in this period.')));
  }
}
