// The JSON API, called with the reader's own bearer token: the pages are static, the API decides what each reader
// may see. The token is kept in sessionStorage (this tab only, gone when it closes); without one, the API answers
// loopback readers only (the demo).

const TOKEN_KEY = 'verdict.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (t) => (t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY)),
};

/** An API answer that is not 2xx: its status and the API's {error, message}. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers() {
  const t = token.get();
  return t ? { authorization: `Bearer ${t}` } : {};
}

async function call(path) {
  const res = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (res.ok) return res;
  let body = {};
  try {
    body = await res.json();
  } catch {
    // not the API's JSON (a proxy's page): keep the status
  }
  throw new ApiError(res.status, body.error ?? `HTTP ${res.status}`, body.message ?? res.statusText);
}

/** GET a JSON route: api('/api/v1/nodes', {limit: 50}). Parameters left undefined or '' are not sent. */
export async function api(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return (await call(qs ? `${path}?${qs}` : path)).json();
}

/** Download a file the API serves (it needs the token, so a plain link would not do): fetch, then save as a Blob. */
export async function download(path, fallbackName) {
  const res = await call(path);
  const disposition = res.headers.get('content-disposition') ?? '';
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

/** What to tell a reader when a part of a page cannot be read. */
export function explain(err) {
  if (!(err instanceof ApiError)) return `Could not reach the aggregator: ${err.message}`;
  if (err.status === 401) return `Sign-in needed: ${err.message}. Paste a bearer token above.`;
  if (err.status === 403) return `Your token may not read this: ${err.message}.`;
  return `${err.code}: ${err.message}`;
}
