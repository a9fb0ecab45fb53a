// Pod listing queries. The query is sent to /api/pods as filters, sort and a page size; the page
// applies the same filters and order to what comes back, so it shows the same rows whether the
// server filtered (large clusters: one small page) or answered the whole listing.
import { get, qs } from "./api.js";
import { h, link, bar, sortRows } from "./dom.js";
import { human, cores, size, rate, percent } from "./fmt.js";
import { enc } from "./api.js";

const sum = (a, b) => (a === null || a === undefined ? b : b === null || b === undefined ? a : a + b);

export const POD_KEYS = {
  name: (p) => p.pod_name,
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
  containers: (p) => (Array.isArray(p.containers) ? p.containers.length : null),
};

export function podHref(p) {
  return `#/pods/${enc(p.namespace)}/${enc(p.pod_name)}`;
}

export function matches(p, f) {
  if (f.ns && p.namespace !== f.ns) return false;
  if (f.node && p.node_name !== f.node) return false;
  if (f.dep && p.deployment !== f.dep) return false;
  if (f.q && !p.pod_name.includes(f.q.toLowerCase())) return false;
  return true;
}

// Filters {ns, node, dep, q}, sort {key, dir}, limit → {pods (filtered, sorted, cut), total, server}.
export async function queryPods(f, sort, limit, { signal } = {}) {
  const doc = await get("/api/pods" + qs({ namespace: f.ns, node: f.node, deployment: f.dep }), { signal });
  const all = doc.pods || [];
  let rows = all.filter((p) => matches(p, f));
  rows = sortRows(rows, POD_KEYS[sort.key] || POD_KEYS.name, sort.dir);
  return { pods: limit ? rows.slice(0, limit) : rows, total: rows.length, all };
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
    { key: "disk", label: "Disk r/w", num: true, cell: (p) => `${human(p, "disk_read", null, rate)} / ${human(p, "disk_write", null, rate)}` },
    { key: "network", label: "Net rx/tx", num: true, cell: (p) => `${human(p, "network_recv", null, rate)} / ${human(p, "network_sent", null, rate)}` },
  ];
  if (containers) cols.push({ key: "containers", label: "Containers", num: true, cell: (p) => POD_KEYS.containers(p) });
  return cols.filter((c) => !hide.includes(c.key));
}

export function hasContainers(pods) {
  return pods.some((p) => Array.isArray(p.containers));
}
