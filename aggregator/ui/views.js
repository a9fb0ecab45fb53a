// The pages. Each view builds its frame once in mount() (so controls keep focus) and fills it in
// update(signal, statusRequest), which the shell calls on every refresh with the refresh's one request
// for "/" (a promise) so that every part of the page shows the same round; a failed update throws and the shell shows
// the banner while the last data stays on screen.
import { get, qs, enc, columns, ApiError } from "./api.js";
import { h, link, bar, spark, Table, sortRows } from "./dom.js";
import { human, cores, size, rate, percent, time, ago } from "./fmt.js";
import { TimeChart, flat } from "./charts.js";
import { queryPods, podColumns, hasContainers, POD_KEYS, podHref } from "./pods.js";

const PAGE = 50; // rows per page: a screenful and more, cheap to render at every filter keystroke
const TOP = 10;

function sortFrom(query, fallback, dir = "desc") {
  return { key: query.get("sort") || fallback, dir: query.get("dir") || (query.get("sort") ? "asc" : dir) };
}

// Clicking a column: first descending for numbers, ascending for names; again flips it.
function nextSort(ctx, current, key, numeric) {
  const dir = current.key === key ? (current.dir === "asc" ? "desc" : "asc") : numeric ? "desc" : "asc";
  ctx.setQuery({ sort: key, dir });
}

async function orNotFound(promise, onMissing) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      onMissing();
      return null;
    }
    throw err;
  }
}

// null for a 404 (the entity left between two calls), the answer otherwise; other errors propagate.
async function orMissing(promise) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

function card(label, value, extra, attrs = {}) {
  return h("div", { class: "card", ...attrs }, h("div", { class: "label", text: label }),
    h("div", { class: "value" }, value), extra ? h("div", { class: "muted" }, extra) : null);
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v ?? "–")]));
}

function usageCharts(kind) {
  const reqLim = kind === "node"
    ? [{ label: "capacity", dash: true }]
    : [{ label: "request", dash: true }, { label: "limit", dash: true }];
  const memRef = kind === "node" ? [{ label: "total", dash: true }] : reqLim;
  return {
    cpu: new TimeChart("CPU", "cpu", [{ label: "used" }, ...reqLim]),
    memory: new TimeChart("Memory", "bytes", [{ label: kind === "node" ? "used" : "working set" }, ...memRef]),
    disk: new TimeChart("Disk I/O", "rate", [{ label: "read" }, { label: "write" }]),
    network: new TimeChart("Network", "rate", [{ label: "received" }, { label: "sent" }]),
  };
}

function fillCharts(charts, series, doc, kind) {
  const [xs, cpu, mem, dr, dw, rx, tx] = columns(series, [
    (p) => p.cpu_millicores, (p) => p.memory_bytes,
    (p) => p.disk_io.read_bytes_per_second, (p) => p.disk_io.write_bytes_per_second,
    (p) => p.network_io.bytes_recv_per_second, (p) => p.network_io.bytes_sent_per_second,
  ]);
  if (kind === "node") {
    charts.cpu.setData([xs, cpu, flat(xs, doc.cpu_capacity_millicores)]);
    charts.memory.setData([xs, mem, flat(xs, doc.memory_total_bytes)]);
  } else {
    charts.cpu.setData([xs, cpu, flat(xs, doc.cpu_request_millicores), flat(xs, doc.cpu_limit_millicores)]);
    charts.memory.setData([xs, mem, flat(xs, doc.memory_request_bytes), flat(xs, doc.memory_limit_bytes)]);
  }
  charts.disk.setData([xs, dr, dw]);
  charts.network.setData([xs, rx, tx]);
}

function chartGrid(charts) {
  return h("div", { class: "grid2" }, Object.values(charts).map((c) => c.el));
}

function destroyCharts(charts) {
  if (charts) Object.values(charts).forEach((c) => c.destroy());
}

// ---------------------------------------------------------------- overview
class Overview {
  section = "overview";
  constructor(ctx) { this.ctx = ctx; }

