// Exact decimal arithmetic on the API's decimal strings ("12.5", "0.0001"): quantities and
// amounts are money, so totals are summed as scaled BigInts, never as floats.

export interface Decimal {
  units: bigint; // the value times 10^scale
  scale: number;
}

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

export function parseDecimal(text: string): Decimal {
  const m = DECIMAL.exec(text.trim());
  if (!m) throw new Error(`not a decimal: ${JSON.stringify(text)}`);
  const fraction = m[3] ?? '';
  const units = BigInt(m[2] + fraction);
  return { units: m[1] ? -units : units, scale: fraction.length };
}

function rescale(d: Decimal, scale: number): bigint {
  return d.units * 10n ** BigInt(scale - d.scale);
}

export function addDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

export function compareDecimal(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const x = rescale(a, scale);
  const y = rescale(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

export const ZERO: Decimal = { units: 0n, scale: 0 };

// The sum of decimal strings; missing values count as nothing.
export function sumDecimals(values: Array<string | undefined>): Decimal {
  let total = ZERO;
  for (const v of values) if (v !== undefined && v !== '') total = addDecimal(total, parseDecimal(v));
  return total;
}

// Plain notation without trailing zeros in the fraction ("12.50" -> "12.5", "3.000" -> "3").
export function formatDecimal(d: Decimal): string {
  const negative = d.units < 0n;
  let digits = (negative ? -d.units : d.units).toString().padStart(d.scale + 1, '0');
  let text = d.scale === 0 ? digits : `${digits.slice(0, -d.scale)}.${digits.slice(-d.scale)}`;
  if (d.scale > 0) text = text.replace(/0+$/, '').replace(/\.$/, '');
  digits = text;
  return (negative && digits !== '0' ? '-' : '') + digits;
}

// A float for plotting only (chart heights), never for totals.
export function toNumber(text: string | undefined): number {
  return text === undefined || text === '' ? 0 : Number(text);
}
