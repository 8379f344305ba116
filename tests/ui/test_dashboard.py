"""The dashboard at /ui in Debian's chromium, against a real API (auth on) and worker.

Every test fails on a console error or an uncaught exception in the page (the `page`
fixture), except the browser's own note on an answer the test provokes (a 401, a 422).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import uuid
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.ui.router import STATIC_DIR
from tests.support.processes import api_server, wait_final
from tests.ui.conftest import Console, Service, create_token

pytestmark = pytest.mark.slow

RUN_TIMEOUT_MS = 240_000
STEPS = 7  # the run saga's steps
ROOT = Path(__file__).resolve().parents[2]


def sign_in(page: Page, service: Service, hash_path: str = "") -> None:
    page.goto(f"{service.base}/ui/{hash_path}")
    page.fill("#token", service.token)
    page.click("#sign-in")
    expect(page.locator("#sign-out")).to_be_visible()


def submit(service: Service, spec: dict[str, Any], token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token or service.token}"}
    answer = httpx.post(f"{service.base}/runs", json=spec, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def api_get(service: Service, path: str) -> Any:
    answer = httpx.get(f"{service.base}{path}", headers=service.auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def mark_page(page: Page) -> None:
    """A flag that a page load would erase: proves later updates came without a reload."""
    page.evaluate("() => { window.__sameDocument = true; }")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("() => window.__sameDocument === true"))


def architecture_units(spec: dict[str, Any]) -> tuple[int, int]:
    units = [unit for level in spec["levels"] for unit in level]
    return len(units), sum(len(unit["predecessors"]) for unit in units)


# Random search: the tests count trials and epochs (asha, the default, trains 1 epoch first).
IRIS = {"dataset_id": "iris", "search_space": {"layers": [1, 2], "neurons": [4, 8]},
        "budget": {"max_trials": 2}, "parameters": {"strategy": "random", "epochs": 3}}  # fmt: skip
SHORT = {**IRIS, "budget": {"max_trials": 1}, "parameters": {"strategy": "random", "epochs": 1}}
# Long enough to watch and cancel: ~0.3 s an epoch on digits, 40 epochs a trial.
LONG = {"dataset_id": "digits",
        "search_space": {"minimum_levels": 3, "maximum_levels": 4, "minimum_units_per_level": 1,
                         "maximum_units_per_level": 3, "minimum_neurons_per_unit": 16,
                         "maximum_neurons_per_unit": 64},
        "budget": {"max_trials": 50},
        "parameters": {"strategy": "random", "epochs": 40}}  # fmt: skip


def test_ui_is_served_with_a_strict_content_security_policy(service: Service) -> None:
    redirect = httpx.get(f"{service.base}/ui", timeout=10)
    assert redirect.status_code in (307, 308)
    assert redirect.headers["location"].endswith("/ui/")
    for path in ("/ui/", "/ui/app.js", "/ui/app.css", "/ui/config.json"):
        answer = httpx.get(f"{service.base}{path}", timeout=10)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["default-src"] == "'none'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
    page_html = httpx.get(f"{service.base}/ui/", timeout=10).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page_html)  # no inline script
    assert not re.search(r"\son[a-z]+=", page_html)  # no inline handler
    assert httpx.get(f"{service.base}/ui/config.json", timeout=10).json() == {"auth": True}


def test_every_static_file_is_package_data() -> None:
    """The wheel ships what /ui serves (pyproject's package-data globs cover every file)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["app.ui"]
    files = [p.relative_to(STATIC_DIR.parent) for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert files
    # A glob's `*` stays within one folder here, as in setuptools.
    uncovered = [
        str(f)
        for f in files
        if not any(fnmatch(str(f), g) and len(f.parts) == g.count("/") + 1 for g in globs)
    ]
    assert uncovered == []


def test_sign_in_keeps_the_token_for_the_tab_and_out_of_urls(
    page: Page, service: Service, console: Console
) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{service.base}/ui")
    expect(page.locator("#token")).to_be_focused()
    page.fill("#token", "cer_0123456789ab_not-a-real-secret")
    page.click("#sign-in")
    console.allow(r"status of 401")  # the browser's note on the refused token
    expect(page.locator(".sign-in .problem")).to_contain_text("invalid or revoked")
    page.fill("#token", service.token)
    page.keyboard.press("Enter")
    expect(page.locator("#runs")).to_be_visible()
    expect(page.locator(".runs-page .live")).to_have_attribute("data-state", "live")
    stored = page.evaluate("() => [sessionStorage.getItem('cerebros.token'), localStorage.length]")
    assert stored == [service.token, 0]
    assert not any(service.token in url for url in urls)
    streams = [url for url in urls if "/events/stream" in url]
    assert streams and all("ticket=cst_" in url for url in streams)
    page.click("#sign-out")
    expect(page.locator("#token")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('cerebros.token')") is None


def test_revoking_the_token_signs_the_tab_out(page: Page, service: Service) -> None:
    token = create_token(service.env, f"leaving-{uuid.uuid4().hex[:6]}")
    page.goto(f"{service.base}/ui/")
    page.fill("#token", token)
    page.click("#sign-in")
    expect(page.locator(".runs-page .live")).to_have_attribute("data-state", "live")
    revoke = [sys.executable, "-m", "app.cli", "token", "revoke", token.split("_")[1]]
    subprocess.run(revoke, env=service.env, check=True, capture_output=True, timeout=120)
    expect(page.locator(".sign-in .problem")).to_contain_text("token was revoked", timeout=15_000)
    assert page.evaluate("() => sessionStorage.getItem('cerebros.token')") is None


def test_a_run_submitted_from_the_form_is_followed_to_its_best_architecture(
    page: Page, service: Service, artifacts: Path
) -> None:
    sign_in(page, service)
    page.click("#nav >> text=New run")
    page.select_option("#f-dataset", "iris")
    page.fill("#f-max-trials", "2")
    page.fill("#f-epochs", "3")
    assert page.input_value("#f-strategy") == "asha"  # the service's default strategy
    page.select_option("#f-strategy", "random")
    assert '"max_trials": 2' in page.input_value("#f-json")  # the JSON follows the form
    mark_page(page)
    page.click("#submit-run")
    expect(page.locator(".run-page")).to_be_visible()
    run_id = page.url.rsplit("/", 1)[1]

    expect(page.locator("#score-chart")).to_have_attribute(
        "data-points", "2", timeout=RUN_TIMEOUT_MS
    )
    expect(page.locator(".run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=60_000
    )
    expect(page.locator("#score-chart .series-trials circle")).to_have_count(2)
    expect(page.locator("#score-chart .series-best path")).to_have_count(1)
    expect(page.locator("#epoch-chart")).to_have_attribute("data-epochs", re.compile(r"^[1-9]"))
    expect(page.locator("#epoch-chart .series-val circle").first).to_be_attached()
    expect(page.locator('#steps li[data-state="succeeded"]')).to_have_count(STEPS)
    expect(page.locator("#trials tbody tr[data-trial]")).to_have_count(2)
    expect(page.locator("[data-stat=trials]")).to_have_text("2 / 2")

    run = api_get(service, f"/runs/{run_id}")
    best = run["result"]["best_trial"]
    spec = api_get(service, f"/runs/{run_id}/trials/{best}")["architecture_spec"]
    units, edges = architecture_units(spec)
    expect(page.locator("#dag")).to_have_attribute("data-trial", str(best))
    expect(page.locator("#dag-title")).to_contain_text(f"trial {best} (best)")
    expect(page.locator("#dag .dag-unit")).to_have_count(units)
    expect(page.locator("#dag .dag-input")).to_have_count(1)
    expect(page.locator("#dag .dag-edge")).to_have_count(edges)
    neurons = sorted(str(u["neurons"]) for level in spec["levels"] for u in level)
    shown = page.locator("#dag .dag-unit").evaluate_all("(els) => els.map(e => e.dataset.neurons)")
    assert sorted(shown) == neurons
    page.screenshot(path=str(artifacts / "run-finished.png"), full_page=True)

    # Selecting the other trial draws its architecture and its epoch curves.
    other = next(n for n in (1, 2) if n != best)
    page.click(f'#trials tr[data-trial="{other}"] button')
    expect(page.locator("#dag")).to_have_attribute("data-trial", str(other))
    expect(page.locator("#epoch-chart")).to_have_attribute("data-trial", str(other))

    with page.expect_download() as download:
        page.click("text=Download model")
    assert download.value.suggested_filename == f"{run_id}-best.keras"
    assert Path(download.value.path()).stat().st_size > 1000
    assert same_document(page)


def test_trials_and_epochs_arrive_live_and_the_run_is_cancelled_from_the_page(
    page: Page, service: Service, artifacts: Path
) -> None:
    run_id = submit(service, LONG)
    sign_in(page, service, f"#/runs/{run_id}")
    mark_page(page)
    status = page.locator(".run-status")
    epochs = page.locator("#epoch-chart")
    expect(epochs).to_have_attribute("data-epochs", re.compile(r"^[1-9]"), timeout=RUN_TIMEOUT_MS)
    first = int(epochs.get_attribute("data-epochs") or 0)
    # More epochs of the running trial, then a trial's point: all while the run is running.
    expect(epochs).not_to_have_attribute("data-epochs", str(first), timeout=60_000)
    points = page.locator("#score-chart")
    expect(points).to_have_attribute("data-points", re.compile(r"^[1-9]"), timeout=RUN_TIMEOUT_MS)
    expect(status).to_have_attribute("data-status", "running")
    step = page.locator('#steps li[data-step="execute_nas_run"]')
    expect(step).to_have_attribute("data-state", "running")
    expect(page.locator("#epoch-chart .series-train path")).to_have_count(1, timeout=30_000)
    page.screenshot(path=str(artifacts / "run-mid.png"), full_page=True)

    page.click("text=Cancel run")
    expect(page.locator(".confirm")).to_be_visible()
    page.click("text=Yes, cancel it")
    expect(status).to_have_attribute("data-status", "cancelled", timeout=120_000)
    expect(page.locator("text=Cancel run")).to_be_hidden()
    expect(page.locator('#steps li[data-state="undone"]').first).to_be_visible(timeout=30_000)
    assert api_get(service, f"/runs/{run_id}")["status"] == "cancelled"
    assert same_document(page)


def test_the_runs_list_filters_and_updates_live(page: Page, service: Service) -> None:
    sign_in(page, service)
    expect(page.locator(".runs-page .live")).to_have_attribute("data-state", "live")
    mark_page(page)
    run_id = submit(service, SHORT)
    row = page.locator(f'#runs tr[data-run-id="{run_id}"]')
    expect(row).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT_MS)
    expect(row.locator('[data-col="best"]')).to_have_text(re.compile(r"^\d\.\d{4}$"))
    expect(row.locator('[data-col="progress"]')).to_contain_text("1 / 1")
    expect(row).to_contain_text("iris")
    expect(row).to_contain_text("val_accuracy")
    assert same_document(page)

    page.select_option("#status-filter", "succeeded")
    expect(page).to_have_url(re.compile(r"#/runs\?status=succeeded$"))
    expect(row).to_be_visible()
    statuses = page.locator("#runs tbody tr[data-run-id]").evaluate_all(
        "(rows) => rows.map(r => r.dataset.status)"
    )
    assert statuses and set(statuses) == {"succeeded"}
    page.select_option("#status-filter", "cancelled")
    expect(row).to_have_count(0)


def test_a_bad_field_is_shown_next_to_its_input(
    page: Page, service: Service, console: Console
) -> None:
    console.allow(r"status of 422")
    sign_in(page, service, "#/new")
    page.fill("#f-max-trials", "0")
    page.fill("#f-layers", "1, two")
    page.click("#submit-run")
    trials = page.locator('[data-field="budget.max_trials"] .field-error')
    expect(trials).to_be_visible()
    expect(trials).to_contain_text("greater than or equal to 1")
    expect(page.locator("#f-max-trials")).to_have_attribute("aria-invalid", "true")
    layers = page.locator('[data-field="search_space.layers"] .field-error')
    expect(layers).to_contain_text("search_space.layers.1")
    expect(page.locator(".run-form .problem")).to_contain_text("The run was not accepted")
    # Fixed, the same form goes through.
    page.fill("#f-max-trials", "1")
    page.fill("#f-layers", "1")
    page.fill("#f-epochs", "1")
    page.click("#submit-run")
    expect(page.locator(".run-page")).to_be_visible()


def test_user_strings_are_rendered_as_text(page: Page, service: Service, console: Console) -> None:
    console.allow(r"status of 422")
    owner = f'<img src=x onerror="window.__xss=1">{uuid.uuid4().hex[:4]}'
    token = create_token(service.env, owner)
    run_id = submit(service, SHORT, token)
    wait_final(service.base, run_id, headers=service.auth)
    sign_in(page, service)
    cell = page.locator(f'#runs tr[data-run-id="{run_id}"] [data-col="owner"]')
    expect(cell).to_have_text(owner)
    page.goto(f"{service.base}/ui/#/runs/{run_id}")
    expect(page.locator(".facts")).to_contain_text(owner)

    # An uploaded dataset's name, offered in the form.
    payload = "<img src=x onerror=window.__xss=2><script>window.__xss=3</script>"
    rows = "\n".join(f"{i % 7},{i % 3},{i % 2}" for i in range(60))
    uploaded = httpx.post(
        f"{service.base}/datasets",
        files={"file": ("d.csv", f"a,b,y\n{rows}\n".encode())},
        data={"target": "y", "name": payload},
        headers=service.auth,
        timeout=60,
    )
    assert uploaded.status_code == 201, uploaded.text
    page.goto(f"{service.base}/ui/#/new")
    option = page.locator(f'#f-dataset option[value="{uploaded.json()["id"]}"]')
    expect(option).to_contain_text(payload)

    # A spec string the API echoes in its 422, typed into the JSON editor.
    page.fill(
        "#f-json", f'{{"dataset_id": "iris", "search_space": {{"activation": ["{payload}"]}}}}'
    )
    page.fill("#f-idempotency-key", "<b>key</b>")
    page.click("#submit-run")
    error = page.locator('[data-field="search_space.activation"] .field-error')
    expect(error).to_contain_text(payload)
    assert page.locator("main img, main script, main b").count() == 0
    assert page.evaluate("() => window.__xss") is None


def test_keyboard_only(page: Page, service: Service) -> None:
    page.goto(f"{service.base}/ui/")
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(service.token)
    page.keyboard.press("Enter")
    expect(page.locator("#runs")).to_be_visible()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.getAttribute('href')") == "#/new":
            break
    page.keyboard.press("Enter")
    expect(page.locator("#f-dataset")).to_be_focused()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "submit-run":
            break
    else:
        pytest.fail("the submit button is not reachable with Tab")


def test_narrow_window(page: Page, service: Service, artifacts: Path) -> None:
    one_trial = {"max_trials": 1}
    run_id = submit(
        service, {**IRIS, "budget": one_trial, "parameters": {"strategy": "random", "epochs": 2}}
    )
    wait_final(service.base, run_id, headers=service.auth)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, service, f"#/runs/{run_id}")
    expect(page.locator("#dag .dag-unit").first).to_be_visible()
    expect(page.locator("#score-chart")).to_have_attribute("data-points", "1")
    expect(page.locator('#steps li[data-state="succeeded"]')).to_have_count(STEPS)
    expect(page.locator("#epoch-chart")).to_have_attribute("data-epochs", "2")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.screenshot(path=str(artifacts / "run-narrow.png"), full_page=True)
    page.click(".brand")
    expect(page.locator("#runs")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_without_authentication_no_sign_in_is_asked(
    page: Page, service: Service, tmp_path: Path
) -> None:
    env = {**service.env, "CEREBROS_AUTH": "false"}
    with api_server(env, tmp_path) as base:
        page.goto(f"{base}/ui/")
        expect(page.locator("#runs")).to_be_visible()
        expect(page.locator(".who")).to_contain_text("authentication off")
        expect(page.locator(".runs-page .live")).to_have_attribute("data-state", "live")
        page.close()
