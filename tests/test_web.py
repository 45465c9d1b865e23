"""The web page end to end in a real headless Chromium (Debian's), driven by Playwright.

Needs /usr/bin/chromium (`apt-get install chromium`; `.ci/run` installs it). Set
REVSEARCH_SCREENSHOTS=DIR to keep the result page's screenshot (docs/images/ holds the
one in the README).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import DATA, lfw

# A real browser against a server of the session's `indexed` subset.
pytestmark = pytest.mark.slow

GRID = DATA / "videos" / "grid"
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>"
CHROMIUM = os.environ.get("REVSEARCH_CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network and a root user (see the environment notes in docs/).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


APPS: dict = {}  # the server fixture's app, for tests that need its internals


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
    # A photo whose file name is markup: the page must show it as text, never run it.
    # (Colin Powell, so that the README's screenshot of Blair's results stays plain.)
    hostile = work / "hostile" / "Colin_Powell"
    hostile.mkdir(parents=True)
    shutil.copy2(lfw("Colin_Powell", 70), hostile / f"{HOSTILE_NAME}.jpg")
    import revsearch

    with revsearch.connect(str(db), home=work, workers=2, progress=False) as rs:
        assert rs.index([hostile.parent], labels="parent").indexed == 1
        # The GRID clips, so that a video query has videos to find.
        assert rs.index([GRID]).videos == len(list(GRID.glob("*.mpg")))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Background jobs may index this folder (test_background_job_progress_and_report).
    (work / "incoming").mkdir()
    app = create_app(db=str(db), home=work, workers=1, allow=(str(work / "incoming"),))
    APPS["app"], APPS["incoming"] = app, work / "incoming"
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


def _until(page, script: str, timeout: float = 60) -> None:
    """Poll `script` until true. (Playwright's wait_for_function compiles its string in the
    page with eval, which the page's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"timed out waiting for {script}"
        time.sleep(0.1)


def _screenshot(page, name: str) -> None:
    """Keep the whole page (every lazy thumbnail loaded) under REVSEARCH_SCREENSHOTS."""
    shots = os.environ.get("REVSEARCH_SCREENSHOTS")
    if not shots:
        return
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    _until(page, "() => [...document.querySelectorAll('#results img')]"
                 ".every(i => i.complete && i.naturalWidth > 0)")
    page.evaluate("() => window.scrollTo(0, 0)")
    Path(shots).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(shots) / name), full_page=True)


def _result_labels(page) -> list[str]:
    return page.locator("#results .hit").evaluate_all(
        "cards => cards.map(c => c.dataset.label)")


def test_upload_click_second_face(page, server, collage):
    page.goto(server)
    _until(page, "() => document.querySelector('#stats').textContent.includes('photos')")
    page.set_input_files("#file", str(collage))
    page.locator(".facebox").nth(1).wait_for()
    assert page.locator(".facebox").count() == 2
    # The largest face (Powell) is pre-selected and searched for.
    _until(page, "() => document.querySelector('#results-title').textContent"
                 ".includes('face 0')")
    assert page.locator(".facebox.selected").get_attribute("data-index") == "0"
    assert set(_result_labels(page)[:5]) == {"Colin_Powell"}
    page.locator('.facebox[data-index="1"]').click()
    _until(page, "() => document.querySelector('#results-title').textContent"
                 ".includes('face 1')")
    labels = _result_labels(page)
    assert set(labels[:5]) == {"Tony_Blair"}
    cards = page.locator("#results .hit.match")
    assert cards.count() >= 5
    first = page.locator("#results .hit").first
    assert "match" in first.inner_text() and "Tony Blair" in first.inner_text()
    # The operating point is stated, and the strictness selector changes it.
    assert "FAR 0.001" in page.locator("#results-title").inner_text()
    page.select_option("#far", "0.0001")
    _until(page, "() => document.querySelector('#results-title').textContent"
                 ".includes('FAR 0.0001')")
    # The thumbnail (the matching face boxed, drawn by the server) arrives and decodes.
    _until(page, "() => { const i = document.querySelector('#results .hit img');"
                 " return i && i.complete && i.naturalWidth > 0; }")
    _screenshot(page, "web_results.png")


def test_file_names_are_shown_as_text_not_markup(page, server, collage):
    page.goto(server)
    _until(page, "() => document.querySelector('#stats').textContent.includes('photos')")
    page.set_input_files("#file", str(collage))
    page.locator('.facebox[data-index="1"]').wait_for()  # Powell's face is searched first
    _until(page, "() => document.querySelector('#results-title').textContent"
                 ".includes('face 0')")
    text = page.locator("#results").inner_text()
    assert HOSTILE_NAME + ".jpg" in text  # shown literally
    assert page.locator("#results img[src='x']").count() == 0
    assert page.evaluate("window.__pwned === undefined")


def test_api_docs_render_offline(page, server):
    """/docs (Swagger UI) renders from this server's own files, with no network."""
    page.goto(server + "/docs")
    page.locator(".swagger-ui .opblock-summary-path").first.wait_for()
    paths = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
    assert any("/api/search" in p for p in paths)


