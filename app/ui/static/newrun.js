// The new-run form: the spec's main fields, or the whole spec as JSON. The API validates;
// its 422 problem names each bad field (errors[].field), shown next to that field's input.

import { ApiError, get, post } from "./api.js";
import { clear, h, problemBox } from "./dom.js";

const DATASETS = ["iris", "digits", "wine", "breast_cancer", "diabetes", "classification", "regression", "mnist", "fashion_mnist", "cifar10"];
const OBJECTIVES = ["val_accuracy", "val_loss", "accuracy", "loss", "val_mae", "val_mse", "val_root_mean_squared_error"];
const ACTIVATIONS = ["relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish", "softsign", "softplus", "linear"];
// The first is the form's default: the service's default strategy (asha, README "The spec").
const STRATEGIES = ["asha", "random", "hyperband", "tpe", "evolution"];  // nsga2 needs objectives: submit it as JSON

/** "1, 2 3" -> [1, 2, 3]; what is not a number is kept as text, for the API to name. */
function parseList(text, numeric) {
  return String(text)
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((tok) => (numeric && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(tok) ? Number(tok) : tok));
}

function parseNumber(text) {
  const t = String(text).trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

export function newRunView(main, { navigate }) {
  const fields = new Map();
  let jsonEdited = false;
  let busy = false;

  function field(name, label, control, help) {
    const id = control.id;
    const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    const hint = help ? h("p", { class: "field-help", id: `${id}-help`, text: help }) : null;
    if (hint) control.setAttribute("aria-describedby", hint.id);
    const wrapper = h("div", { class: "field", "data-field": name }, h("label", { for: id, text: label }), control, hint, error);
    fields.set(name, { wrapper, control, error, hint });
    return wrapper;
  }

  const dataset = h(
    "select",
    { id: "f-dataset", name: "dataset_id" },
    h("optgroup", { label: "Built-in" }, DATASETS.map((d) => h("option", { value: d, text: d, selected: d === "iris" }))),
  );
  // Uploaded datasets (POST /datasets) are offered too, by name; their id is what is sent.
  get("/datasets", { params: { limit: 200 } })
    .then((page) => {
      if (!page.items.length) return;
      dataset.append(
        h(
          "optgroup",
          { label: "Uploaded" },
          page.items.map((d) => h("option", { value: d.id, text: `${d.name} (${d.task}, ${d.rows} rows, ${d.id})` })),
        ),
      );
    })
    .catch(() => {});
  const objective = h("input", { id: "f-objective", name: "objective", list: "objective-names", value: "val_accuracy", autocomplete: "off" });
  const layers = h("input", { id: "f-layers", name: "layers", value: "1, 2", autocomplete: "off" });
  const neurons = h("input", { id: "f-neurons", name: "neurons", value: "8, 16", autocomplete: "off" });
  const learningRate = h("input", { id: "f-learning-rate", name: "learning_rate", value: "0.01", autocomplete: "off" });
  const maxTrials = h("input", { id: "f-max-trials", name: "max_trials", type: "number", inputmode: "numeric", value: "5" });
  const epochs = h("input", { id: "f-epochs", name: "epochs", type: "number", inputmode: "numeric", value: "5" });
  const strategy = h("select", { id: "f-strategy", name: "strategy" }, STRATEGIES.map((st) => h("option", { value: st, text: st })));
  const idemKey = h("input", { id: "f-idempotency-key", name: "idempotency_key", autocomplete: "off", placeholder: "optional" });
  const activationBoxes = ACTIVATIONS.map((a) => h("input", { type: "checkbox", value: a, id: `f-act-${a}`, checked: a === "relu" }));
  const activationError = h("p", { class: "field-error", id: "f-activation-error", hidden: true });
  const activation = h(
    "fieldset",
    { class: "field checks", "data-field": "search_space.activation", id: "f-activation" },
    h("legend", { text: "Activations" }),
    activationBoxes.map((box) => h("label", { class: "check", for: box.id }, box, ` ${box.value}`)),
    activationError,
  );
  fields.set("search_space.activation", { wrapper: activation, control: activationBoxes[0], error: activationError });
  const json = h("textarea", { id: "f-json", name: "spec", rows: 16, spellcheck: "false", autocomplete: "off" });
  const jsonState = h("span", { class: "field-help", id: "f-json-state" });
  const resetJson = h("button", { type: "button", class: "btn btn-small", hidden: true, onclick: () => syncJson(true) }, "Use the form's values");
  const problems = h("div", { class: "notice-area", tabindex: -1 });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "submit-run" }, "Start run");

  function buildSpec() {
    return {
      dataset_id: dataset.value,
      ...(objective.value.trim() ? { objective: objective.value.trim() } : {}),
      search_space: {
        layers: parseList(layers.value, true),
        neurons: parseList(neurons.value, true),
        activation: activationBoxes.filter((b) => b.checked).map((b) => b.value),
        learning_rate: parseList(learningRate.value, true),
      },
      budget: { max_trials: parseNumber(maxTrials.value) },
      parameters: { epochs: parseNumber(epochs.value), strategy: strategy.value },
    };
  }

  function syncJson(force) {
    if (force) jsonEdited = false;
    if (!jsonEdited) json.value = JSON.stringify(buildSpec(), null, 2);
    resetJson.hidden = !jsonEdited;
    jsonState.textContent = jsonEdited ? "Edited: this JSON is what will be sent (the form is ignored)." : "Follows the form; edit it to send any spec field.";
  }

  json.addEventListener("input", () => {
    jsonEdited = true;
    syncJson(false);
  });

  const form = h(
    "form",
    { class: "run-form", novalidate: true, "aria-labelledby": "new-title" },
    h("datalist", { id: "objective-names" }, OBJECTIVES.map((o) => h("option", { value: o }))),
    h(
      "div",
      { class: "form-grid" },
      h(
        "fieldset",
        { class: "group" },
        h("legend", { text: "Data and goal" }),
        field("dataset_id", "Dataset", dataset),
        field("objective", "Objective", objective, "A Keras metric: val_accuracy, val_loss, val_mae, …"),
        field("parameters.strategy", "Strategy", strategy),
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", { text: "Search space (simple form)" }),
        field("search_space.layers", "Hidden layers", layers, "Comma-separated counts, e.g. 1, 2, 3"),
        field("search_space.neurons", "Neurons per unit", neurons, "Comma-separated, e.g. 32, 64"),
        activation,
        field("search_space.learning_rate", "Learning rates", learningRate, "Comma-separated, e.g. 0.001, 0.01"),
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", { text: "Budget" }),
        field("budget.max_trials", "Trials (budget.max_trials)", maxTrials, "New architectures; asha and hyperband continue the best ones as extra trials"),
        field("parameters.epochs", "Epochs per trial (parameters.epochs)", epochs),
        field("Idempotency-Key", "Idempotency key", idemKey, "The same key and body return the first run."),
      ),
    ),
    h(
      "div",
      { class: "field json-field", "data-field": "body" },
      h("label", { for: "f-json", text: "Full spec (JSON)" }),
      json,
      h("div", { class: "json-tools" }, jsonState, resetJson),
      h("p", { class: "field-error", id: "f-json-error", hidden: true }),
    ),
    problems,
    h("div", { class: "form-actions" }, submit, h("a", { href: "#/runs", class: "btn" }, "Back to runs")),
  );
  fields.set("body", { wrapper: form.querySelector(".json-field"), control: json, error: form.querySelector("#f-json-error") });
  form.addEventListener("input", (e) => {
    if (e.target !== json) syncJson(false);
  });
  form.addEventListener("change", (e) => {
    if (e.target !== json) syncJson(false);
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });

  function clearErrors() {
    clear(problems);
    for (const { wrapper, control, error, hint } of fields.values()) {
      wrapper.classList.remove("invalid");
      control.removeAttribute("aria-invalid");
      if (hint) control.setAttribute("aria-describedby", hint.id);
      else control.removeAttribute("aria-describedby");
      clear(error).hidden = true;
    }
  }

  /** The form field an error names: the longest field name that is it or a prefix of it. */
  function fieldFor(name) {
    let found = null;
    for (const key of fields.keys()) {
      if ((name === key || name.startsWith(`${key}.`)) && (!found || key.length > found.length)) found = key;
    }
    return found;
  }

  function showErrors(problem) {
    const errors = Array.isArray(problem.errors) ? problem.errors : [];
    let first = null;
    for (const err of errors) {
      const key = fieldFor(String(err.field || ""));
      if (!key) continue;
      const { wrapper, control, error, hint } = fields.get(key);
      wrapper.classList.add("invalid");
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", [hint?.id, error.id].filter(Boolean).join(" "));
      error.hidden = false;
      error.append(h("span", { class: "field-error-line", "data-error-field": err.field }, err.field === key ? "" : `${err.field}: `, err.message));
      first = first || control;
    }
    problems.append(problemBox(problem, { heading: problem.status === 422 ? "The run was not accepted" : undefined }));
    (first || problems).focus?.();
  }

  async function send() {
    if (busy) return;
    busy = true;
    submit.disabled = true;
    clearErrors();
    // fetch refuses header values beyond Latin-1: said here, next to the field, not as a
    // network error.
    if (/[^\x20-\x7e]/.test(idemKey.value)) {
      showErrors({
        title: "Invalid input",
        detail: "the Idempotency-Key header takes printable ASCII characters only",
        errors: [{ field: "Idempotency-Key", message: "printable ASCII characters only" }],
      });
      busy = false;
      submit.disabled = false;
      return;
    }
    const headers = idemKey.value !== "" ? { "Idempotency-Key": idemKey.value } : {};
    try {
      const run = await post("/runs", { body: jsonEdited ? json.value : buildSpec(), headers });
      navigate(`#/runs/${run.id}`);
    } catch (err) {
      showErrors(err instanceof ApiError ? err.problem : { title: String(err) });
    } finally {
      busy = false;
      submit.disabled = false;
    }
  }

  syncJson(true);
  main.append(
    h(
      "section",
      { class: "new-run" },
      h("div", { class: "page-head" }, h("h2", { id: "new-title" }, "New run")),
      h("p", { class: "hint" }, "The API checks every field; what it refuses is shown next to the field."),
      form,
    ),
  );
  dataset.focus();
  return () => {};
}
