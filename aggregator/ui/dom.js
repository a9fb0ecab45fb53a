// DOM helpers. Every text goes in through textContent (names come from the cluster), and sizes are
// set through element.style from script, which the Content-Security-Policy allows (inline style
// attributes in markup it would not).
const SVG = "http://www.w3.org/2000/svg";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function link(href, text) {
  return h("a", { href }, text);
}

// A usage bar (0–100 %) followed by its text; red from 90 %.
export function bar(pct, text, { wide = false } = {}) {
  const fill = h("span");
  const known = pct !== null && pct !== undefined && Number.isFinite(pct);
  fill.style.width = `${known ? Math.max(0, Math.min(100, pct)) : 0}%`;
  const track = h("span", { class: `bar${wide ? " wide" : ""}${known && pct >= 90 ? " hot" : ""}`,
    role: "img", "aria-label": known ? `${pct.toFixed(1)}%` : "unknown" }, fill);
  return wide ? [text, track] : [track, text];
}

// A sparkline of one series (nulls skipped), scaled to its own range.
export function spark(values, label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const pts = values.map((v, i) => [i, v]).filter(([, v]) => v !== null && Number.isFinite(v));
  if (pts.length > 1) {
    let lo = Math.min(...pts.map((p) => p[1]));
    let hi = Math.max(...pts.map((p) => p[1]));
    if (hi === lo) { hi += 1; lo -= 1; }
    const n = values.length - 1 || 1;
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.map(([i, v]) =>
      `${((i / n) * 120).toFixed(1)},${(22 - ((v - lo) / (hi - lo)) * 20).toFixed(1)}`).join(" "));
    svg.append(line);
  }
  return svg;
}

// A sortable table whose header stays in place (keeps keyboard focus) while rows are replaced.
// columns: {key, label, num, cell(row) → node|string, title?}
export class Table {
  constructor(columns, { onSort, caption } = {}) {
    this.columns = columns;
    this.heads = new Map();
    const tr = h("tr");
    for (const col of columns) {
      const inner = col.sortable === false ? col.label
        : h("button", { type: "button", onclick: () => onSort && onSort(col.key), title: `Sort by ${col.label}` }, col.label);
      const th = h("th", { scope: "col", class: col.num ? "num" : null, dataset: { key: col.key } }, inner);
      this.heads.set(col.key, th);
      tr.append(th);
    }
    this.body = h("tbody");
    this.table = h("table", {}, caption ? h("caption", { class: "muted", text: caption }) : null, h("thead", {}, tr), this.body);
    this.el = h("div", { class: "tablewrap" }, this.table);
  }

  setRows(rows, sort, { empty = "Nothing to show." } = {}) {
    for (const [key, th] of this.heads) {
      if (sort && sort.key === key) th.setAttribute("aria-sort", sort.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    const frag = document.createDocumentFragment();
    for (const row of rows) {
      const tr = h("tr");
      for (const col of this.columns) {
        const td = h("td", { class: col.num ? "num" : null, dataset: { col: col.key } });
        const content = col.cell(row);
        if (Array.isArray(content)) td.append(...content.filter((c) => c !== null && c !== undefined));
        else if (content instanceof Node) td.append(content);
        else td.textContent = content === null || content === undefined ? "–" : String(content);
        tr.append(td);
      }
      frag.append(tr);
    }
    if (!rows.length) frag.append(h("tr", {}, h("td", { colspan: String(this.columns.length), class: "muted", text: empty })));
    this.body.replaceChildren(frag);
  }
}

// Sort rows by a column's key function; nulls last in both directions.
export function sortRows(rows, keyFn, dir) {
  const sign = dir === "asc" ? 1 : -1;
  return rows.slice().sort((a, b) => {
    const x = keyFn(a), y = keyFn(b);
    const xn = x === null || x === undefined, yn = y === null || y === undefined;
    if (xn || yn) return xn === yn ? 0 : xn ? 1 : -1;
    if (typeof x === "string") return sign * x.localeCompare(y);
    return sign * (x - y);
  });
}
