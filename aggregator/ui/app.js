// The dashboard shell: hash routes (#/pods?ns=shop&w=900 — a link reproduces the view), the window
// selector, refresh on the scrape interval with a pause button, and the error banner that keeps
// the last data on screen.
import { get, ApiError } from "./api.js";
import { h, link } from "./dom.js";
import { time } from "./fmt.js";
import { VIEWS } from "./views.js";

const WINDOWS = ["300", "900", "3600", "all"];
const main = document.getElementById("main");
const banner = document.getElementById("banner");
const updated = document.getElementById("updated");
const windowSelect = document.getElementById("window");
const pauseButton = document.getElementById("pause");

const state = {
  path: null,
  view: null,
  paused: false,
  interval: 5, // seconds; follows the exporters' sampling interval once nodes are seen
  span: null, // retention span in seconds (the API's largest window)
  timer: null,
  inflight: null,
};

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path: path.replace(/\/+$/, "") || "/", query: new URLSearchParams(query) };
}

function hashFor(path, query) {
  const q = query.toString();
  return `#${path}${q ? "?" + q : ""}`;
}

// Change query parameters of the current view; push a history entry only when asked.
function setQuery(changes, { push = false } = {}) {
  const { path, query } = parseHash();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") query.delete(k);
    else query.set(k, v);
  }
  const next = hashFor(path, query);
  if (push) location.hash = next;
  else {
    history.replaceState(null, "", next);
    route();
  }
}

function windowParam(query) {
  const w = query.get("w");
  return WINDOWS.includes(w) ? w : "300";
}

async function retentionSpan() {
  if (state.span === null) {
    try {
      const doc = await get("/openapi.json");
      state.span = doc.components.parameters.window.schema.maximum || 3600;
    } catch {
      return 3600;
    }
  }
  return state.span;
}

function showBanner(message) {
  banner.replaceChildren(
    h("span", { text: message }),
    h("span", { class: "muted", text: ` — showing the last data received; retrying every ${state.interval}s.` }),
  );
  banner.hidden = false;
}

function ctxFor(params, query) {
  return {
    params,
    query,
    setQuery,
    refresh: () => refresh(),
    async windowSeconds() {
      const w = windowParam(query);
      const span = await retentionSpan();
      return w === "all" ? span : Math.min(Number(w), span);
    },
    learnInterval(nodes) {
      const xs = nodes.map((n) => n.interval_seconds).filter((v) => Number.isFinite(v) && v > 0).sort((a, b) => a - b);
      if (xs.length) state.interval = Math.min(60, Math.max(1, xs[Math.floor(xs.length / 2)]));
    },
    notFound(kind, name, back, backText) {
      main.replaceChildren(h("section", { class: "notfound", "data-notfound": kind },
        h("h1", { text: `${kind} “${name}” not found` }),
        h("p", { text: `The aggregator does not know this ${kind.toLowerCase()} (it may have been deleted, or the link is mistyped).` }),
        h("p", {}, link(back, `← ${backText}`))));
      document.title = `${kind} not found · k8s-monitor`;
    },
  };
}

function match(path) {
  for (const [pattern, View] of VIEWS) {
    const m = pattern.exec(path);
    if (m) return [View, (m.slice(1)).map(decodeURIComponent)];
  }
  return [null, []];
}

function route() {
  const { path, query } = parseHash();
  windowSelect.value = windowParam(query);
  if (path !== state.path || !state.view) {
    if (state.view && state.view.destroy) state.view.destroy();
    state.path = path;
    const [View, params] = match(path);
    const ctx = ctxFor(params, query);
    if (!View) {
      state.view = null;
      ctx.notFound("Page", path, "#/", "Overview");
      return;
    }
    state.view = new View(ctx);
    document.querySelectorAll("nav a").forEach((a) => {
      if (a.dataset.section === state.view.section) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    main.replaceChildren();
    state.view.mount(main);
  } else {
    state.view.ctx = ctxFor(state.view.ctx.params, query);
    if (state.view.onQuery) {
      state.view.onQuery();
      return;
    }
  }
  refresh();
}

async function refresh() {
  clearTimeout(state.timer);
  if (state.inflight) state.inflight.abort();
  const view = state.view;
  if (!view) return;
  const ac = new AbortController();
  state.inflight = ac;
  try {
    // One status per refresh, shared with the view, so the footer and the page cannot show two rounds.
    const statusRequest = get("/", { signal: ac.signal });
    const [status] = await Promise.all([statusRequest, view.update(ac.signal, statusRequest)]);
    if (ac.signal.aborted) return;
    banner.hidden = true;
    const errors = (status.targets.items || []).filter((t) => t.last_error).length;
    updated.textContent = `last scrape ${time(status.last_scrape)}` + (errors ? ` · ${errors} target error(s)` : "");
    updated.dataset.lastScrape = status.last_scrape || "";
  } catch (err) {
    if (err.name === "AbortError") return;
    showBanner(err instanceof ApiError ? err.message : `dashboard error: ${err.message}`);
    if (!(err instanceof ApiError)) console.error(err); // a bug in the page: tests fail on console errors
  } finally {
    if (state.inflight === ac) state.inflight = null;
  }
  if (!state.paused && state.view === view) state.timer = setTimeout(refresh, state.interval * 1000);
}

windowSelect.addEventListener("change", () => setQuery({ w: windowSelect.value === "300" ? null : windowSelect.value }));
pauseButton.addEventListener("click", () => {
  state.paused = !state.paused;
  pauseButton.setAttribute("aria-pressed", String(state.paused));
  pauseButton.textContent = state.paused ? "Resume" : "Pause";
  if (state.paused) clearTimeout(state.timer);
  else refresh();
});
window.addEventListener("hashchange", route);
route(); // modules run once the document is parsed (and after the deferred uPlot script): no need to wait for "load"
