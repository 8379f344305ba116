// The runs list: newest first, filtered by status, rows kept current by the global stream.

import { ApiError, LiveStream, get } from "./api.js";
import { clear, formatScore, formatTime, h, problemBox, shortId, statusBadge } from "./dom.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const PAGE = 50;
// Run and step events and trial starts and ends (every name ending in "ed"), not the
// per-epoch ones: `*` inside a segment matches any characters (README, Patterns).
const LIST_PATTERN = "cerebros.nas.*.*ed";

function progressOf(run) {
  const p = run.progress;
  if (p) return { done: p.trials_done, total: p.trials_total, best: p.best_score, step: p.current_step };
  const r = run.result || {};
  return {
    done: r.trials_completed ?? null,
    total: run.spec?.budget?.max_trials ?? null,
    best: r.best_score ?? null,
    step: run.current_step,
  };
}

export function runsView(main, { query, navigate }) {
  const filter = STATUSES.includes(query.get("status")) ? query.get("status") : "";
  const rows = new Map();
  const pending = new Map();
  let cursor = null;
  let disposed = false;
  let missed = false;

  const select = h(
    "select",
    {
      id: "status-filter",
      onchange: () => navigate(select.value ? `#/runs?status=${encodeURIComponent(select.value)}` : "#/runs"),
    },
    h("option", { value: "", text: "all", selected: filter === "" }),
    STATUSES.map((st) => h("option", { value: st, text: st, selected: filter === st })),
  );
  const live = h("span", { class: "live", "data-state": "connecting", text: "connecting" });
  const notice = h("div", { class: "notice-area", "aria-live": "polite" });
  const body = h("tbody");
  const more = h("button", { type: "button", class: "btn", hidden: true, onclick: () => load(true) }, "Older runs");

  main.append(
    h(
      "section",
      { class: "runs-page", "aria-labelledby": "runs-title" },
      h(
        "div",
        { class: "page-head" },
        h("h2", { id: "runs-title" }, "Runs"),
        h(
          "div",
          { class: "actions" },
          h("label", { for: "status-filter", class: "inline" }, "Status "),
          select,
          h("button", { type: "button", class: "btn", onclick: () => load(false) }, "Refresh"),
          h("a", { href: "#/new", class: "btn btn-primary" }, "New run"),
          live,
        ),
      ),
      notice,
      h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "runs", id: "runs" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Run", "Status", "Dataset", "Objective", "Best score", "Progress", "Created", "Owner"].map((label, i) =>
                h("th", { scope: "col", class: [i === 4 && "num", i >= 6 && "wide-only"], text: label }),
              ),
            ),
          ),
          body,
        ),
      ),
      more,
    ),
  );

  function renderRow(run) {
    const p = progressOf(run);
    const cells = [
      h("td", {}, h("a", { href: `#/runs/${run.id}`, title: run.id, class: "run-link", text: shortId(run.id) })),
      h("td", {}, statusBadge(run.status)),
      h("td", { text: run.spec?.dataset_id ?? "—" }),
      h("td", { text: run.spec?.objective ?? "—" }),
      h("td", { class: "num", "data-col": "best", text: formatScore(p.best) }),
      h(
        "td",
        { "data-col": "progress" },
        p.total
          ? h("span", { class: "progress-cell" }, h("progress", { max: p.total, value: Math.min(p.done ?? 0, p.total), "aria-label": "Trials done" }), ` ${p.done ?? "?"} / ${p.total}`)
          : "—",
        run.status === "running" && p.step ? h("span", { class: "step-hint", text: p.step }) : null,
      ),
      h("td", { class: "wide-only", text: formatTime(run.created_at) }),
      h("td", { class: "wide-only", "data-col": "owner", text: run.owner }),
    ];
    const tr = h("tr", { "data-run-id": run.id, "data-status": run.status }, cells);
    const old = rows.get(run.id);
    if (old) old.tr.replaceWith(tr);
    rows.set(run.id, { run, tr });
    return tr;
  }

  function showEmpty() {
    if (!rows.size && !body.querySelector(".empty")) {
      body.append(h("tr", { class: "empty" }, h("td", { colspan: 8, text: filter ? `No ${filter} run.` : "No run yet: start one with New run." })));
    } else if (rows.size) {
      body.querySelector(".empty")?.remove();
    }
  }

  async function load(older) {
    try {
      const page = await get("/runs", { params: { status: filter, limit: PAGE, cursor: older ? cursor : null } });
      if (disposed) return;
      clear(notice);
      if (!older) {
        rows.clear();
        clear(body);
      }
      for (const run of page.items) {
        body.append(renderRow(run));
        if (!FINAL.has(run.status) || !run.result) refresh(run.id);
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
      showEmpty();
    } catch (err) {
      if (!disposed && !(err instanceof ApiError && err.status === 401)) {
        clear(notice).append(problemBox(err.problem || { title: String(err) }, { heading: "Could not list the runs" }));
      }
    }
  }

  // Detail reads (progress, best score) are queued, a few at a time.
  const queue = [];
  let active = 0;
  function refresh(runId) {
    if (!queue.includes(runId)) queue.push(runId);
    pump();
  }
  function pump() {
    while (active < 4 && queue.length) {
      const runId = queue.shift();
      active += 1;
      get(`/runs/${runId}`)
        .then((run) => {
          if (disposed) return;
          if (filter && run.status !== filter) {
            rows.get(run.id)?.tr.remove();
            rows.delete(run.id);
            showEmpty();
          } else if (rows.has(run.id)) {
            renderRow(run);
          }
        })
        .catch(() => {})
        .finally(() => {
          active -= 1;
          pump();
        });
    }
  }

  function soon(key, fn, wait) {
    if (pending.has(key)) return;
    pending.set(
      key,
      setTimeout(() => {
        pending.delete(key);
        if (!disposed) fn();
      }, wait),
    );
  }

  const stream = new LiveStream("/events/stream", {
    pattern: LIST_PATTERN,
    onEvent: (event) => {
      if (rows.has(event.run_id)) soon(event.run_id, () => refresh(event.run_id), 250);
      else if (String(event.name).startsWith("cerebros.nas.run.")) soon("list", () => load(false), 500);
    },
    onStatus: (status) => {
      live.dataset.state = status;
      live.textContent = status;
      // Back after a drop: what changed meanwhile without an event we resumed from is reread.
      if (status === "reconnecting") missed = true;
      if (status === "live" && missed) {
        missed = false;
        soon("list", () => load(false), 500);
      }
    },
  });

  load(false).then(() => {
    if (!disposed) stream.start();
  });

  return () => {
    disposed = true;
    stream.close();
    pending.forEach((t) => clearTimeout(t));
  };
}
