// The hash router's two halves that pages need: where we are, and going somewhere. The pages keep their filters,
// sort and page number in the hash's query, so every view can be linked and the Back button works.

/** The hash as a path and a query: "#/nodes?sort=score" → {path: "/nodes", query}. */
export function currentRoute() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs = ''] = raw.split('?');
  return { path, query: new URLSearchParams(qs) };
}

/** Go to a path with a query; values left undefined or '' are dropped. */
export function navigate(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  location.hash = `#${path}${qs ? `?${qs}` : ''}`;
}
