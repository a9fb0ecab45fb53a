// Pod listing queries: filters, sort and paging go to /api/pods, so a cluster of 30,000 pods answers
// one small page. Columns the API does not sort by (requests, limits, names of the other columns)
// are sorted here, over every pod that matches the filters.
import { get, qs } from "./api.js";
import { h, link, bar, sortRows } from "./dom.js";
import { human, cores, size, rate, percent } from "./fmt.js";
import { enc } from "./api.js";

const sum = (a, b) => (a === null || a === undefined ? b : b === null || b === undefined ? a : a + b);

export const POD_KEYS = {
  name: (p) => `${p.namespace}/${p.pod_name}`, // the API's name order: namespace, then pod
  namespace: (p) => p.namespace,
  node: (p) => p.node_name,
  deployment: (p) => p.deployment,
  cpu: (p) => p.cpu_millicores,
  cpu_req: (p) => p.cpu_percent_of_request,
  cpu_lim: (p) => p.cpu_percent_of_limit,
  memory: (p) => p.memory_bytes,
  mem_req: (p) => p.memory_percent_of_request,
  mem_lim: (p) => p.memory_percent_of_limit,
  disk: (p) => sum(p.disk_io && p.disk_io.read_bytes_per_second, p.disk_io && p.disk_io.write_bytes_per_second),
  network: (p) => sum(p.network_io && p.network_io.bytes_recv_per_second, p.network_io && p.network_io.bytes_sent_per_second),
  containers: (p) => (Array.isArray(p.containers) && p.containers.length ? p.containers.length : null),
};

export function podHref(p) {
  return `#/pods/${enc(p.namespace)}/${enc(p.pod_name)}`;
}

// The API's filters, applied to the page's pod index: exact namespace/node/deployment, q a
// case-insensitive substring of the name.
export function matches(p, f) {
  return (!f.ns || p.namespace === f.ns) && (!f.node || p.node_name === f.node)
    && (!f.dep || p.deployment === f.dep) && (!f.q || p.pod_name.toLowerCase().includes(f.q.toLowerCase()));
}

// The API's sort keys (`sort=-cpu`); others are sorted in the page.
const SERVER_SORT = { name: "name", cpu: "cpu", memory: "memory", disk: "disk", network: "network" };

// Filters {ns, node, dep, q}, sort {key, dir}, limit (0 = all) → {pods, total}.
export async function queryPods(f, sort, limit, { signal } = {}) {
  const server = SERVER_SORT[sort.key];
  const params = { namespace: f.ns, node: f.node, deployment: f.dep, q: f.q };
  if (server) {
    params.sort = `${sort.dir === "desc" ? "-" : ""}${server}`;
    if (limit) params.limit = limit;
  }
  const doc = await get("/api/pods" + qs(params), { signal });
  if (server) return { pods: doc.pods, total: doc.total ?? doc.count };
  const rows = sortRows(doc.pods, POD_KEYS[sort.key] || POD_KEYS.name, sort.dir);
  return { pods: limit ? rows.slice(0, limit) : rows, total: rows.length };
}

// Two rates stacked in one cell (read over write, received over sent): the table fits 1280 px.
function pair(a, b) {
  return h("span", { class: "pair", title: `${a} / ${b}` }, h("span", { text: a }), h("span", { text: b }));
}

// A bar and the percentage; the request or limit itself in the tooltip (the pod page spells it out).
function pctCell(p, pctKey, humanKey, rawKey, fmt) {
  const pct = p[pctKey];
  if (pct === null || pct === undefined) return "–";
  return h("span", { title: `of ${human(p, humanKey, p[rawKey], fmt)}` }, bar(pct, percent(pct)));
}

// Table columns for pods; `hide` names columns to leave out (e.g. node on a node's page).
export function podColumns({ hide = [], containers = false } = {}) {
  const cols = [
    { key: "name", label: "Pod", cell: (p) => link(podHref(p), p.pod_name) },
    { key: "namespace", label: "Namespace", cell: (p) => link(`#/namespaces/${enc(p.namespace)}`, p.namespace) },
    { key: "node", label: "Node", cell: (p) => (p.node_name ? link(`#/nodes/${enc(p.node_name)}`, p.node_name) : "–") },
    { key: "deployment", label: "Deployment", cell: (p) => (p.deployment
      ? link(`#/namespaces/${enc(p.namespace)}/deployments/${enc(p.deployment)}`, p.deployment) : "–") },
    { key: "cpu", label: "CPU", num: true, cell: (p) => human(p, "cpu", p.cpu_millicores, cores) },
    { key: "cpu_req", label: "CPU % req", cell: (p) => pctCell(p, "cpu_percent_of_request", "cpu_request", "cpu_request_millicores", cores) },
    { key: "cpu_lim", label: "CPU % lim", cell: (p) => pctCell(p, "cpu_percent_of_limit", "cpu_limit", "cpu_limit_millicores", cores) },
    { key: "memory", label: "Memory", num: true, cell: (p) => human(p, "memory", p.memory_bytes, size) },
    { key: "mem_req", label: "Mem % req", cell: (p) => pctCell(p, "memory_percent_of_request", "memory_request", "memory_request_bytes", size) },
    { key: "mem_lim", label: "Mem % lim", cell: (p) => pctCell(p, "memory_percent_of_limit", "memory_limit", "memory_limit_bytes", size) },
    { key: "disk", label: "Disk r/w", num: true, cell: (p) => pair(human(p, "disk_read", null, rate), human(p, "disk_write", null, rate)) },
    { key: "network", label: "Net rx/tx", num: true, cell: (p) => pair(human(p, "network_recv", null, rate), human(p, "network_sent", null, rate)) },
  ];
  if (containers) cols.push({ key: "containers", label: "Containers", num: true, cell: (p) => POD_KEYS.containers(p) });
  return cols.filter((c) => !hide.includes(c.key));
}

// Pods whose exporter reports containers carry a non-empty `containers` list (pushed pods: empty).
export function hasContainers(pods) {
  return pods.some((p) => Array.isArray(p.containers) && p.containers.length > 0);
}
