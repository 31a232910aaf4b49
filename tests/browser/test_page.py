"""The page in a real headless Chromium (Debian's), against live servers: what a person sees and does.

Screenshots go to ``test-artifacts/`` (not committed). Load times are logged, not asserted.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.routes.linking import NOT_CONFIGURED
from support.data import REPO
from support.server import running_server
from tests.conftest import TinyLinker

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
FLOW_MIN_MASS = 0.001  # the page's threshold for drawing a flow line (service/static/app.js)
ARTIFACTS = Path(os.environ.get("SIMLINK_TEST_ARTIFACTS", REPO / "test-artifacts"))
A, B = "A man is playing a guitar.", "A person plays the guitar."


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        reason = "the browser tests need Debian's chromium (make test installs it when run as root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A server without a linker."""
    with running_server() as base_url:
        yield base_url


@pytest.fixture(scope="module")
def linking_server(tiny_linker: TinyLinker) -> Iterator[str]:
    env = {"SIMLINK_LINK_MODEL": str(tiny_linker.model_dir), "SIMLINK_LINK_INDEX": str(tiny_linker.index_dir)}
    with running_server(env) as base_url:
        yield base_url


class Visit:
    """One page in its own browser context; collects console errors and requests that leave the server."""

    def __init__(self, browser, base_url: str, width: int = 1280, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.base_url = base_url
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.expected_statuses: set[int] = set()  # a test that provokes a 422 or 503 expects Chromium to log it
        self.page.on("console", self._check_console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", self._check_request)

    def _check_console(self, message) -> None:
        logged_status = "the server responded with a status of "
        if message.type != "error":
            return
        if logged_status in message.text:
            status = int(message.text.split(logged_status)[1][:3])
            if status in self.expected_statuses:
                return
        self.errors.append(message.text)

    def _check_request(self, request) -> None:
        if not request.url.startswith((self.base_url, "data:")):
            self.foreign.append(request.url)

    def open(self, path: str = "/") -> float:
        started = time.perf_counter()
        self.page.goto(self.base_url + path)
        if path == "/":
            self.page.wait_for_selector("body[data-ready=true]")
        seconds = time.perf_counter() - started
        print(f"{path} loaded in {1000 * seconds:.0f} ms")  # logged, never asserted
        return seconds

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.foreign == [], f"requests that left the server: {self.foreign}"


@pytest.fixture
def visit(browser, server: str) -> Iterator[Visit]:
    opened = Visit(browser, server)
    yield opened
    opened.close()


def compare(visit: Visit, a: str, b: str) -> None:
    visit.page.fill("#compare-a", a)
    visit.page.fill("#compare-b", b)
    visit.page.click("#compare-submit")


def test_compare_shows_the_apis_score_and_draws_its_plan(visit: Visit, server: str) -> None:
    visit.open()
    compare(visit, A, B)
    visit.page.wait_for_selector("#compare-result:not([hidden])")
    default = httpx.get(f"{server}/info").json()["default_method"]
    assert visit.page.input_value("#compare-method") == default == "anchored-wrd"
    body = {"pairs": [{"a": A, "b": B}], "method": default, "alignment": "full", "tokens": True, "cosine": True}
    expected = httpx.post(f"{server}/similarity", json={**body, "skip_special_tokens": False}).json()["results"][0]
    assert visit.page.text_content("#compare-similarity") == f"{expected['similarity']:.4f}"
    drawn = [cell for cell in expected["alignment"] if cell["mass"] >= FLOW_MIN_MASS]
    assert visit.page.locator("#flow path.flow").count() == len(drawn) > 0
    assert visit.page.locator("#heatmap rect.cell").count() == len(expected["a_tokens"]) * len(expected["b_tokens"])
    weights = visit.page.locator("#flow text.weight").all_text_contents()
    assert weights[0] == f"{expected['a_tokens'][0]['weight']:.3f}"

    guitar = next(i for i, token in enumerate(expected["a_tokens"]) if token["token"] == "guitar")
    visit.page.hover(f'#flow text.token[data-side="a"][data-index="{guitar}"]')
    highlighted = visit.page.locator("#flow path.flow.highlight")
    assert highlighted.count() == sum(cell["a_index"] == guitar for cell in drawn) > 0
    assert visit.page.locator("#heatmap rect.cell.highlight").count() == len(expected["b_tokens"])
    visit.screenshot("compare")

    before = visit.page.get_attribute('#heatmap rect.cell[data-row="1"][data-col="1"]', "fill")
    visit.page.check("#show-cosine")
    assert "Cosine" in visit.page.text_content("#heatmap-title")
    assert visit.page.get_attribute('#heatmap rect.cell[data-row="1"][data-col="1"]', "fill") != before


def test_a_422_is_shown_next_to_its_field(visit: Visit) -> None:
    visit.expected_statuses.add(422)
    visit.open()
    compare(visit, "   ", B)
    message = visit.page.locator('#compare-form .error[data-field="pairs[0].a"]')
    message.wait_for()
    assert "must contain a character other than white space" in message.text_content()
    assert visit.page.is_hidden("#compare-result")


def test_rank_lists_the_apis_ranking_and_what_pruning_saved(visit: Visit, server: str) -> None:
    visit.open()
    visit.page.click("#tab-rank")
    visit.page.fill("#rank-top-k", "2")
    visit.page.click("#rank-submit")
    visit.page.wait_for_selector("#rank-result:not([hidden])")
    source = visit.page.input_value("#rank-source")
    candidates = [line for line in visit.page.input_value("#rank-candidates").splitlines() if line.strip()]
    expected = httpx.post(f"{server}/similarity/rank", json={"source": source, "candidates": candidates, "top_k": 2})
    ranking = expected.json()
    rows = visit.page.locator("#rank-rows tr")
    assert rows.count() == 2
    for row, result in zip(rows.all(), ranking["results"], strict=True):
        cells = row.locator("td").all_text_contents()
        assert cells[1] == candidates[result["index"]] and cells[2] == f"{result['similarity']:.4f}"
    summary = visit.page.text_content("#rank-summary")
    assert f"{ranking['exact_solves']} exact transport solves; {ranking['pruned']} of {len(candidates)}" in summary
    visit.screenshot("rank")


def test_link_tab_without_a_linker_shows_the_503_message(visit: Visit) -> None:
    visit.expected_statuses.add(503)
    visit.open()
    visit.page.click("#tab-link")
    assert "No linker is loaded" in visit.page.text_content("#link-notice")
    visit.page.click("#link-submit")
    visit.page.wait_for_function(
        "expected => document.getElementById('link-notice').textContent === expected", arg=NOT_CONFIGURED
    )
    visit.screenshot("link-unconfigured")


def test_link_tab_links_the_mention_selected_with_the_mouse(browser, linking_server: str) -> None:
    visit = Visit(browser, linking_server)
    try:
        visit.open("/#link")
        text = "I keep a python as a pet."
        visit.page.fill("#link-text", text)
        start = text.index("python")
        visit.page.eval_on_selector(
            "#link-text", "(area, span) => area.setSelectionRange(span[0], span[1])", [start, start + 6]
        )
        visit.page.click("#link-use-selection")
        assert '"python"' in visit.page.text_content("#link-mention")
        visit.page.click("#link-submit")
        visit.page.wait_for_selector("#link-result:not([hidden])")
        body = {
            "text": text,
            "task": "entity",
            "top_k": 3,
            "num_beams": 5,
            "mention": {"start": start, "end": start + 6},
        }
        expected = httpx.post(f"{linking_server}/link-entity", json=body, timeout=60).json()["results"]
        rows = visit.page.locator("#link-rows tr").all()
        assert [row.locator("td").first.text_content() for row in rows] == [result["id"] for result in expected]
        shared = [bool(row.locator("td").nth(3).text_content()) for row in rows]
        assert shared == ["disambiguation" in result for result in expected] and any(shared)
        spans = [r["mention"] for r in expected if "mention" in r]
        written = [f'"{text[m["start"] : m["end"]]}" {m["start"]}–{m["end"]}' if m else "" for m in spans]
        shown = [row.locator("td").nth(4).text_content() for row in rows]
        assert [cell for cell in shown if cell] == written and written, "where the text writes each result"
        visit.screenshot("link")
        visit.page.check("#link-auto")
        visit.page.click("#link-submit")
        visit.page.wait_for_function("() => document.querySelector('#link-rows').children.length > 0")
        auto = httpx.post(f"{linking_server}/link-entity", json={**body, "candidates": "auto"}, timeout=60).json()
        visit.page.wait_for_function(
            "ids => [...document.querySelectorAll('#link-rows tr td:first-child')].map(td => td.textContent)"
            ".join() === ids.join()",
            arg=[result["id"] for result in auto["results"]],
        )
        visit.page.uncheck("#link-auto")
        visit.page.click("#link-clear-mention")
        visit.page.fill("#link-text", "Is Marie Curie from France?")
        visit.page.check("#link-several")
        with visit.page.expect_request("**/link-entity") as sent:
            visit.page.click("#link-submit")
        assert sent.value.post_data_json["several"] is True and "mention" not in sent.value.post_data_json
        plain = {"text": "Is Marie Curie from France?", "task": "entity", "top_k": 3, "num_beams": 5}
        several = httpx.post(f"{linking_server}/link-entity", json={**plain, "several": True}, timeout=60).json()
        visit.page.wait_for_function(
            "ids => [...document.querySelectorAll('#link-rows tr td:first-child')].map(td => td.textContent)"
            ".join() === ids.join()",
            arg=[result["id"] for result in several["results"]],
        )
    finally:
        visit.close()


def test_docs_render_their_operations_offline(visit: Visit) -> None:
    visit.open("/docs")
    visit.page.wait_for_selector(".opblock-summary-path")
    paths = visit.page.locator(".opblock-summary-path").all_text_contents()
    assert {"/similarity", "/similarity/rank", "/link-entity"} <= {path.strip() for path in paths}
    visit.screenshot("docs")


@pytest.mark.parametrize(("width", "height"), [(360, 740), (1920, 1080)])
def test_the_page_fits_small_and_large_screens(browser, server: str, width: int, height: int) -> None:
    visit = Visit(browser, server, width, height)
    try:
        visit.open()
        compare(visit, "A long sentence about a man who is playing an old guitar on the street.", B)
        visit.page.wait_for_selector("#compare-result:not([hidden])")
        assert visit.page.evaluate("document.documentElement.scrollWidth") <= width  # wide figures scroll inside
        visit.screenshot(f"compare-{width}")
    finally:
        visit.close()