  mount(main) {
    document.title = "Overview · k8s-monitor";
    this.cards = h("div", { class: "cards" });
    this.errors = h("div");
    const keep = (keys) => podColumns().filter((c) => keys.includes(c.key));
    this.topCpu = new Table(keep(["name", "namespace", "node", "cpu", "cpu_req", "cpu_lim"]));
    this.topMem = new Table(keep(["name", "namespace", "node", "memory", "mem_req", "mem_lim"]));
    this.namespaces = new Table(groupColumns("namespace"));
    main.append(h("h1", { text: "Cluster overview" }), this.cards, this.errors,
      h("div", { class: "grid2" },
        h("section", { class: "panel", id: "top-cpu" }, h("h2", { text: "Top pods by CPU" }), this.topCpu.el),
        h("section", { class: "panel", id: "top-memory" }, h("h2", { text: "Top pods by memory" }), this.topMem.el)),
      h("section", { id: "namespaces-usage" }, h("h2", { text: "Namespaces by usage" }), this.namespaces.el));
  }

  async update(signal, statusRequest) {
    const [status, nodes, namespaces, byCpu, byMem] = await Promise.all([
      statusRequest, get("/api/nodes", { signal }), get("/api/namespaces", { signal }),
      queryPods({}, { key: "cpu", dir: "desc" }, TOP, { signal }),
      queryPods({}, { key: "memory", dir: "desc" }, TOP, { signal }),
    ]);
    this.ctx.learnInterval(nodes.nodes);
    const up = nodes.nodes.filter((n) => n.status === "up");
    const down = nodes.nodes.length - up.length;
    const total = (rows, key) => rows.reduce((acc, n) => acc + (Number.isFinite(n[key]) ? n[key] : 0), 0);
    const cpu = total(up, "cpu_millicores"), cpuCap = total(up, "cpu_capacity_millicores");
    const mem = total(up, "memory_bytes"), memCap = total(up, "memory_total_bytes");
    const pct = (a, b) => (b > 0 ? (100 * a) / b : null);
    // Current pods per node (the listings' count); a roll-up's pod_count is per scrape round and
    // misses a pushed pod whose push fell between two rounds.
    const pods = nodes.nodes.reduce((acc, n) => acc + (n.pod_count ?? 0), 0);
    this.cards.replaceChildren(
      card("Nodes", [h("span", { class: "up", text: `${up.length} up` }), " · ",
        h("span", { class: down ? "down" : "muted", text: `${down} down` })], null, { id: "card-nodes" }),
      card("CPU used", `${cores(cpu)} of ${cores(cpuCap)}`, bar(pct(cpu, cpuCap), percent(pct(cpu, cpuCap)), { wide: true }),
        { id: "card-cpu", "data-value": String(cpu), "data-capacity": String(cpuCap) }),
      card("Memory used", `${size(mem)} of ${size(memCap)}`, bar(pct(mem, memCap), percent(pct(mem, memCap)), { wide: true }),
        { id: "card-memory", "data-value": String(mem), "data-capacity": String(memCap) }),
      card("Pods", String(pods), `${namespaces.count} namespaces`, { id: "card-pods" }),
      card("Last scrape", time(status.last_scrape),
        status.last_round ? `round took ${status.last_round.duration_seconds.toFixed(2)} s` : "no round yet",
        { id: "card-scrape" }),
      card("Targets", `${status.targets.up} / ${status.targets.total} up`, `${status.discovery_mode} discovery`, { id: "card-targets" }),
    );
    const failing = status.targets.items.filter((t) => t.last_error || !t.up);
    const nodeErrors = nodes.nodes.filter((n) => n.last_error && !failing.some((t) => t.node_name === n.node_name));
    this.errors.replaceChildren(failing.length || nodeErrors.length
      ? h("section", { class: "panel", id: "target-errors" }, h("h2", { text: "Target errors" }),
        h("ul", { class: "errors" },
          failing.map((t) => h("li", {}, `${t.target}${t.node_name ? ` (${t.node_name})` : ""}: ${t.last_error || "down"}`)),
          nodeErrors.map((n) => h("li", {}, `${n.node_name}: ${n.last_error}`))))
      : h("p", { class: "muted", id: "target-errors", text: "No target errors." }));
    this.topCpu.setRows(byCpu.pods, { key: "cpu", dir: "desc" });
    this.topMem.setRows(byMem.pods, { key: "memory", dir: "desc" });
    this.namespaces.setRows(sortRows(namespaces.namespaces, (g) => g.cpu_millicores, "desc"), { key: "cpu", dir: "desc" });
  }
}

// ---------------------------------------------------------------- nodes
const NODE_KEYS = {
  name: (n) => n.node_name,
  status: (n) => n.status,
  cpu: (n) => n.cpu_percent,
  memory: (n) => n.memory_percent,
  disk: (n) => (n.disk_io.read_bytes_per_second ?? 0) + (n.disk_io.write_bytes_per_second ?? 0),
  network: (n) => (n.network_io.bytes_recv_per_second ?? 0) + (n.network_io.bytes_sent_per_second ?? 0),
  pods: (n) => n.pod_count,
};

