// A trial's architecture as a DAG: levels left to right (input first, output last), each
// unit a box with its neuron count; predecessor edges (skips over levels dashed), and
// lateral edges between units of one level as arcs on the right.
//
// The architecture JSON (app/nas/space.py, Architecture.to_dict):
//   {input_dim, learning_rate, loss, levels: [[{neurons, activation, predecessors: [[level, unit]]}]]}
// levels[i] is level i + 1; level 0 is the input (one unit); the last level is the output.

import { clear, s } from "./dom.js";

const BOX_W = 96;
const BOX_H = 46;
const COL_W = 168;
const ROW_H = 66;
const PAD = 24;
const HEADER = 26;

let drawings = 0;

function levelsOf(spec) {
  return spec && Array.isArray(spec.levels) ? spec.levels.map((level) => (Array.isArray(level) ? level : [])) : [];
}

/** Counts used by captions and tests: units (input excluded) and edges of each kind. */
export function architectureCounts(spec) {
  const levels = levelsOf(spec);
  let units = 0;
  let predecessor = 0;
  let lateral = 0;
  levels.forEach((level, i) => {
    for (const unit of level) {
      units += 1;
      for (const [pl] of unit.predecessors || []) {
        if (Number(pl) === i + 1) lateral += 1;
        else predecessor += 1;
      }
    }
  });
  return { levels: levels.length, units, predecessor, lateral };
}

export function drawArchitecture(svg, spec) {
  clear(svg);
  const levels = levelsOf(spec);
  const arrow = `dag-arrow-${(drawings += 1)}`;
  const columns = [[{ input: true }], ...levels];
  const tallest = Math.max(...columns.map((c) => c.length), 1);
  // Edges that skip levels arc over the boxes between (higher the longer the skip).
  const arc = (span) => 22 + 16 * (span - 2);
  const top = PAD + HEADER + (columns.length > 2 ? arc(columns.length - 1) * 0.75 : 0);
  const width = PAD * 2 + (columns.length - 1) * COL_W + BOX_W + 60;
  const height = top + tallest * ROW_H + PAD;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));

  const position = (level, index) => {
    const count = columns[level] ? columns[level].length : 1;
    const x = PAD + level * COL_W;
    const y = top + ((tallest - count) * ROW_H) / 2 + index * ROW_H + (ROW_H - BOX_H) / 2;
    return { x, y };
  };

  svg.append(
    s(
      "defs",
      {},
      s(
        "marker",
        { id: arrow, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "dag-arrowhead" }),
      ),
    ),
  );

  const headers = s("g", { class: "dag-headers" });
  columns.forEach((_, level) => {
    const label = level === 0 ? "input" : level === columns.length - 1 ? "output" : `level ${level}`;
    headers.append(s("text", { x: PAD + level * COL_W + BOX_W / 2, y: PAD + 4, "text-anchor": "middle", text: label }));
  });
  svg.append(headers);

  const edges = s("g", { class: "dag-edges" });
  levels.forEach((level, i) => {
    const lv = i + 1;
    level.forEach((unit, ix) => {
      const to = position(lv, ix);
      for (const pred of unit.predecessors || []) {
        const [pl, pi] = pred.map(Number);
        const from = position(pl, pi);
        let d;
        let cls;
        if (pl === lv) {
          // Lateral: same level, from a lower-index unit; an arc bulging to the right.
          const bulge = BOX_W + 26 + 10 * Math.abs(ix - pi);
          d = `M${from.x + BOX_W},${from.y + BOX_H / 2} C${from.x + bulge},${from.y + BOX_H / 2} ${to.x + bulge},${to.y + BOX_H / 2} ${to.x + BOX_W + 2},${to.y + BOX_H / 2}`;
          cls = "dag-edge dag-lateral";
        } else {
          const x1 = from.x + BOX_W;
          const y1 = from.y + BOX_H / 2;
          const x2 = to.x - 2;
          const y2 = to.y + BOX_H / 2;
          const span = lv - pl;
          if (span > 1) {
            // Leaves the top of its box, arcs over the levels it skips, enters from the left.
            const lift = Math.min(y1, y2) - BOX_H / 2 - arc(span);
            d = `M${from.x + BOX_W / 2},${from.y} C${from.x + BOX_W / 2},${lift} ${x2 - 40},${lift} ${x2},${y2}`;
            cls = "dag-edge dag-predecessor dag-skip";
          } else {
            const mid = (x2 - x1) / 2;
            d = `M${x1},${y1} C${x1 + mid},${y1} ${x2 - mid},${y2} ${x2},${y2}`;
            cls = "dag-edge dag-predecessor";
          }
        }
        edges.append(
          s(
            "path",
            { d, class: cls, "marker-end": `url(#${arrow})`, "data-from": `${pl}.${pi}`, "data-to": `${lv}.${ix}` },
            s("title", { text: `level ${pl} unit ${pi} → level ${lv} unit ${ix}` }),
          ),
        );
      }
    });
  });
  svg.append(edges);

  const nodes = s("g", { class: "dag-nodes" });
  const input = position(0, 0);
  nodes.append(
    s(
      "g",
      { class: "dag-node dag-input", transform: `translate(${input.x} ${input.y})` },
      s("rect", { width: BOX_W, height: BOX_H, rx: 6 }),
      s("text", { x: BOX_W / 2, y: 20, "text-anchor": "middle", class: "dag-neurons", text: spec && spec.input_dim != null ? spec.input_dim : "?" }),
      s("text", { x: BOX_W / 2, y: 36, "text-anchor": "middle", class: "dag-activation", text: "features" }),
      s("title", { text: `input: ${spec && spec.input_dim} features` }),
    ),
  );
  levels.forEach((level, i) => {
    const lv = i + 1;
    const output = lv === levels.length;
    level.forEach((unit, ix) => {
      const { x, y } = position(lv, ix);
      nodes.append(
        s(
          "g",
          {
            class: ["dag-node", "dag-unit", output && "dag-output"],
            transform: `translate(${x} ${y})`,
            "data-level": lv,
            "data-unit": ix,
            "data-neurons": unit.neurons,
          },
          s("rect", { width: BOX_W, height: BOX_H, rx: 6 }),
          s("text", { x: BOX_W / 2, y: 20, "text-anchor": "middle", class: "dag-neurons", text: unit.neurons }),
          s("text", { x: BOX_W / 2, y: 36, "text-anchor": "middle", class: "dag-activation", text: unit.activation }),
          s("title", {
            text: `level ${lv} unit ${ix}: ${unit.neurons} neurons, ${unit.activation}; reads ${(unit.predecessors || [])
              .map((p) => `${p[0]}.${p[1]}`)
              .join(", ")}`,
          }),
        ),
      );
    });
  });
  svg.append(nodes);
}
