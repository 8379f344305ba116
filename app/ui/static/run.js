// One run: live progress, the score of every trial, the running trial's epoch curves, the
// saga's steps, the trials table and the architecture of a selected trial.

import { ApiError, LiveStream, call, get, post } from "./api.js";
import { drawChart } from "./charts.js";
import { architectureCounts, drawArchitecture } from "./dag.js";
import { clear, formatDuration, formatInt, formatScore, formatTime, h, problemBox, s, statusBadge } from "./dom.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const FINISHED_TRIAL = new Set(["completed", "pruned", "failed", "cancelled"]);
// The run saga's steps, in order (app/pipeline/run_saga.py); others seen in events are added.
const STEPS = [
  "check_enabled",
  "ensure_run_id",
  "publish_start_event",
  "execute_nas_run",
  "process_results",
  "publish_complete_event",
  "store_result",
];
const TRIAL_COLUMNS = [
  { key: "number", label: "Trial", num: true },
  { key: "status", label: "Status" },
  { key: "score", label: "Score", num: true },
  { key: "best_epoch", label: "Best epoch", num: true },
  { key: "epochs_run", label: "Epochs", num: true },
  { key: "params_count", label: "Parameters", num: true },
  { key: "shape", label: "Levels · units · neurons", num: true },
  { key: "duration_s", label: "Duration", num: true },
];

function finite(x) {
  return x !== null && x !== undefined && Number.isFinite(Number(x));
}

function metricPairs(objective, rows) {
  const keys = new Set(rows.flatMap((row) => Object.keys(row)).filter((k) => k !== "epoch"));
  const base = (objective || "val_loss").replace(/^val_/, "");
  const pairs = [];
  const pair = (name) => [name, `val_${name}`].filter((k) => keys.has(k));
  if (pair(base).length) pairs.push({ title: base, keys: pair(base) });
  if (base !== "loss" && pair("loss").length) pairs.push({ title: "loss", keys: pair("loss") });
  return pairs;
}