function nodeColumns(sparks) {
  const cols = [
    { key: "name", label: "Node", cell: (n) => link(`#/nodes/${enc(n.node_name)}`, n.node_name) },
    { key: "status", label: "Status", cell: (n) => h("span", { class: n.status === "up" ? "up" : "down", text: n.status, title: n.last_error || "" }) },
    { key: "cpu", label: "CPU", cell: (n) => bar(n.cpu_percent, `${human(n, "cpu", n.cpu_millicores, cores)} / ${human(n, "cpu_capacity", n.cpu_capacity_millicores, cores)} (${human(n, "cpu_percent", n.cpu_percent, percent)})`) },
    { key: "memory", label: "Memory", cell: (n) => bar(n.memory_percent, `${human(n, "memory", n.memory_bytes, size)} / ${human(n, "memory_total", n.memory_total_bytes, size)} (${human(n, "memory_percent", n.memory_percent, percent)})`) },
    { key: "disk", label: "Disk r/w", num: true, cell: (n) => `${human(n, "disk_read", n.disk_io.read_bytes_per_second, rate)} / ${human(n, "disk_write", n.disk_io.write_bytes_per_second, rate)}` },
    { key: "network", label: "Net rx/tx", num: true, cell: (n) => `${human(n, "network_recv", n.network_io.bytes_recv_per_second, rate)} / ${human(n, "network_sent", n.network_io.bytes_sent_per_second, rate)}` },
    { key: "pods", label: "Pods", num: true, cell: (n) => link(`#/pods?node=${enc(n.node_name)}`, String(n.pod_count ?? "–")) },
  ];
  if (sparks) cols.push({ key: "spark", label: "CPU (window)", sortable: false, cell: (n) => sparks.get(n.node_name) || h("span", { class: "muted", text: "…" }) });
  return cols;
}

class Nodes {
  section = "nodes";
  constructor(ctx) { this.ctx = ctx; this.shown = PAGE; this.sparks = new Map(); this.docs = null; }

  mount(main) {
    document.title = "Nodes · k8s-monitor";
    const q = this.ctx.query.get("q") || "";
    this.filter = h("input", { type: "search", id: "node-filter", value: q, placeholder: "name contains…",
      oninput: () => this.ctx.setQuery({ q: this.filter.value }) });
    this.table = new Table(nodeColumns(this.sparks), { onSort: (key) => nextSort(this.ctx, this.sort(), key, key !== "name" && key !== "status") });
    this.count = h("span", { class: "muted" });
    this.moreButton = h("button", { type: "button", onclick: () => { this.shown += PAGE; this.render(); } }, "Show more");
    main.append(h("h1", { text: "Nodes" }), h("div", { class: "filters" }, h("label", {}, "Name", this.filter)),
      this.table.el, h("div", { class: "more" }, this.count, this.moreButton));
  }

  sort() { return sortFrom(this.ctx.query, "name", "asc"); }

  rows() {
    const q = (this.ctx.query.get("q") || "").toLowerCase();
    const rows = (this.docs || []).filter((n) => !q || n.node_name.includes(q));
    const s = this.sort();
    return sortRows(rows, NODE_KEYS[s.key] || NODE_KEYS.name, s.dir);
  }

  render() {
    const rows = this.rows();
    const visible = rows.slice(0, this.shown);
    this.table.setRows(visible, this.sort(), { empty: "No nodes match." });
    this.count.textContent = `${visible.length} of ${rows.length} nodes`;
    this.moreButton.hidden = visible.length >= rows.length;
    return visible;
  }

  onQuery() {
    this.render();
    if (this.ctx.query.get("w") !== this.window) this.ctx.refresh(); // sparklines over the new window
  }

