"""The console in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, through
Selenium) against the console served over HTTP by uvicorn, on the session's real runtime: refused
without a token, log in, filter the runs, open a failed run, retry it from its failed step with an
edited payload and watch it succeed, cancel a running run.

With ``CAMPAIGNFLOW_CONSOLE_SCREENSHOTS=DIR`` it also saves the runs list and a run page there
(``docs/img`` holds the ones the README shows)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.console.conftest import (
    OPERATE_TOKEN,
    SHAPES_TYPE,
    SLOW_TYPE,
    event,
    ingest_direct,
    make_app,
    route_test_flows,
)
from tests.support.runs import envelope, wait_for_run
from tests.support.threads import release_all_result_backends
from tests.support.wait import eventually

SHOTS = os.environ.get("CAMPAIGNFLOW_CONSOLE_SCREENSHOTS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def console_url(worker: object) -> Iterator[str]:
    """The API and the console served over real HTTP (uvicorn in a thread)."""
    route_test_flows()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(make_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    eventually(lambda: server.started, 15, "the console to serve")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)
    release_all_result_backends()  # of the server's threads, which sent tasks (retries) and ended


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail("chromium or chromium-driver is not installed; run: sudo bash scripts/setup-system.sh")
    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1440,1000")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _open(browser: WebDriver, url: str) -> None:
    browser.delete_all_cookies()
    browser.get(url)


def _log_in(browser: WebDriver, token: str) -> None:
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "login").click()


def _text(browser: WebDriver, css: str) -> str:
    """The text of ``css`` once the page shows it (a click's navigation may still be under way)."""

    def shown() -> str:
        try:
            return str(browser.find_element(By.CSS_SELECTOR, css).text) or " "
        except (NoSuchElementException, StaleElementReferenceException) as exc:
            raise AssertionError(f"{css} not on the page yet") from exc

    return eventually(shown, 10, f"{css} on the page")


def _shot(browser: WebDriver, name: str) -> None:
    if not SHOTS:
        return
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1440, min(max(height, 700), 2400))
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(Path(SHOTS) / name))
    browser.set_window_size(1440, 1000)


def test_refused_without_a_token(console_url: str, browser: WebDriver) -> None:
    [run_id] = ingest_direct(event("browser-refused", SLOW_TYPE, x=1))
    _open(browser, f"{console_url}/runs/{run_id}")
    assert browser.current_url.startswith(f"{console_url}/login?next=")
    assert not browser.find_elements(By.ID, "run-head")
    _log_in(browser, "not-a-token-of-this-console")
    assert _text(browser, "#login-error") == "unknown token"
    assert not browser.find_elements(By.ID, "run-head")
    assert "console-slow" not in browser.page_source  # nothing of the run is shown
    browser.get(f"{console_url}/runs")
    assert browser.current_url.startswith(f"{console_url}/login")
    assert not browser.find_elements(By.ID, "runs")


def test_filter_open_a_failed_run_retry_it_with_an_edited_payload(
    console_url: str, browser: WebDriver
) -> None:
    ok = ingest_direct(*(event(f"browser-ok-{i}", fail_attempts=0) for i in range(3)))
    [shapes] = ingest_direct(event("browser-shapes", SHAPES_TYPE, hot=True, items=[1, 2]))
    [failed] = ingest_direct(event("browser-failed", fail_attempts=99, keep="me"))
    for run_id in (*ok, shapes):
        wait_for_run(run_id)
    assert wait_for_run(failed).status == "failed"
    _open(browser, f"{console_url}/runs")
    _log_in(browser, OPERATE_TOKEN)
    _text(browser, "#runs")
    assert browser.current_url == f"{console_url}/runs"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr[data-run]")) == 5
    _shot(browser, "console-runs.png")
    # filter: failed runs only
    browser.find_element(By.CSS_SELECTOR, "input[name=status][value=failed]").click()
    browser.find_element(By.ID, "apply").click()

    def only_the_failed_run() -> bool:
        assert "status=failed" in browser.current_url
        try:
            shown = [
                r.get_attribute("data-run")
                for r in browser.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]")
            ]
        except StaleElementReferenceException as exc:  # the page refreshed its table meanwhile
            raise AssertionError("the table was replaced") from exc
        assert shown == [failed], shown
        return True

    eventually(only_the_failed_run, 10, "the filtered list")
    # open it: step b failed, in the graph and in the step list
    browser.find_element(By.CSS_SELECTOR, f"#runs a[href='/runs/{failed}']").click()
    _text(browser, "#run-head")
    assert (
        browser.find_element(By.CSS_SELECTOR, "g.node[data-step=b]").get_attribute("data-status") == "failed"
    )
    assert browser.find_element(By.ID, "step-b").get_attribute("data-status") == "failed"
    _shot(browser, "console-run.png")
    # retry from the failed step with an edited payload, confirmed on the next page
    payload = browser.find_element(By.ID, "payload")
    payload.clear()
    payload.send_keys('{"fail_attempts": 0, "keep": "me", "note": "fixed"}')
    browser.find_element(By.ID, "retry").click()
    assert '"note": "fixed"' in _text(browser, "#patch")
    assert envelope(failed).status == "failed"  # nothing happens before the confirmation
    browser.find_element(By.ID, "confirm").click()
    assert "retried" in _text(browser, ".notice")

    def succeeded() -> bool:  # the page refreshes itself: no reload here
        try:
            status = browser.find_element(By.CSS_SELECTOR, "#run-head .badge").text
        except StaleElementReferenceException as exc:
            raise AssertionError("the header was replaced") from exc
        assert status == "succeeded", status
        return True

    eventually(succeeded, 30, "the run page to show the run succeeded")
    assert browser.find_element(By.ID, "step-b").get_attribute("data-status") == "succeeded"
    assert envelope(failed).metadata.payload == {"fail_attempts": 0, "keep": "me", "note": "fixed"}
    if SHOTS:
        browser.get(f"{console_url}/runs/{shapes}")
        _shot(browser, "console-run-shapes.png")


def test_cancel_a_running_run(console_url: str, browser: WebDriver) -> None:
    [run_id] = ingest_direct(event("browser-cancel", SLOW_TYPE, x=1))
    eventually(lambda: envelope(run_id).status == "running", 15, "the slow run to start")
    _open(browser, f"{console_url}/runs/{run_id}")
    _log_in(browser, OPERATE_TOKEN)
    _text(browser, "#cancel")
    browser.find_element(By.ID, "cancel").click()
    assert "Cancel run" in _text(browser, "section.confirm h1")
    browser.find_element(By.ID, "confirm").click()
    assert "cancelled" in _text(browser, ".notice")
    assert _text(browser, "#run-head .badge") == "cancelled"
    assert not browser.find_elements(By.ID, "cancel")
    env = wait_for_run(run_id)
    assert env.status == "cancelled"
    after = env.record("after")
    assert after is None or after.attempts == 0  # the step after the cancelled one never ran
