// DOM helpers. Every string goes in as text (textContent or a text node), never as HTML:
// run specs, owners, error messages and event payloads come from users.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked" || key === "selected" || key === "disabled" || key === "hidden") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("td", {class: "num"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function formatScore(value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return "—";
  const n = Number(value);
  return Math.abs(n) >= 1000 ? n.toPrecision(6) : n.toFixed(4);
}

export function formatInt(value) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString("en-US");
}

export function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const total = Math.max(0, Math.round(seconds));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

export function statusBadge(status) {
  const known = ["queued", "running", "succeeded", "failed", "cancelled", "completed", "pruned", "pending", "undone"];
  const cls = known.includes(status) ? status : "other";
  return h("span", { class: ["badge", `badge-${cls}`], text: status || "—" });
}

/** An API problem (RFC 9457) as a box: title and status, detail, then each field's message. */
export function problemBox(problem, { heading } = {}) {
  const p = problem || {};
  const errors = Array.isArray(p.errors) ? p.errors : [];
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("p", { class: "problem-title" }, heading || p.title || "Error", p.status ? ` (${p.status})` : ""),
    p.detail ? h("p", { class: "problem-detail", text: p.detail }) : null,
    errors.length
      ? h(
          "ul",
          { class: "problem-fields" },
          errors.map((e) => h("li", {}, h("code", { text: e.field }), ": ", e.message)),
        )
      : null,
  );
}