export function runView(main, { id }) {
  const state = {
    run: null,
    trials: new Map(),
    objective: null,
    direction: null,
    steps: new Map(STEPS.map((name) => [name, { state: "pending" }])),
    epochs: new Map(),
    liveTrial: null,
    selected: null,
    details: new Map(),
    sort: { key: "number", dir: 1 },
    dagShown: null,
  };
  const timers = [];
  let stream = null;
  let disposed = false;

  // --- skeleton ------------------------------------------------------------------------
  const title = h("h2", {}, "Run ", h("code", { class: "run-id", text: id }));
  const badge = h("span", { class: "run-status" });
  const downloadBtn = h("button", { type: "button", class: "btn", hidden: true, onclick: download }, "Download model");
  const cancelBtn = h("button", { type: "button", class: "btn btn-danger", hidden: true, onclick: askCancel }, "Cancel run");
  const confirmBox = h(
    "div",
    { class: "confirm", hidden: true, role: "group", "aria-label": "Confirm cancel" },
    h("span", { text: "Cancel this run? Its completed steps are undone." }),
    h("button", { type: "button", class: "btn btn-danger", onclick: doCancel }, "Yes, cancel it"),
    h("button", { type: "button", class: "btn", onclick: () => showConfirm(false) }, "Keep it running"),
  );
  const notice = h("div", { class: "notice-area", "aria-live": "polite" });
  const runError = h("div", { class: "run-error" });
  const facts = h("dl", { class: "facts" });

  const trialsProgress = h("progress", { max: 1, value: 0, "aria-label": "Trials done" });
  const trialsText = h("span", { class: "stat-value", "data-stat": "trials" });
  const epochsText = h("span", { class: "stat-value", "data-stat": "epochs" });
  const elapsedText = h("span", { class: "stat-value", "data-stat": "elapsed" });
  const stepText = h("span", { class: "stat-value", "data-stat": "step" });
  const streamState = h("span", { class: "live", "data-state": "connecting", text: "connecting" });

  const scoreSvg = s("svg", { class: "chart", id: "score-chart", role: "img", "aria-label": "Score of every trial" });
  const scoreCaption = h("figcaption", {}, "Score by trial");
  const epochSvg = s("svg", { class: "chart", id: "epoch-chart", role: "img", "aria-label": "Epoch curves" });
  const lossSvg = s("svg", { class: "chart", id: "loss-chart", role: "img", "aria-label": "Loss curves" });
  const epochCaption = h("figcaption", {}, "Epoch curves");
  const epochLegend = h("ul", { class: "legend" });
  const followBtn = h("button", { type: "button", class: "btn btn-small", hidden: true, onclick: followLive }, "Follow the running trial");

  const stepsList = h("ol", { class: "steps", id: "steps" });
  const trialsHead = h("tr");
  const trialsBody = h("tbody");
  const dagCaption = h("h3", { id: "dag-title" }, "Architecture");
  const dagFacts = h("p", { class: "dag-facts" });
  const dagSvg = s("svg", { class: "dag", id: "dag", role: "img", "aria-labelledby": "dag-title" });
  const dagArea = h("div", { class: "dag-scroll", tabindex: 0, "aria-label": "Architecture drawing (scrollable)" }, dagSvg);

  main.append(
    h(
      "section",
      { class: "run-page", "aria-labelledby": "run-title" },
      h("div", { class: "page-head" }, h("div", { class: "title-line", id: "run-title" }, title, badge), h("div", { class: "actions" }, downloadBtn, cancelBtn)),
      confirmBox,
      notice,
      runError,
      facts,
      h(
        "div",
        { class: "stats", id: "run-progress" },
        h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Trials"), trialsProgress, trialsText),
        h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Epochs"), epochsText),
        h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Elapsed"), elapsedText),
        h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Step"), stepText),
        h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Events"), streamState),
      ),
      h(
        "div",
        { class: "grid" },
        h(
          "div",
          { class: "column" },
          h("figure", { class: "panel" }, scoreCaption, scoreSvg, h("ul", { class: "legend" }, h("li", { class: "key-points" }, "trial score (hollow: pruned)"), h("li", { class: "key-best" }, "best so far"))),
          h("section", { class: "panel", "aria-labelledby": "steps-title" }, h("h3", { id: "steps-title" }, "Saga steps"), stepsList),
        ),
        h("figure", { class: "panel" }, h("div", { class: "panel-head" }, epochCaption, followBtn), epochSvg, lossSvg, epochLegend),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "trials-title" },
        h("h3", { id: "trials-title" }, "Trials"),
        h("p", { class: "hint" }, "Select a trial to see its architecture and epoch curves."),
        h("div", { class: "table-scroll" }, h("table", { class: "trials", id: "trials" }, h("thead", {}, trialsHead), trialsBody)),
      ),
      h("section", { class: "panel", "aria-labelledby": "dag-title" }, dagCaption, dagFacts, dagArea, h("ul", { class: "legend" }, h("li", { class: "key-edge" }, "predecessor"), h("li", { class: "key-skip" }, "skips levels"), h("li", { class: "key-lateral" }, "lateral (same level)"))),
    ),
  );

  // --- data ----------------------------------------------------------------------------
  function showProblem(err, heading) {
    clear(notice);
    if (err) notice.append(problemBox(err instanceof ApiError ? err.problem : { title: String(err) }, { heading }));
  }

  async function loadRun() {
    try {
      const run = await get(`/runs/${id}`);
      if (disposed) return;
      state.run = run;
      renderRun();
    } catch (err) {
      if (!disposed) showProblem(err, err.status === 404 ? "Run not found" : "Could not load the run");
      throw err;
    }
  }

  async function loadTrials() {
    try {
      const list = await get(`/runs/${id}/trials`);
      if (disposed) return;
      state.objective = list.objective;
      state.direction = list.direction;
      for (const trial of list.items) state.trials.set(trial.number, { ...state.trials.get(trial.number), ...trial });
      renderTrials();
      renderScores();
      renderDag();
      render("progress", "epochs");
    } catch (err) {
      if (!disposed && !(err instanceof ApiError && err.status === 401)) showProblem(err, "Could not load the trials");
    }
  }

  const pending = new Map();
  function soon(key, fn, wait = 300) {
    if (pending.has(key)) return;
    pending.set(
      key,
      setTimeout(() => {
        pending.delete(key);
        if (!disposed) fn().catch(() => {});
      }, wait),
    );
  }

  let frame = 0;
  const dirty = new Set();
  function render(...parts) {
    for (const part of parts) dirty.add(part);
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (disposed) return;
      const parts = new Set(dirty);
      dirty.clear();
      if (parts.has("trials")) renderTrials();
      if (parts.has("scores")) renderScores();
      if (parts.has("epochs")) renderEpochs();
      if (parts.has("steps")) renderSteps();
      if (parts.has("progress")) renderProgress();
      if (parts.has("dag")) renderDag();
    });
  }

  function onEvent(event) {
    const p = event.payload || {};
    const name = event.name || "";
    if (name.startsWith("cerebros.nas.step.")) {
      const what = name.slice("cerebros.nas.step.".length);
      const step = state.steps.get(p.step) || {};
      if (what === "started") Object.assign(step, { state: "running", attempt: p.attempt });
      else if (what === "succeeded") Object.assign(step, { state: "succeeded" });
      else if (what === "failed") Object.assign(step, { state: "failed", message: `${p.error || ""}: ${p.message || ""}` });
      else if (what === "undone") Object.assign(step, { state: p.undo_failed ? "undo_failed" : "undone", message: p.error || step.message });
      state.steps.set(p.step, step);
      render("steps");
      if (what === "started" && state.run) {
        state.run.current_step = p.step;
        render("progress");
      }
    } else if (name === "cerebros.nas.trial.started") {
      const trial = state.trials.get(p.trial) || { number: p.trial, epochs_run: 0 };
      Object.assign(trial, { status: "running", params_count: p.params_count });
      state.trials.set(p.trial, trial);
      state.liveTrial = p.trial;
      state.epochs.set(p.trial, []);
      render("trials", "epochs", "progress", "dag");
    } else if (name === "cerebros.nas.trial.epoch") {
      const rows = state.epochs.get(p.trial) || [];
      rows.push({ epoch: p.epoch, ...(p.metrics || {}) });
      state.epochs.set(p.trial, rows);
      const trial = state.trials.get(p.trial) || { number: p.trial, status: "running" };
      trial.epochs_run = Math.max(trial.epochs_run || 0, rows.length);
      state.trials.set(p.trial, trial);
      state.liveTrial = p.trial;
      render("epochs", "trials", "progress");
    } else if (name.startsWith("cerebros.nas.trial.")) {
      const trial = state.trials.get(p.trial) || { number: p.trial };
      Object.assign(trial, { status: p.status, score: p.score, best_epoch: p.best_epoch, epochs_run: p.epochs_run });
      state.trials.set(p.trial, trial);
      render("trials", "scores", "progress");
      soon("trials", loadTrials);
      soon("run", loadRun);
    } else if (name.startsWith("cerebros.nas.run.")) {
      soon("run", loadRun, 100);
      soon("trials", loadTrials);
    }
  }

  // --- rendering -----------------------------------------------------------------------
  function renderRun() {
    const run = state.run;
    clear(badge).append(statusBadge(run.status));
    badge.dataset.status = run.status;
    downloadBtn.hidden = run.status !== "succeeded";
    cancelBtn.hidden = FINAL.has(run.status);
    if (FINAL.has(run.status)) showConfirm(false);
    const spec = run.spec || {};
    const params = spec.parameters || {};
    const entries = [
      ["Dataset", spec.dataset_id],
      ["Objective", `${spec.objective || state.objective || "—"}${state.direction ? ` (${state.direction})` : ""}`],
      ["Strategy", params.strategy || "asha"],  // the service's default
      ["Budget", `${spec.budget?.max_trials ?? "—"} trials × ${params.epochs ?? "—"} epochs`],
      ["Owner", run.owner],
      ["Created", formatTime(run.created_at)],
      ["Started", formatTime(run.started_at)],
      ["Finished", formatTime(run.finished_at)],
    ];
    if (run.result && finite(run.result.best_score)) entries.push(["Best", `${formatScore(run.result.best_score)} (trial ${run.result.best_trial})`]);
    clear(facts).append(...entries.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v ?? "—" })]));
    clear(runError);
    if (run.error) {
      const e = run.error;
      runError.append(
        h(
          "div",
          { class: "problem", role: "alert" },
          h("p", { class: "problem-title" }, `Run ${run.status}`, e.step ? ` at step ${e.step}` : ""),
          h("p", { class: "problem-detail", "data-field": "error-message" }, e.type ? `${e.type}: ` : "", e.message || ""),
        ),
      );
    }
    renderProgress();
    if (FINAL.has(run.status)) render("dag");
  }

  function renderProgress() {
    const run = state.run;
    if (!run) return;
    const progress = run.progress || {};
    const total = progress.trials_total || run.spec?.budget?.max_trials || 0;
    const done = progress.trials_done ?? 0;
    trialsProgress.max = Math.max(1, total);
    trialsProgress.value = Math.min(done, total || done);
    trialsText.textContent = `${done} / ${total}`;
    const trials = [...state.trials.values()];
    const epochsRun = trials.reduce((sum, t) => sum + (t.epochs_run || 0), 0);
    const per = run.spec?.parameters?.epochs;
    const live = state.liveTrial !== null ? state.trials.get(state.liveTrial) : null;
    epochsText.textContent =
      live && live.status === "running" && !FINAL.has(run.status)
        ? `trial ${live.number}: ${live.epochs_run || 0}${per ? ` / ${per}` : ""} · ${epochsRun} in all`
        : `${epochsRun} in all`;
    const started = run.started_at ? Date.parse(run.started_at) : null;
    const ended = run.finished_at ? Date.parse(run.finished_at) : Date.now();
    elapsedText.textContent = started ? formatDuration((ended - started) / 1000) : "—";
    stepText.textContent = run.current_step || progress.current_step || "—";
  }

  function renderScores() {
    const trials = [...state.trials.values()].filter((t) => finite(t.score)).sort((a, b) => a.number - b.number);
    const better = state.direction === "min" ? (a, b) => a < b : (a, b) => a > b;
    const best = [];
    let bestSoFar = null;
    for (const t of trials) {
      if (bestSoFar === null || better(t.score, bestSoFar)) bestSoFar = t.score;
      best.push({ x: t.number, y: bestSoFar });
    }
    scoreCaption.textContent = `Score by trial${state.objective ? ` (${state.objective}${state.direction ? `, ${state.direction}` : ""})` : ""}`;
    drawChart(scoreSvg, {
      xLabel: "trial",
      yLabel: state.objective || "score",
      empty: "No finished trial yet",
      series: [
        { name: "best so far", cls: "series-best", points: best, line: "step", markers: false },
        {
          name: "trials",
          cls: "series-trials",
          line: "none",
          markers: true,
          points: trials.map((t) => ({ x: t.number, y: Number(t.score), hollow: t.status === "pruned", title: `trial ${t.number} (${t.status}): ${formatScore(t.score)}` })),
        },
      ],
    });
    scoreSvg.dataset.points = String(trials.length);
  }

  /** The trial whose epochs are drawn: the selected one, else the best of a finished run,
   * else the one training now (or the latest). */
  function shownTrial() {
    if (state.selected !== null) return state.selected;
    const best = state.run?.result?.best_trial;
    if (state.run && FINAL.has(state.run.status) && best !== undefined && best !== null) return best;
    return state.liveTrial !== null ? state.liveTrial : dagTrial();
  }

  function epochRows(number) {
    const live = state.epochs.get(number);
    const detail = state.details.get(number);
    if (detail && Array.isArray(detail.history) && (!live || detail.history.length >= live.length)) return detail.history;
    return live || [];
  }

  function renderEpochs() {
    const number = shownTrial();
    followBtn.hidden = state.selected === null || state.run === null || FINAL.has(state.run.status);
    clear(epochLegend);
    if (number === null || number === undefined) {
      epochCaption.textContent = "Epoch curves";
      drawChart(epochSvg, { series: [], xLabel: "epoch", yLabel: "", empty: "No trial has started yet" });
      clear(lossSvg);
      lossSvg.hidden = true;
      return;
    }
    if (!state.epochs.has(number) && !state.details.has(number)) loadDetail(number);
    const rows = epochRows(number);
    const trial = state.trials.get(number);
    const live = state.selected === null && trial && trial.status === "running";
    epochCaption.textContent = `Epoch curves of trial ${number}${live ? " (live)" : ""}`;
    epochSvg.dataset.trial = String(number);
    epochSvg.dataset.epochs = String(rows.length);
    const pairs = metricPairs(state.objective || state.run?.spec?.objective, rows);
    const charts = [epochSvg, lossSvg];
    charts.forEach((svg, i) => {
      const pair = pairs[i];
      svg.hidden = !pair && i > 0;
      if (!pair) {
        if (i === 0) drawChart(svg, { series: [], xLabel: "epoch", yLabel: "", empty: "No epoch finished yet" });
        else clear(svg);
        return;
      }
      const series = pair.keys.map((key) => ({
        name: key,
        cls: key.startsWith("val_") ? "series-val" : "series-train",
        line: "straight",
        markers: true,
        points: rows.filter((r) => finite(r[key])).map((r) => ({ x: Number(r.epoch), y: Number(r[key]), title: `epoch ${r.epoch}: ${key} ${formatScore(r[key])}` })),
      }));
      drawChart(svg, { series, xLabel: "epoch", yLabel: pair.title, empty: "No epoch finished yet" });
    });
    epochLegend.append(h("li", { class: "key-train" }, "training"), h("li", { class: "key-val" }, "validation"));
  }

  function renderSteps() {
    clear(stepsList);
    for (const [name, step] of state.steps) {
      stepsList.append(
        h(
          "li",
          { "data-step": name, "data-state": step.state },
          h("span", { class: "step-name", text: name }),
          statusBadge(step.state === "undo_failed" ? "failed" : step.state),
          step.attempt > 1 ? h("span", { class: "step-attempt", text: `attempt ${step.attempt}` }) : null,
          step.message ? h("span", { class: "step-message", text: step.message }) : null,
        ),
      );
    }
  }

  function sortValue(trial, key) {
    if (key === "shape") return trial.architecture ? trial.architecture.levels * 100 + trial.architecture.units : null;
    return trial[key];
  }

  function renderTrialsHead() {
    clear(trialsHead);
    for (const col of TRIAL_COLUMNS) {
      const active = state.sort.key === col.key;
      trialsHead.append(
        h(
          "th",
          { scope: "col", class: col.num ? "num" : null, "aria-sort": active ? (state.sort.dir > 0 ? "ascending" : "descending") : "none" },
          h(
            "button",
            {
              type: "button",
              class: "sort",
              "data-sort": col.key,
              onclick: () => {
                state.sort = { key: col.key, dir: active ? -state.sort.dir : 1 };
                renderTrials();
              },
            },
            col.label,
            h("span", { class: "sort-mark", "aria-hidden": "true", text: active ? (state.sort.dir > 0 ? " ▲" : " ▼") : "" }),
          ),
        ),
      );
    }
  }

  function renderTrials() {
    renderTrialsHead();
    const { key, dir } = state.sort;
    const trials = [...state.trials.values()].sort((a, b) => {
      const va = sortValue(a, key);
      const vb = sortValue(b, key);
      if (va === vb) return a.number - b.number;
      if (va === null || va === undefined) return 1;
      if (vb === null || vb === undefined) return -1;
      return (va < vb ? -1 : 1) * dir;
    });
    clear(trialsBody);
    if (!trials.length) {
      trialsBody.append(h("tr", {}, h("td", { colspan: TRIAL_COLUMNS.length, class: "empty", text: "No trial yet" })));
      return;
    }
    const bestTrial = state.run?.result?.best_trial;
    for (const t of trials) {
      const arch = t.architecture;
      const selected = state.selected === t.number;
      trialsBody.append(
        h(
          "tr",
          { "data-trial": t.number, "data-status": t.status, class: [selected && "selected", t.number === bestTrial && "best"], "aria-selected": selected ? "true" : "false", onclick: () => select(t.number) },
          h("td", { class: "num" }, h("button", { type: "button", class: "link", "aria-label": `Show trial ${t.number}`, onclick: (e) => { e.stopPropagation(); select(t.number); } }, `#${t.number}`), t.number === bestTrial ? h("span", { class: "best-mark", title: "best trial", text: " ★" }) : null),
          h("td", {}, statusBadge(t.status)),
          h("td", { class: "num", text: formatScore(t.score) }),
          h("td", { class: "num", text: t.best_epoch ?? "—" }),
          h("td", { class: "num", text: t.epochs_run ?? 0 }),
          h("td", { class: "num", text: formatInt(t.params_count) }),
          h("td", { class: "num", text: arch ? `${arch.levels} · ${arch.units} · ${arch.neurons}` : "—" }),
          h("td", { class: "num", text: finite(t.duration_s) ? `${Number(t.duration_s).toFixed(1)} s` : "—" }),
        ),
      );
    }
  }

  function select(number) {
    state.selected = number;
    render("trials", "epochs", "dag");
    loadDetail(number, true);
  }

  function followLive() {
    state.selected = null;
    render("trials", "epochs", "dag");
  }

  const loading = new Set();
  async function loadDetail(number, force) {
    const cached = state.details.get(number);
    if ((cached && !force && FINISHED_TRIAL.has(cached.status)) || loading.has(number)) return;
    loading.add(number);
    try {
      const detail = await get(`/runs/${id}/trials/${number}`);
      if (disposed) return;
      state.details.set(number, detail);
      render("epochs", "dag");
    } catch (err) {
      if (!disposed) showProblem(err, `Could not load trial ${number}`);
    } finally {
      loading.delete(number);
    }
  }

  function dagTrial() {
    if (state.selected !== null) return state.selected;
    const best = state.run?.result?.best_trial;
    if (best !== undefined && best !== null) return best;
    if (state.liveTrial !== null) return state.liveTrial;
    const numbers = [...state.trials.keys()];
    return numbers.length ? Math.max(...numbers) : null;
  }

  function renderDag() {
    const number = dagTrial();
    if (number === null || number === undefined) {
      dagCaption.textContent = "Architecture";
      dagFacts.textContent = "No trial yet.";
      clear(dagSvg);
      return;
    }
    const detail = state.details.get(number);
    if (!detail) {
      loadDetail(number);
      return;
    }
    const isBest = state.run?.result?.best_trial === number;
    dagCaption.textContent = `Architecture of trial ${number}${isBest ? " (best)" : ""}`;
    if (state.dagShown === number && dagSvg.dataset.units) return;
    const spec = detail.architecture_spec;
    if (!spec) {
      dagFacts.textContent = "This trial has no recorded architecture.";
      clear(dagSvg);
      return;
    }
    drawArchitecture(dagSvg, spec);
    const counts = architectureCounts(spec);
    state.dagShown = number;
    dagSvg.dataset.trial = String(number);
    dagSvg.dataset.units = String(counts.units);
    dagFacts.textContent = `${counts.levels} levels, ${counts.units} units, ${counts.predecessor} predecessor and ${counts.lateral} lateral connections · input ${spec.input_dim} features · learning rate ${spec.learning_rate} · ${formatInt(detail.params_count)} parameters`;
  }

  // --- actions -------------------------------------------------------------------------
  function showConfirm(show) {
    confirmBox.hidden = !show;
    cancelBtn.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) confirmBox.querySelector("button").focus();
  }

  function askCancel() {
    showConfirm(true);
  }

  async function doCancel() {
    showConfirm(false);
    try {
      state.run = { ...state.run, ...(await post(`/runs/${id}/cancel`)) };
      renderRun();
      clear(notice).append(h("p", { class: "notice", text: "Cancel requested: a running run stops within an epoch, then its steps are undone." }));
      soon("run", loadRun, 1000);
    } catch (err) {
      showProblem(err, "Could not cancel the run");
    }
  }

  async function download() {
    downloadBtn.disabled = true;
    try {
      const response = await call("GET", `/runs/${id}/model`, { raw: true, headers: { Accept: "application/octet-stream" } });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `${id}-best.keras`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      showProblem(err, "Could not download the model");
    } finally {
      downloadBtn.disabled = false;
    }
  }

  // --- start ---------------------------------------------------------------------------
  // Charts are drawn at their shown width (readable text on narrow windows): redraw on resize.
  let chartWidth = 0;
  const resize = new ResizeObserver(() => {
    const width = Math.round(scoreSvg.getBoundingClientRect().width);
    if (width && width !== chartWidth) {
      chartWidth = width;
      render("scores", "epochs");
    }
  });
  resize.observe(scoreSvg);
  renderSteps();
  renderTrials();
  renderScores();
  renderEpochs();
  loadRun()
    .then(() => {
      if (disposed) return;
      loadTrials();
      stream = new LiveStream(`/runs/${id}/events/stream`, {
        runId: id,
        onEvent,
        onEnd: () => {
          soon("run", loadRun, 0);
          soon("trials", loadTrials, 0);
        },
        onStatus: (status) => {
          streamState.dataset.state = status;
          streamState.textContent = { live: "live", ended: "complete", connecting: "connecting", reconnecting: "reconnecting", closed: "closed" }[status] || status;
        },
      }).start();
    })
    .catch(() => {});
  timers.push(
    setInterval(() => {
      if (state.run && !FINAL.has(state.run.status)) renderProgress();
    }, 1000),
    // A safety net for what no event announces (a queued run cancelled before it started).
    setInterval(() => {
      if (state.run && !FINAL.has(state.run.status)) loadRun().catch(() => {});
    }, 15000),
  );

  return () => {
    disposed = true;
    resize.disconnect();
    if (stream) stream.close();
    timers.forEach(clearInterval);
    pending.forEach((t) => clearTimeout(t));
    if (frame) cancelAnimationFrame(frame);
  };
}
