// Time charts on the vendored uPlot (aggregator/ui/vendor, MIT, pinned version in VENDOR.md).
import { h } from "./dom.js";
import { axis } from "./fmt.js";

// Byte axes step in binary units (1, 2, 4 … 512 KiB, MiB …) so tick labels come out round.
const BINARY_INCRS = [];
for (let unit = 1; unit <= 2 ** 50; unit *= 1024) {
  for (let m = 1; m < 1024; m *= 2) BINARY_INCRS.push(m * unit);
}

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// A chart panel: title + uPlot with the given series. series: [{label, color?, dash?}]
export class TimeChart {
  constructor(title, kind, series) {
    this.kind = kind;
    this.series = series;
    this.host = h("div", { class: "chart", role: "img", "aria-label": `${title} chart` });
    this.el = h("section", { class: "panel" }, h("h2", { text: title }), this.host);
    this.plot = null;
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(this.host);
  }

  width() {
    return Math.max(240, Math.floor(this.host.clientWidth || 480));
  }

  make(data) {
    const text = css("--text"), grid = css("--grid");
    const palette = [css("--s1"), css("--s2"), css("--s3"), css("--s4")];
    const fmt = axis(this.kind);
    const opts = {
      width: this.width(),
      height: 200,
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
      axes: [
        { stroke: text, grid: { stroke: grid }, ticks: { stroke: grid } },
        { stroke: text, grid: { stroke: grid }, ticks: { stroke: grid }, size: 84,
          incrs: this.kind === "cpu" ? undefined : BINARY_INCRS, values: (u, vals) => vals.map(fmt) },
      ],
      series: [{}, ...this.series.map((s, i) => ({
        label: s.label,
        stroke: s.color || palette[i % palette.length],
        width: s.dash ? 1 : 1.5,
        dash: s.dash ? [6, 4] : undefined,
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)),
        spanGaps: false,
      }))],
      legend: { live: true },
    };
    this.plot = new window.uPlot(opts, data, this.host);
  }

  setData(data) {
    if (!window.uPlot) return;
    if (!this.plot) this.make(data);
    else this.plot.setData(data);
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: 200 });
  }

  destroy() {
    this.observer.disconnect();
    if (this.plot) this.plot.destroy();
  }
}

// A constant reference line (capacity, request, limit) over the chart's x values.
export function flat(xs, value) {
  return xs.map(() => (value === null || value === undefined ? null : value));
}