def test_video_query_shows_tracks_progress_and_where_the_person_appears(page, server):
    """Upload a GRID clip: a progress line while it is processed, its face track, and the
    other clip of the same man first, with the frame and time span where he appears."""
    page.goto(server)
    _until(page, "() => document.querySelector('#stats').textContent.includes('videos')")
    # Record every status line the page shows, however briefly.
    page.evaluate("() => { window.__statuses = []; new MutationObserver(() => "
                  "window.__statuses.push(document.querySelector('#status').textContent))"
                  ".observe(document.querySelector('#status'), {childList: true}); }")
    page.set_input_files("#file", str(GRID / "id2_vcd_swwp2s.mpg"))
    page.locator(".track").first.wait_for()
    _until(page, "() => document.querySelectorAll('#results .hit').length > 0")
    statuses = page.evaluate("() => window.__statuses")
    assert any(s.startswith("Processing the video") for s in statuses), statuses
    assert "track 0" in page.locator(".track").first.inner_text()
    first = page.locator("#results .hit").first
    text = first.inner_text()
    assert "pwij3p.mpg" in text and "match" in text and "VIDEO #1" in text.upper()
    assert re.search(r"seen \d+\.\d–\d+\.\d s \(frame \d+\)", text), text
    _until(page, "() => { const i = document.querySelector('#results .hit img');"
                 " return i && i.complete && i.naturalWidth > 0; }")
    assert not page.locator("#query-img").is_visible()  # a video query shows its tracks
    _screenshot(page, "web_video_results.png")


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
    _until(page, "() => document.querySelectorAll('#collection-grid img').length > 0 && "
                 "[...document.querySelectorAll('#collection-grid button')]"
                 ".every(b => b.title.includes('Blair'))")
    page.locator("#collection-grid button").first.click()
    _until(page, "() => document.querySelectorAll('#results .hit').length > 0")
    assert set(_result_labels(page)[:3]) == {"Tony_Blair"}


def _person_card(page, name: str):
    return page.locator(f'#people-grid .person[data-name="{name}"]')


def test_people_page_rename_merge_and_not_this_person(page, server):
    """The People page: persons with their representative faces and counts; open one,
    rename it inline, take a face out; merge two persons; a taken name shows an error."""
    page.goto(server)
    page.click("#tab-people")
    _until(page, "() => document.querySelectorAll('#people-grid .person img').length > 3",
           timeout=120)
    assert not page.locator("#search-page").is_visible()
    powell = _person_card(page, "Colin_Powell")
    assert powell.count() == 1 and "faces" in powell.inner_text()
    # the seeded name is shown with spaces and marked as coming from a label
    assert "Colin Powell" in powell.inner_text()
    _until(page, "() => [...document.querySelectorAll('#people-grid .person img')]"
                 ".every(i => i.complete && i.naturalWidth > 0)")
    _screenshot_people(page, "web_people.png")
    powell.locator("img").click()
    page.locator("#person-view").wait_for(state="visible")
    _until(page, "() => document.querySelectorAll('#person-items .person-item').length >= 8")
    before = page.locator("#person-items .person-item").count()
    page.fill("#person-name", "General Powell")
    page.click("#person-rename button[type=submit]")
    _until(page, "() => document.querySelector('#person-title').textContent"
                 ".startsWith('General Powell')")
    # Not this person: the last (least typical) face leaves.
    page.locator("#person-items .person-item .not-them").last.click()
    _until(page, f"() => document.querySelectorAll('#person-items .person-item').length "
                 f"== {before - 1}")
    # A name another person holds is refused, with the reason.
    page.fill("#person-name", "Tony Blair")
    page.click("#person-rename button[type=submit]")
    page.locator("#people-error").wait_for(state="visible")
    assert "already" in page.locator("#people-error").inner_text()
    page.click("#person-back")
    page.locator("#people-grid").wait_for(state="visible")
    _until(page, "() => document.querySelectorAll('#people-grid .person').length > 3")
    # Merge two persons: the grid shrinks by one and the kept one holds both.
    cards = page.locator("#people-grid .person")
    n = cards.count()
    small = [cards.nth(i) for i in range(n - 2, n)]
    faces = [int(c.inner_text().split(" faces")[0].split()[-1]) for c in small]
    for c in small:
        c.locator(".pick").check()
    page.click("#people-merge")
    _until(page, f"() => document.querySelectorAll('#people-grid .person').length == {n - 1}")
    body = page.evaluate("async () => (await (await fetch('/api/people?limit=500')).json())")
    assert any(p["faces"] == sum(faces) for p in body["people"])


def _screenshot_people(page, name: str) -> None:
    shots = os.environ.get("REVSEARCH_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / name), full_page=False)
def test_background_job_progress_and_report(page, server):
    """A job's progress while it runs, then its report with the files not indexed (named
    as text: file names come from the user's folders). Runs last: it adds to the index."""
    import httpx

    incoming = APPS["incoming"] / "Gerhard_Schroeder"
    incoming.mkdir()
    for i in (1, 2):
        shutil.copy2(lfw("Gerhard_Schroeder", i), incoming)
    (incoming / f"{HOSTILE_NAME}.jpg").write_bytes(b"not a photo")
    writer = APPS["app"].app.state.service._index_lock
    with writer:  # another writer holds the index: the job waits, shown as running
        r = httpx.post(server + "/api/jobs", json={"paths": [str(incoming)]}, timeout=30)
        assert r.status_code == 202, r.text
        page.goto(server)
        _until(page, "() => document.querySelector('#job-line').textContent"
                     ".startsWith('Indexing ')")
        assert str(incoming) in page.inner_text("#job-line")
        assert page.locator("#job-progress").is_visible()
    _until(page, "() => document.querySelector('#job-line').textContent"
                 ".startsWith('Indexed ')", timeout=120)
    line = page.inner_text("#job-line")
    assert "2 new or changed file(s)" in line and "1 not indexed" in line, line
    assert not page.locator("#job-progress").is_visible()
    page.click("#job-problems summary")
    problem = page.inner_text("#job-problems li")
    assert HOSTILE_NAME in problem and "not an image or video" in problem
    assert page.evaluate("() => window.__pwned") is None
    _until(page, "() => document.querySelector('#stats').textContent.includes('photos')")
