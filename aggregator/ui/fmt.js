// Number formats. Values the API sends a `human` form for are shown as sent; these format what the
// page computes itself (cluster sums, chart axes) in the same style as aggregator/api/human.py.
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

// Three significant figures, never an exponent; whole from 1000 up (as human.py's _sig3).
function sig3(v) {
  return Math.abs(v) >= 1000 ? String(Math.round(v)) : String(Number(v.toPrecision(3)));
}

export function size(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  let unit = 0;
  while (Math.abs(v) >= 1024 && unit < UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(v)} B` : `${sig3(v)} ${UNITS[unit]}`;
}

export function rate(v) {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : `${size(v)}/s`;
}

export function cores(millicores) {
  if (millicores === null || millicores === undefined || !Number.isFinite(millicores)) return "–";
  const text = sig3(millicores / 1000);
  return `${text} ${text === "1" ? "core" : "cores"}`;
}

export function percent(v) {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : `${v.toFixed(1)}%`;
}

// The API's human form when it has one, else the local format of the raw value.
export function human(doc, key, raw, fallback) {
  const text = doc && doc.human ? doc.human[key] : undefined;
  if (text !== undefined && text !== null) return text;
  return fallback(raw);
}

export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 90) return `${Math.round(seconds)}s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)}m ago`;
  return `${(seconds / 3600).toFixed(1)}h ago`;
}

// Chart axis labels for a value kind.
export function axis(kind) {
  if (kind === "cpu") return (v) => (Math.abs(v) >= 1000 ? `${sig3(v / 1000)}` : `${sig3(v)}m`);
  if (kind === "bytes") return size;
  if (kind === "rate") return rate;
  return (v) => String(v);
}
