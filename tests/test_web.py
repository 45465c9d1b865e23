"""The web page end to end in a real headless Chromium (Debian's), driven by Playwright.

Needs /usr/bin/chromium (`apt-get install chromium`; `.ci/run` installs it). Set
REVSEARCH_SCREENSHOTS=DIR to keep the result page's screenshot (docs/images/ holds the
one in the README).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("REVSEARCH_CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network and a root user (see the environment notes in docs/).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(indexed, tmp_path_factory):
    import uvicorn

    from revsearch.serve import create_app

    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    work = tmp_path_factory.mktemp("web")
    db = work / "web.db"
    shutil.copytree(indexed["db"], db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(db=str(db), home=work, workers=1)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def _result_labels(page) -> list[str]:
    return page.locator("#results .hit").evaluate_all(
        "cards => cards.map(c => c.dataset.label)")


def test_upload_click_second_face(page, server, collage):
    page.goto(server)
    page.wait_for_function("document.querySelector('#stats').textContent.includes('photos')")
    page.set_input_files("#file", str(collage))
    page.locator(".facebox").nth(1).wait_for()
    assert page.locator(".facebox").count() == 2
    # The largest face (Powell) is pre-selected and searched for.
    page.wait_for_function("document.querySelector('#results-title').textContent"
                           ".includes('face 0')")
    assert page.locator(".facebox.selected").get_attribute("data-index") == "0"
    assert set(_result_labels(page)[:5]) == {"Colin_Powell"}
    page.locator('.facebox[data-index="1"]').click()
    page.wait_for_function("document.querySelector('#results-title').textContent"
                           ".includes('face 1')")
    labels = _result_labels(page)
    assert set(labels[:5]) == {"Tony_Blair"}
    cards = page.locator("#results .hit.match")
    assert cards.count() >= 5
    first = page.locator("#results .hit").first
    assert "match" in first.inner_text() and "Tony Blair" in first.inner_text()
    # The thumbnail (the matching face boxed, drawn by the server) arrives and decodes.
    page.wait_for_function("(() => { const i = document.querySelector('#results .hit img');"
                           " return i && i.complete && i.naturalWidth > 0; })()")
    shots = os.environ.get("REVSEARCH_SCREENSHOTS")
    target = Path(shots) if shots else Path(os.environ.get("TMPDIR", "/tmp"))
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / "web_results.png"), full_page=True)


def test_non_image_upload_shows_the_error(page, server, tmp_path):
    page.goto(server)
    bogus = tmp_path / "holiday.jpg"
    bogus.write_text("this is a text file with a .jpg name")
    page.set_input_files("#file", str(bogus))
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "Unsupported file" in error.inner_text()
    assert "not an image or a video" in error.inner_text()


def test_pick_from_collection(page, server):
    page.goto(server)
    page.click("#browse")
    page.fill("#collection-filter", "Blair")
    page.wait_for_function("document.querySelectorAll('#collection-grid img').length > 0 && "
                           "[...document.querySelectorAll('#collection-grid button')]"
                           ".every(b => b.title.includes('Blair'))")
    page.locator("#collection-grid button").first.click()
    page.wait_for_function("document.querySelectorAll('#results .hit').length > 0")
    assert set(_result_labels(page)[:3]) == {"Tony_Blair"}
