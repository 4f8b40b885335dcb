"""The status page (SPEC §12) in a real headless Chromium, on a real daemon app.

One browser session walks what an operator does: enter the token, trigger a job and
watch its progress and "completed" arrive without a reload, open a failed run with a
bad line and see its error row, retry it, cancel a long run; then the page on a
phone's screen and an axe-core check. Runs are paced by a test source that waits for
the test between batches, so what the page shows is never a race. Screenshots are
kept in pytest's tmp dir (and copied to ``$SYNCD_SCREENSHOT_DIR`` when set: that is
how docs/status-page.png is made).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from syncd import hookimpl
from syncd.adapters import Batch, Checkpoint
from syncd.api import make_app
from syncd.api.page import CSP
from syncd.engine import Request
from syncd.errors import NetworkError
from syncd_builtin.csv_source import CsvSource
from tests.api_fixtures import MUSIC_LINES, Harness, build, csv_job, write_lines, write_rows

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TOKEN = "page-token-41c9"
WAIT_MS = 15_000

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Chromium at /usr/bin/chromium "
                                       "(apt-get install chromium; scripts/test-services "
                                       "installs it as root)")
expect = playwright_api.expect


class Pacing:
    """Test sources: ``stepped_csv`` waits for ``step`` after each batch; ``flaky_csv``
    reads every line, then fails once with a network error (a retry then completes)."""

    def __init__(self) -> None:
        self.step = threading.Event()
        self.fail = True
        pacing = self

        class SteppedCsv(CsvSource):
            name = "stepped_csv"
            description = "A csv source that waits for the test between batches."

            def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                     batch_rows: int) -> Iterator[Batch]:
                for batch in super().read(fields, checkpoint, batch_rows):
                    yield batch
                    if not pacing.step.wait(30):
                        raise TimeoutError("the test never let the run go on")

        class FlakyCsv(CsvSource):
            name = "flaky_csv"
            description = "A csv source whose first read fails at its end."

            def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                     batch_rows: int) -> Iterator[Batch]:
                yield from super().read(fields, checkpoint, batch_rows)
                if pacing.fail:
                    pacing.fail = False
                    raise NetworkError("the file share went away")

        self.sources = (SteppedCsv, FlakyCsv)

    @hookimpl
    def syncd_register_adapters(self, registry: Any) -> None:
        for source in self.sources:
            registry.add_source(source)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[str, Harness, Pacing]]:
    state = tmp_path / "state"
    write_rows(state / "steps.csv", 400)
    write_lines(state / "music.csv", MUSIC_LINES)
    pacing = Pacing()
    jobs = {"catalog": csv_job(state / "steps.csv", "catalog", source_type="stepped_csv",
                               batch_rows=100, schedule="0 3 * * *"),
            "music": csv_job(state / "music.csv", "music", source_type="flaky_csv",
                             retry={"attempts": 1})}
    h = build(state, jobs, token=TOKEN, plugins=(pacing,))
    server = TestServer(make_app(h.context), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/")), h, pacing
    pacing.step.set()
    await h.close()
    await server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        await chromium.close()


def keep(path: Path) -> None:
    """Copy a screenshot to ``$SYNCD_SCREENSHOT_DIR`` when asked (for docs/)."""
    target = os.environ.get("SYNCD_SCREENSHOT_DIR")
    if target:
        shutil.copy(path, Path(target) / path.name)


async def test_an_operator_triggers_watches_inspects_retries_and_cancels(
        daemon: tuple[str, Harness, Pacing], browser: Any, tmp_path: Path) -> None:
    url, h, pacing = daemon
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    # script errors and CSP refusals; the API's 4xx answers the test provokes are fine
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and "Failed to load resource" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(url)

    # the API answers 401: the page asks for the token, and keeps it in this tab only
    dialog = page.get_by_role("dialog", name="API token")
    await expect(dialog).to_be_visible(timeout=WAIT_MS)
    await dialog.get_by_label("Token").fill(TOKEN)
    await dialog.get_by_role("button", name="Use token").click()
    jobs = page.locator("#jobs-body")
    await expect(jobs.get_by_role("row", name="catalog")).to_be_visible(timeout=WAIT_MS)
    assert await page.evaluate("sessionStorage.getItem('syncd-token')") == TOKEN
    assert await page.evaluate("localStorage.length") == 0
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # an API error is shown as the API words it
    music_row = jobs.get_by_role("row", name="music")
    await music_row.get_by_label("File for music (optional)").fill("/nowhere/x.csv")
    await music_row.get_by_role("button", name="Trigger music").click()
    await expect(page.get_by_role("alert")).to_contain_text("does not exist", timeout=WAIT_MS)
    await music_row.get_by_label("File for music (optional)").fill("")

    # trigger: live progress with a bar, rate and ETA, then "completed", no reload
    await page.get_by_role("button", name="Trigger catalog").click()
    await expect(page.get_by_role("alert")).to_contain_text("of catalog started")
    first = page.locator("#runs-body tr").first
    await expect(first.locator("progress")).to_be_visible(timeout=WAIT_MS)
    await expect(first.locator(".progress-text")).to_contain_text("ETA", timeout=WAIT_MS)
    await expect(first.locator(".badge")).to_have_text("in progress")
    shot = tmp_path / "status-page.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    pacing.step.set()
    await expect(first.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)
    await expect(first.locator(".progress-text")).to_have_text("400 items")
    last_run = jobs.get_by_role("row", name="catalog").locator(".badge")
    await expect(last_run).to_have_text("completed", timeout=WAIT_MS)

    # a failed run: its error row names the bad line; retry it from the page
    await music_row.get_by_role("button", name="Trigger music").click()
    failed = page.locator("#runs-body tr[data-status=failed]").first
    await expect(failed).to_be_visible(timeout=WAIT_MS)
    failed_id = (await failed.get_attribute("id") or "").removeprefix("run-")
    await failed.get_by_role("button", name=f"Show run {failed_id}").click()
    detail = page.locator("#detail")
    await expect(detail).to_be_focused()
    await expect(detail.get_by_role("heading", level=2)).to_contain_text(f"#{failed_id}")
    bad_line = detail.locator("tr.error-row", has_text="line 5")
    await expect(bad_line).to_be_visible()
    await expect(detail.locator("tr.error-row", has_text="the file share went away")
                 ).to_be_visible()
    await expect(detail.locator(".checkpoint")).to_be_visible()
    shot = tmp_path / "status-page-run.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    await detail.get_by_role("button", name="Retry this run").click()
    await expect(page.get_by_role("alert")).to_contain_text(f"retries run {failed_id}")
    retried = page.locator("#runs-body tr", has=page.locator("td", has_text="retry")).first
    await expect(retried.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)

    # cancel a long run while it waits between batches (a new export, every line of it
    # changed: of the file the last run synced, only changed lines would be read)
    steps = write_rows(h.state_dir / "steps.csv", 401)
    steps.write_text(steps.read_text(encoding="utf-8").replace(",Song ", ",Tune "),
                     encoding="utf-8")
    pacing.step.clear()
    await page.get_by_role("button", name="Trigger catalog").click()
    running = page.locator("#runs-body tr[data-status=in_progress]").first
    await expect(running.locator("progress")).to_be_visible(timeout=WAIT_MS)
    run_id = (await running.get_attribute("id") or "").removeprefix("run-")
    await running.get_by_role("button", name=f"Cancel run {run_id}").click()
    await expect(page.get_by_role("alert")).to_contain_text(f"Run {run_id}: cancelling")
    pacing.step.set()
    await expect(page.locator(f"#run-{run_id} .badge")).to_have_text("cancelled",
                                                                       timeout=WAIT_MS)
    assert await page.evaluate("window.__sameDocument") is True

    # the filter: failed runs only
    await page.get_by_label("Status").select_option("failed")
    await expect(page.locator("#runs-body tr")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#runs-body tr .badge")).to_have_text("failed")
    assert not problems, problems


async def test_the_page_reads_well_on_a_phone_and_passes_axe(
        daemon: tuple[str, Harness, Pacing], browser: Any, tmp_path: Path) -> None:
    from axe_playwright_python.async_playwright import Axe

    url, h, pacing = daemon
    pacing.step.set()
    await h.engine.run(Request("music", "api"))
    context = await browser.new_context(viewport={"width": 390, "height": 844},
                                        is_mobile=True, has_touch=True)
    await context.add_init_script(f"sessionStorage.setItem('syncd-token', '{TOKEN}')")
    page = await context.new_page()
    response = await page.goto(url)
    assert response is not None and response.headers["content-security-policy"] == CSP
    await expect(page.locator("#runs-body tr[data-status=failed]")).to_be_visible(
        timeout=WAIT_MS)
    # keyboard: the skip link comes first; a run opens with Enter and gets the focus
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to runs")).to_be_focused()
    await page.locator("#runs-body tr button", has_text="Show").first.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#detail")).to_be_focused()
    await expect(page.locator("#detail tr.error-row").first).to_be_visible()
    # nothing but the tables' own scroll boxes is wider than the phone
    assert await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot = tmp_path / "status-page-phone.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    results = await Axe().run(page)
    serious = [(v["id"], v["impact"], len(v["nodes"])) for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]
    assert not serious, results.generate_report()
    await context.close()