  async update(signal) {
    this.window = this.ctx.query.get("w");
    const doc = await get("/api/nodes", { signal });
    this.docs = doc.nodes;
    this.ctx.learnInterval(doc.nodes);
    const visible = this.render();
    // Sparklines for the rows on screen only, a few requests at a time.
    const window = await this.ctx.windowSeconds();
    const queue = visible.map((n) => n.node_name);
    const worker = async () => {
      while (queue.length) {
        const name = queue.shift();
        // A node that left since the listing has no series: no sparkline, not an error banner.
        const ts = await orMissing(get(`/api/nodes/${enc(name)}/timeseries${qs({ window })}`, { signal }));
        if (ts) this.sparks.set(name, spark(ts.points.map((p) => p.cpu_millicores), `CPU of ${name} over the window`));
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    this.render();
  }
}

class NodePage {
  section = "nodes";
  constructor(ctx) { this.ctx = ctx; this.name = ctx.params[0]; }

  mount(main) {
    document.title = `${this.name} · nodes · k8s-monitor`;
    this.main = main;
    this.facts = h("div", { class: "panel" });
    this.charts = usageCharts("node");
    this.podSort = { key: "cpu", dir: "desc" };
    this.pods = new Table(podColumns({ hide: ["node"] }), { onSort: (key) => {
      this.podSort = { key, dir: this.podSort.key === key && this.podSort.dir === "desc" ? "asc" : "desc" };
      this.renderPods();
    } });
    main.append(h("p", { class: "crumbs" }, link("#/nodes", "Nodes"), " / "), h("h1", { text: this.name }),
      this.facts, chartGrid(this.charts), h("h2", { text: "Pods on this node" }), this.pods.el);
  }

  renderPods() {
    if (this.podDocs) this.pods.setRows(sortRows(this.podDocs, POD_KEYS[this.podSort.key], this.podSort.dir), this.podSort);
  }

  async update(signal) {
    const window = await this.ctx.windowSeconds();
    const gone = () => { this.ctx.notFound("Node", this.name, "#/nodes", "All nodes"); this.dead = true; };
    if (this.dead) return;
    const node = await orNotFound(get(`/api/nodes/${enc(this.name)}`, { signal }), gone);
    if (!node) return;
    const [series, pods] = await Promise.all([
      get(`/api/nodes/${enc(this.name)}/timeseries${qs({ window })}`, { signal }),
      get(`/api/nodes/${enc(this.name)}/pods`, { signal }),
    ]);
    this.ctx.learnInterval([node]);
    this.facts.replaceChildren(facts([
      ["Status", h("span", { class: node.status === "up" ? "up" : "down", text: node.status, id: "node-status" })],
      ["CPU", bar(node.cpu_percent, `${human(node, "cpu", node.cpu_millicores, cores)} of ${human(node, "cpu_capacity", node.cpu_capacity_millicores, cores)}`)],
      ["Memory", bar(node.memory_percent, `${human(node, "memory", node.memory_bytes, size)} of ${human(node, "memory_total", node.memory_total_bytes, size)}`)],
      ["Filesystem", node.filesystem ? bar(node.filesystem.percent, `${size(node.filesystem.used_bytes)} of ${size(node.filesystem.size_bytes)}`) : "–"],
      ["Disk read / write", `${human(node, "disk_read", null, rate)} / ${human(node, "disk_write", null, rate)}`],
      ["Network rx / tx", `${human(node, "network_recv", null, rate)} / ${human(node, "network_sent", null, rate)}`],
      ["Pods", String(node.pod_count ?? "–")],
      ["Last sample", `${time(node.timestamp)} (${ago(node.age_seconds)})`],
      ["Last error", node.last_error || "none"],
    ]));
    fillCharts(this.charts, series, node, "node");
    this.podDocs = pods.pods;
    this.renderPods();
  }

  destroy() { destroyCharts(this.charts); }
}

// ---------------------------------------------------------------- pods
class Pods {
  section = "pods";
  constructor(ctx) { this.ctx = ctx; this.shown = PAGE; this.options = null; }

  filters() {
    const q = this.ctx.query;
    return { ns: q.get("ns") || "", node: q.get("node") || "", dep: q.get("dep") || "", q: q.get("q") || "" };
  }

  // By name like `kubectl top pods`, and the API's cheapest order: at 30,000 pods sorting by CPU
  // doubles the server's time for the first page (0.31 s of CPU against 0.15 s).
  sort() { return sortFrom(this.ctx.query, "name", "asc"); }

  mount(main) {
    document.title = "Pods · k8s-monitor";
    const f = this.filters();
    const set = (key) => (ev) => { this.shown = PAGE; this.ctx.setQuery({ [key]: ev.target.value }); };
    this.ns = h("select", { id: "filter-ns", onchange: set("ns") }, h("option", { value: "", text: "all" }));
    this.node = h("select", { id: "filter-node", onchange: set("node") }, h("option", { value: "", text: "all" }));
    this.dep = h("select", { id: "filter-dep", onchange: set("dep") }, h("option", { value: "", text: "all" }));
    this.q = h("input", { type: "search", id: "filter-q", value: f.q, placeholder: "name contains…", oninput: set("q") });
    this.onSort = (key) => nextSort(this.ctx, this.sort(), key, !["name", "namespace", "node", "deployment"].includes(key));
    this.containers = false;
    this.table = new Table(podColumns(), { onSort: this.onSort });
    this.count = h("span", { class: "muted", id: "pod-count" });
    this.moreButton = h("button", { type: "button", onclick: () => { this.shown += PAGE; this.ctx.refresh(); } }, "Show more");
    main.append(h("h1", { text: "Pods" }),
      h("div", { class: "filters", role: "search" },
        h("label", {}, "Namespace", this.ns), h("label", {}, "Node", this.node),
        h("label", {}, "Deployment", this.dep), h("label", {}, "Name", this.q)),
      this.table.el, h("div", { class: "more" }, this.count, this.moreButton));
    this.setOptions();
  }

  setOptions() {
    const f = this.filters();
    const fill = (select, values, current) => {
      const wanted = [...new Set([...values, current].filter(Boolean))].sort();
      const have = [...select.options].slice(1).map((o) => o.value);
      if (have.join("\n") !== wanted.join("\n")) {
        select.replaceChildren(h("option", { value: "", text: "all" }), ...wanted.map((v) => h("option", { value: v, text: v })));
      }
      select.value = current;
    };
    const o = this.options || { ns: [], node: [], dep: [] };
    fill(this.ns, o.ns, f.ns);
    fill(this.node, o.node, f.node);
    fill(this.dep, o.dep.filter((d) => !f.ns || d.ns === f.ns).map((d) => d.name), f.dep);
    if (this.q.value !== f.q) this.q.value = f.q;
  }

  show(pods, total, source) {
    if (hasContainers(pods) !== this.containers) {
      this.containers = !this.containers;
      const table = new Table(podColumns({ containers: this.containers }), { onSort: this.onSort });
      this.table.el.replaceWith(table.el);
      this.table = table;
    }
    this.table.setRows(pods, this.sort(), { empty: "No pods match these filters." });
    this.count.textContent = `${pods.length} of ${total} pods`;
    this.count.dataset.total = String(total);
    this.count.dataset.source = source;
    this.moreButton.hidden = pods.length >= total;
  }

  // A filter or sort change: answer at once from the pod index when it is loaded (the rows the API
  // will answer, as of the index's load), then the shell's refresh asks the API for fresh values.
  onQuery() {
    this.setOptions();
    if (this.index) {
      const f = this.filters(), s = this.sort();
      // One sorted copy per order, made on first use; a filter is then one pass that keeps order.
      const order = `${s.key}:${s.dir}`;
      if (!this.sorted.has(order)) this.sorted.set(order, sortRows(this.index, POD_KEYS[s.key] || POD_KEYS.name, s.dir));
      const q = f.q.toLowerCase();
      const rows = [];
      let total = 0;
      for (const p of this.sorted.get(order)) {
        if ((f.ns && p.namespace !== f.ns) || (f.node && p.node_name !== f.node) || (f.dep && p.deployment !== f.dep)
          || (q && !p.lname.includes(q))) continue;
        if (total++ < this.shown) rows.push(p);
      }
      this.show(rows, total, "index");
    }
    this.ctx.refresh();
  }

  async update(signal) {
    const res = await queryPods(this.filters(), this.sort(), this.shown, { signal });
    this.show(res.pods, res.total, "api");
    if (!this.options) {
      // After the first rows are on screen: the filter choices, then the index in the background.
      const [namespaces, nodes] = await Promise.all([get("/api/namespaces", { signal }), get("/api/nodes", { signal })]);
      const deps = await Promise.all(namespaces.namespaces.map((g) => get(`/api/namespaces/${enc(g.namespace)}/deployments`, { signal })));
      this.options = {
        ns: namespaces.namespaces.map((g) => g.namespace),
        node: nodes.nodes.map((n) => n.node_name),
        dep: deps.flatMap((d) => d.deployments.map((g) => ({ ns: g.namespace, name: g.deployment }))),
      };
      this.ctx.learnInterval(nodes.nodes);
      this.setOptions();
      this.loadIndex();
    }
  }

  // Every pod once per visit (by namespace/name, the API's order), for instant filter answers; at
  // 30,000 pods a 31 MiB answer, fetched once rather than on every refresh.
  async loadIndex() {
    this.indexAbort = new AbortController();
    try {
      const pods = (await get("/api/pods", { signal: this.indexAbort.signal })).pods;
      for (const p of pods) p.lname = p.pod_name.toLowerCase();
      this.index = pods;
      this.sorted = new Map([["name:asc", pods]]);
      this.count.dataset.index = String(this.index.length);
    } catch (err) {
      if (err.name !== "AbortError") console.warn("pod index not loaded; filters ask the API", err.message);
    }
  }

  destroy() { if (this.indexAbort) this.indexAbort.abort(); }
}

class PodPage {
  section = "pods";
  constructor(ctx) { this.ctx = ctx; [this.namespace, this.name] = ctx.params; }

  mount(main) {
    document.title = `${this.name} · pods · k8s-monitor`;
    this.facts = h("div", { class: "panel" });
    this.containers = h("div");
    this.charts = usageCharts("pod");
    main.append(h("p", { class: "crumbs" }, link("#/pods", "Pods"), " / ",
      link(`#/namespaces/${enc(this.namespace)}`, this.namespace), " / "),
    h("h1", { text: this.name }), this.facts, this.containers, chartGrid(this.charts));
  }

  async update(signal) {
    if (this.dead) return;
    const window = await this.ctx.windowSeconds();
    const ns = { namespace: this.namespace };
    const gone = () => { this.ctx.notFound("Pod", `${this.namespace}/${this.name}`, "#/pods", "All pods"); this.dead = true; };
    const pod = await orNotFound(get(`/api/pods/${enc(this.name)}${qs(ns)}`, { signal }), gone);
    if (!pod) return;
    const series = await get(`/api/pods/${enc(this.name)}/timeseries${qs({ ...ns, window })}`, { signal });
    const ofReq = (pct, reqKey, limKey, raw1, raw2, fmt) => `request ${human(pod, reqKey, raw1, fmt)} (${percent(pct[0])}), limit ${human(pod, limKey, raw2, fmt)} (${percent(pct[1])})`;
    this.facts.replaceChildren(facts([
      ["Namespace", link(`#/namespaces/${enc(pod.namespace)}`, pod.namespace)],
      ["Node", pod.node_name ? link(`#/nodes/${enc(pod.node_name)}`, pod.node_name) : "–"],
      ["Deployment", pod.deployment ? link(`#/namespaces/${enc(pod.namespace)}/deployments/${enc(pod.deployment)}`, pod.deployment) : "–"],
      ["Owner", pod.owner_kind ? `${pod.owner_kind} ${pod.owner_name}` : "–"],
      ["CPU", h("span", { id: "pod-cpu", text: human(pod, "cpu", pod.cpu_millicores, cores) })],
      ["CPU request / limit", ofReq([pod.cpu_percent_of_request, pod.cpu_percent_of_limit], "cpu_request", "cpu_limit", pod.cpu_request_millicores, pod.cpu_limit_millicores, cores)],
      ["Memory", h("span", { id: "pod-memory", text: human(pod, "memory", pod.memory_bytes, size) })],
      ["Memory request / limit", ofReq([pod.memory_percent_of_request, pod.memory_percent_of_limit], "memory_request", "memory_limit", pod.memory_request_bytes, pod.memory_limit_bytes, size)],
      ["Disk read / write", `${human(pod, "disk_read", null, rate)} / ${human(pod, "disk_write", null, rate)}`],
      ["Network rx / tx", `${human(pod, "network_recv", null, rate)} / ${human(pod, "network_sent", null, rate)}`],
      ["Last sample", `${time(pod.timestamp)} (${ago(pod.age_seconds)})`],
      ["UID", pod.uid || "–"],
    ]));
    if (Array.isArray(pod.containers) && pod.containers.length) {
      const t = new Table([
        { key: "name", label: "Container", cell: (c) => c.name || c.container || "–" },
        { key: "cpu", label: "CPU", num: true, cell: (c) => human(c, "cpu", c.cpu_millicores, cores) },
        { key: "memory", label: "Memory", num: true, cell: (c) => human(c, "memory", c.memory_bytes, size) },
        { key: "cpu_request", label: "CPU req / lim", num: true, cell: (c) => `${human(c, "cpu_request", c.cpu_request_millicores, cores)} / ${human(c, "cpu_limit", c.cpu_limit_millicores, cores)} (${percent(c.cpu_percent_of_request)} / ${percent(c.cpu_percent_of_limit)})` },
        { key: "mem_request", label: "Mem req / lim", num: true, cell: (c) => `${human(c, "memory_request", c.memory_request_bytes, size)} / ${human(c, "memory_limit", c.memory_limit_bytes, size)} (${percent(c.memory_percent_of_request)} / ${percent(c.memory_percent_of_limit)})` },
      ]);
      t.setRows(pod.containers, null);
      this.containers.replaceChildren(h("h2", { text: "Containers" }), t.el);
    } else {
      this.containers.replaceChildren();
    }
    fillCharts(this.charts, series, pod, "pod");
  }

  destroy() { destroyCharts(this.charts); }
}

// ---------------------------------------------------------------- namespaces and deployments
const GROUP_KEYS = {
  name: (g) => g.deployment || g.namespace,
  namespace: (g) => g.namespace,
  pods: (g) => g.pod_count,
  ...Object.fromEntries(["cpu", "cpu_req", "memory", "mem_req", "disk", "network"].map((k) => [k, POD_KEYS[k]])),
};

function groupHref(g) {
  return g.deployment ? `#/namespaces/${enc(g.namespace)}/deployments/${enc(g.deployment)}` : `#/namespaces/${enc(g.namespace)}`;
}

function groupColumns(kind) {
  const podsHref = (g) => `#/pods?ns=${enc(g.namespace)}${g.deployment ? `&dep=${enc(g.deployment)}` : ""}`;
  const cols = [
    { key: "name", label: kind === "namespace" ? "Namespace" : "Deployment", cell: (g) => link(groupHref(g), g.deployment || g.namespace) },
    { key: "pods", label: "Pods", num: true, cell: (g) => link(podsHref(g), String(g.pod_count)) },
    { key: "cpu", label: "CPU", num: true, cell: (g) => human(g, "cpu", g.cpu_millicores, cores) },
    { key: "cpu_req", label: "CPU % req", cell: (g) => bar(g.cpu_percent_of_request, `${percent(g.cpu_percent_of_request)} of ${human(g, "cpu_request", g.cpu_request_millicores, cores)}`) },
    { key: "memory", label: "Memory", num: true, cell: (g) => human(g, "memory", g.memory_bytes, size) },
    { key: "mem_req", label: "Mem % req", cell: (g) => bar(g.memory_percent_of_request, `${percent(g.memory_percent_of_request)} of ${human(g, "memory_request", g.memory_request_bytes, size)}`) },
    { key: "disk", label: "Disk r/w", num: true, cell: (g) => `${human(g, "disk_read", null, rate)} / ${human(g, "disk_write", null, rate)}` },
    { key: "network", label: "Net rx/tx", num: true, cell: (g) => `${human(g, "network_recv", null, rate)} / ${human(g, "network_sent", null, rate)}` },
  ];
  if (kind === "deployment") cols.splice(1, 0, { key: "namespace", label: "Namespace", cell: (g) => link(`#/namespaces/${enc(g.namespace)}`, g.namespace) });
  return cols;
}

class GroupList {
  constructor(ctx, kind) {
    this.ctx = ctx;
    this.kind = kind;
    this.section = kind === "namespace" ? "namespaces" : "deployments";
  }

  sort() { return sortFrom(this.ctx.query, "cpu"); }

  mount(main) {
    const title = this.kind === "namespace" ? "Namespaces" : "Deployments";
    document.title = `${title} · k8s-monitor`;
    this.table = new Table(groupColumns(this.kind), { onSort: (key) => nextSort(this.ctx, this.sort(), key, !["name", "namespace"].includes(key)) });
    main.append(h("h1", { text: title }), this.table.el);
  }

  onQuery() { if (this.docs) this.table.setRows(sortRows(this.docs, GROUP_KEYS[this.sort().key] || GROUP_KEYS.cpu, this.sort().dir), this.sort()); }

  async update(signal) {
    const namespaces = await get("/api/namespaces", { signal });
    if (this.kind === "namespace") {
      this.docs = namespaces.namespaces;
    } else {
      const lists = await Promise.all(namespaces.namespaces.map((g) => orMissing(get(`/api/namespaces/${enc(g.namespace)}/deployments`, { signal }))));
      this.docs = lists.flatMap((d) => (d ? d.deployments : [])); // a namespace gone since the listing: skipped
    }
    this.onQuery();
  }
}

class GroupPage {
  constructor(ctx, kind) {
    this.ctx = ctx;
    this.kind = kind;
    [this.namespace, this.deployment] = ctx.params;
    this.section = kind === "namespace" ? "namespaces" : "deployments";
  }

  mount(main) {
    const name = this.deployment || this.namespace;
    document.title = `${name} · k8s-monitor`;
    this.facts = h("div", { class: "panel" });
    this.charts = usageCharts(this.kind);
    this.deployments = this.kind === "namespace" ? new Table(groupColumns("deployment").filter((c) => c.key !== "namespace")) : null;
    this.pods = new Table(podColumns({ hide: this.kind === "namespace" ? ["namespace"] : ["namespace", "deployment"] }));
    this.allPods = link(`#/pods?ns=${enc(this.namespace)}${this.deployment ? `&dep=${enc(this.deployment)}` : ""}`, "all pods →");
    const crumbs = this.kind === "namespace"
      ? [link("#/namespaces", "Namespaces"), " / "]
      : [link("#/deployments", "Deployments"), " / ", link(`#/namespaces/${enc(this.namespace)}`, this.namespace), " / "];
    main.append(h("p", { class: "crumbs" }, crumbs), h("h1", { text: name }), this.facts, chartGrid(this.charts),
      ...(this.deployments ? [h("h2", { text: "Deployments" }), this.deployments.el] : []),
      h("h2", {}, "Top pods by CPU ", h("small", {}, this.allPods)), this.pods.el);
  }

  async update(signal) {
    if (this.dead) return;
    const window = await this.ctx.windowSeconds();
    const base = `/api/namespaces/${enc(this.namespace)}` + (this.deployment ? `/deployments/${enc(this.deployment)}` : "");
    const gone = () => {
      if (this.kind === "namespace") this.ctx.notFound("Namespace", this.namespace, "#/namespaces", "All namespaces");
      else this.ctx.notFound("Deployment", `${this.namespace}/${this.deployment}`, "#/deployments", "All deployments");
      this.dead = true;
    };
    const group = await orNotFound(get(base, { signal }), gone);
    if (!group) return;
    const seriesPath = this.kind === "namespace"
      ? `/api/namespaces/${enc(this.namespace)}/timeseries${qs({ window })}`
      : `/api/deployments/${enc(this.deployment)}/timeseries${qs({ namespace: this.namespace, window })}`;
    const [series, pods, deps] = await Promise.all([
      get(seriesPath, { signal }),
      queryPods({ ns: this.namespace, dep: this.deployment }, { key: "cpu", dir: "desc" }, 20, { signal }),
      this.deployments ? get(`${base}/deployments`, { signal }) : null,
    ]);
    this.facts.replaceChildren(facts([
      ["Pods", link(this.allPods.getAttribute("href"), String(group.pod_count))],
      ["CPU", `${human(group, "cpu", group.cpu_millicores, cores)} (request ${human(group, "cpu_request", group.cpu_request_millicores, cores)}, limit ${human(group, "cpu_limit", group.cpu_limit_millicores, cores)})`],
      ["Memory", `${human(group, "memory", group.memory_bytes, size)} (request ${human(group, "memory_request", group.memory_request_bytes, size)}, limit ${human(group, "memory_limit", group.memory_limit_bytes, size)})`],
      ["Disk read / write", `${human(group, "disk_read", null, rate)} / ${human(group, "disk_write", null, rate)}`],
      ["Network rx / tx", `${human(group, "network_recv", null, rate)} / ${human(group, "network_sent", null, rate)}`],
      ["As of", time(group.timestamp)],
    ]));
    fillCharts(this.charts, series, group, this.kind);
    if (deps) this.deployments.setRows(sortRows(deps.deployments, GROUP_KEYS.cpu, "desc"), { key: "cpu", dir: "desc" });
    this.pods.setRows(pods.pods, { key: "cpu", dir: "desc" });
  }

  destroy() { destroyCharts(this.charts); }
}

const SEG = "([^/]+)";
export const VIEWS = [
  [/^\/$/, Overview],
  [/^\/nodes$/, Nodes],
  [new RegExp(`^/nodes/${SEG}$`), NodePage],
  [/^\/pods$/, Pods],
  [new RegExp(`^/pods/${SEG}/${SEG}$`), PodPage],
  [/^\/namespaces$/, class extends GroupList { constructor(ctx) { super(ctx, "namespace"); } }],
  [new RegExp(`^/namespaces/${SEG}$`), class extends GroupPage { constructor(ctx) { super(ctx, "namespace"); } }],
  [/^\/deployments$/, class extends GroupList { constructor(ctx) { super(ctx, "deployment"); } }],
  [new RegExp(`^/namespaces/${SEG}/deployments/${SEG}$`), class extends GroupPage { constructor(ctx) { super(ctx, "deployment"); } }],
];

export { podHref };
