// Small SVG charts built with DOM calls (no library, nothing inline for the CSP to refuse).

import { clear, formatScore, s } from "./dom.js";

const DEFAULT_WIDTH = 640;
const MARGIN = { top: 16, right: 16, bottom: 40, left: 64 };

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= raw) || raw;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks = [];
  for (let i = first; i <= last; i += 1) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

function integerTicks(lo, hi, count = 8) {
  const step = Math.max(1, Math.ceil((hi - lo) / count));
  const ticks = [];
  for (let v = Math.floor(lo); v <= hi; v += step) ticks.push(v);
  return ticks;
}

function tickLabel(value, integer) {
  if (integer) return String(Math.round(value));
  const n = Math.abs(value);
  if (n !== 0 && (n < 0.001 || n >= 100000)) return value.toExponential(1);
  return String(Number(value.toPrecision(4)));
}

/**
 * Draw `series` into `svg` (replacing what it held).
 * series: [{name, cls, points: [{x, y, title?, hollow?}], line: "none"|"straight"|"step", markers}]
 */
export function drawChart(svg, { series, xLabel, yLabel, xInteger = true, empty = "No data yet" }) {
  clear(svg);
  // Drawn at the size it is shown, so text stays readable on a narrow window.
  const WIDTH = Math.round(Math.max(300, svg.getBoundingClientRect().width || DEFAULT_WIDTH));
  const HEIGHT = Math.round(Math.min(300, Math.max(200, WIDTH * 0.45)));
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  const all = series.flatMap((serie) => serie.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  if (!all.length) {
    svg.append(s("text", { x: WIDTH / 2, y: HEIGHT / 2, class: "chart-empty", "text-anchor": "middle", text: empty }));
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  const yTicks = niceTicks(Math.min(...all.map((p) => p.y)), Math.max(...all.map((p) => p.y)));
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const xTicks = xInteger ? integerTicks(x0, x1) : niceTicks(x0, x1);
  const sx = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y) => MARGIN.top + plotH - ((y - y0) / (y1 - y0 || 1)) * plotH;

  const axes = s("g", { class: "chart-axes" });
  for (const t of yTicks) {
    axes.append(
      s("line", { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: sy(t), y2: sy(t), class: "chart-grid" }),
      s("text", { x: MARGIN.left - 6, y: sy(t) + 4, "text-anchor": "end", text: tickLabel(t, false) }),
    );
  }
  for (const t of xTicks) {
    if (t < x0 || t > x1) continue;
    axes.append(
      s("line", { x1: sx(t), x2: sx(t), y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4, class: "chart-tick" }),
      s("text", { x: sx(t), y: MARGIN.top + plotH + 18, "text-anchor": "middle", text: tickLabel(t, xInteger) }),
    );
  }
  axes.append(
    s("line", { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH, class: "chart-axis" }),
    s("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotH, class: "chart-axis" }),
    s("text", { x: MARGIN.left + plotW / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "chart-label", text: xLabel }),
    s("text", {
      x: 14,
      y: MARGIN.top + plotH / 2,
      "text-anchor": "middle",
      class: "chart-label",
      transform: `rotate(-90 14 ${MARGIN.top + plotH / 2})`,
      text: yLabel,
    }),
  );
  svg.append(axes);

  for (const serie of series) {
    const pts = serie.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    const g = s("g", { class: ["chart-series", serie.cls], "data-series": serie.name });
    if (serie.line !== "none" && pts.length > 1) {
      let d = `M${sx(pts[0].x)},${sy(pts[0].y)}`;
      for (let i = 1; i < pts.length; i += 1) {
        if (serie.line === "step") d += ` H${sx(pts[i].x)}`;
        d += ` L${sx(pts[i].x)},${sy(pts[i].y)}`;
      }
      g.append(s("path", { d, class: "chart-line" }));
    }
    if (serie.markers) {
      for (const p of pts) {
        g.append(
          s(
            "circle",
            { cx: sx(p.x), cy: sy(p.y), r: 4.5, class: ["chart-point", p.hollow && "hollow", p.cls], "data-x": p.x },
            s("title", { text: p.title || `${p.x}: ${formatScore(p.y)}` }),
          ),
        );
      }
    }
    svg.append(g);
  }
}

