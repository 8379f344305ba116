// The dashboard's shell: sign-in, the header and a hash router (#/runs, #/runs/<id>, #/new).

import { ApiError, get, session } from "./api.js";
import { clear, h, problemBox } from "./dom.js";
import { newRunView } from "./newrun.js";
import { runView } from "./run.js";
import { runsView } from "./runs.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let cleanup = null;
let signInMessage = null;
let routed = false;

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function currentRoute() {
  const raw = window.location.hash.startsWith("#/") ? window.location.hash.slice(1) : "/runs";
  const [path, qs] = raw.split("?");
  return { path, query: new URLSearchParams(qs || "") };
}

function renderHeader(path) {
  for (const link of nav.querySelectorAll("a")) {
    const target = link.getAttribute("href").slice(1);
    const current = path === target || (target === "/runs" && path.startsWith("/runs"));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  nav.hidden = !session.signedIn;
  clear(who);
  if (!session.authRequired) who.append(h("span", { class: "who-note", text: "authentication off" }));
  else if (session.token) {
    who.append(
      h("span", { class: "who-note", text: "signed in" }),
      h("button", { type: "button", class: "btn btn-small", id: "sign-out", onclick: signOut }, "Sign out"),
    );
  }
}

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  clear(main);
  const { path, query } = currentRoute();
  renderHeader(path);
  if (!session.signedIn) {
    document.title = "Sign in · Cerebros NAS";
    cleanup = signInView();
    return;
  }
  let match;
  if (path === "/runs" || path === "/") {
    document.title = "Runs · Cerebros NAS";
    cleanup = runsView(main, { query, navigate });
  } else if ((match = path.match(/^\/runs\/([0-9a-fA-F-]{36})$/))) {
    document.title = `Run ${match[1].slice(0, 8)} · Cerebros NAS`;
    cleanup = runView(main, { id: match[1] });
  } else if (path === "/new") {
    document.title = "New run · Cerebros NAS";
    cleanup = newRunView(main, { navigate });
  } else {
    main.append(problemBox({ title: "Not found", status: 404, detail: `the dashboard has no page ${path}` }));
  }
  // Keyboard users land in the new page (unless the view put focus on a field itself).
  if (routed && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
  routed = true;
}

function signOut() {
  session.signOut();
  signInMessage = null;
  navigate("#/runs");
}

function signInView() {
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "token-help" });
  const error = h("div", { class: "notice-area", "aria-live": "assertive" });
  const button = h("button", { type: "submit", class: "btn btn-primary", id: "sign-in" }, "Sign in");
  const form = h(
    "form",
    { class: "sign-in", "aria-labelledby": "sign-in-title" },
    h("h2", { id: "sign-in-title" }, "Sign in"),
    h(
      "p",
      { id: "token-help", class: "hint" },
      "Paste an API token (",
      h("code", { text: "cerebros token create --owner NAME" }),
      ", or the admin token ",
      h("code", { text: "cerebros up" }),
      " keeps). It is kept for this browser tab only and sent in a header, never in a URL.",
    ),
    h("label", { for: "token", text: "API token" }),
    token,
    error,
    h("div", { class: "form-actions" }, button),
  );
  if (signInMessage) error.append(problemBox(signInMessage, { heading: "Signed out" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = token.value.trim();
    clear(error);
    if (!value) {
      error.append(problemBox({ title: "A token is required", detail: "paste an API token" }));
      token.focus();
      return;
    }
    button.disabled = true;
    session.signIn(value);
    try {
      await get("/runs", { params: { limit: 1 } });
      signInMessage = null;
      route();
    } catch (err) {
      session.signOut();
      error.append(problemBox(err instanceof ApiError ? err.problem : { title: String(err) }, { heading: "Sign-in failed" }));
      token.select();
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  token.focus();
  return () => {};
}

session.onUnauthorized = (problem) => {
  if (!session.token || currentRoute().path === "/sign-in") return;
  if (main.querySelector("form.sign-in")) return;
  session.signOut();
  signInMessage = problem;
  route();
};

async function start() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    const config = await response.json();
    session.authRequired = config.auth !== false;
  } catch {
    session.authRequired = true;
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
