// The admin API as the console uses it: every call carries the bearer token typed at sign-in.

export class UnauthorizedError extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | undefined>;

export function query(params: Params): string {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) q.set(name, value);
  const text = q.toString();
  return text ? `?${text}` : '';
}

export class Api {
  constructor(private readonly token: string) {}

  async get<T>(path: string, params: Params = {}): Promise<T> {
    const response = await fetch(path + query(params), {
      headers: { Authorization: `Bearer ${this.token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
    });
    if (response.status === 401) throw new UnauthorizedError('the server refused the token');
    const text = await response.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: reported below by status */
    }
    if (!response.ok) {
      const e = (body ?? {}) as { code?: string; message?: string };
      throw new ApiError(response.status, e.code ?? `HTTP ${response.status}`, e.message ?? text);
    }
    return body as T;
  }

  // Every page of a cursor-paginated list (`nextCursor`), concatenated; at most `maxPages`.
  async getAll<T>(path: string, params: Params, listKey: string, maxPages = 50): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | undefined = undefined;
    for (let page = 0; page < maxPages; page++) {
      const body = await this.get<Record<string, unknown>>(path, { ...params, cursor });
      items.push(...((body[listKey] as T[] | undefined) ?? []));
      cursor = body.nextCursor as string | undefined;
      if (!cursor) break;
    }
    return items;
  }
}
