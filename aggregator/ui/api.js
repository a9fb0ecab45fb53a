// Same-origin calls to the aggregator's JSON API, relative to the page so a path prefix
// (kubectl proxy, an ingress) keeps working: /ui/ → ../api/...
const BASE = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(path, status, body, message) {
    super(message);
    this.path = path;
    this.status = status; // 0: no answer (aggregator unreachable)
    this.body = body;
  }
}

export async function get(path, { signal } = {}) {
  const url = new URL(path.replace(/^\//, ""), BASE);
  let resp;
  try {
    resp = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(path, 0, null, `aggregator unreachable at ${BASE.origin} (${err.message})`);
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (err) {
    if (err.name === "AbortError") throw err; // a newer refresh took over while the body arrived
    if (resp.ok) throw new ApiError(path, resp.status, null, `GET ${path} answered ${resp.status} without a JSON body`);
  }
  if (!resp.ok) {
    const detail = body && (body.description || body.error);
    throw new ApiError(path, resp.status, body, `GET ${path} answered ${resp.status}${detail ? ": " + detail : ""}`);
  }
  return body;
}

export const enc = encodeURIComponent;

export function qs(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") parts.push(`${enc(k)}=${enc(v)}`);
  }
  return parts.length ? "?" + parts.join("&") : "";
}

// Column arrays for uPlot from a timeseries document: [xs, ...one array per pick].
export function columns(doc, picks) {
  const pts = doc.points || [];
  const xs = new Array(pts.length);
  const ys = picks.map(() => new Array(pts.length));
  pts.forEach((p, i) => {
    xs[i] = Date.parse(p.timestamp) / 1000;
    picks.forEach((pick, j) => {
      const v = pick(p);
      ys[j][i] = v === undefined ? null : v;
    });
  });
  return [xs, ...ys];
}
