"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

The database is filled by the real tick (capture from the sample camera, pixel diff, ONNX
cascade, store, alerts) over part of the sample night; then a parent's session is replayed:
open the timeline, click into it, open a frame, correct the eyes, drag a new face box, undo,
step with the keyboard, decide in the review queue. Every write is checked in the database.
A screenshot is saved to artifacts/dashboard.png for a human to look at.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

import monitor
from db.store import Store
from tests.test_dashboard import dashboard_settings, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
NIGHT = date(2026, 11, 21)
TARGET = "02:08"  # inside the 02:00-02:24 wake-up of the sample night


@pytest.fixture(scope="module")
def night_db(tmp_path_factory):
    """Run the real tick every 4 minutes from 00:00 to 03:00 of the sample night."""
    data_dir = tmp_path_factory.mktemp("browser-night")
    settings = dashboard_settings(data_dir, camera_url="sample")
    settings.frames_dir.mkdir(parents=True)
    models = monitor.LazyCascade(settings)
    start = datetime.combine(NIGHT + timedelta(days=1), datetime.min.time()).astimezone()
    failures = sum(monitor.run_once(settings, start + timedelta(minutes=4 * i), models) for i in range(46))
    assert failures == 0, "the tick failed on the sample camera: are the ONNX weights built (make weights)?"
    return settings


@contextmanager
def dashboard_page(settings) -> Iterator[Page]:
    """The real app on its port and one headless Chromium page open at '/'."""
    with serving(settings) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(base + "/")
            yield page
        finally:
            browser.close()


@pytest.fixture
def browser_page(night_db, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `sudo bash .ci/system-deps.sh` (installs Debian's chromium)")
    with serving(night_db) as base, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 1000},
        )
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page, base, night_db, errors
        finally:
            context.close()


def target_tick(settings) -> int:
    """The classified tick (one with a JPEG) of TARGET o'clock."""
    at = datetime.combine(NIGHT + timedelta(days=1), datetime.strptime(TARGET, "%H:%M").time()).astimezone()
    with Store.open(settings.db_path) as store:
        rows = [r for r in store.ticks_between(0, 1e12) if r.jpeg_path]
    return min(rows, key=lambda r: abs(r.ts - at.timestamp())).id


def active_corrections(settings, tick_id: int) -> list[tuple[str, object]]:
    with Store.open(settings.db_path) as store:
        return [(c.field, c.value) for c in store.corrections(tick_id) if c.undone_ts is None]


def test_parent_corrects_a_frame_from_the_timeline_and_undoes(browser_page):
    page, base, settings, errors = browser_page
    tick_id = target_tick(settings)
    page.goto(base + "/")
    expect(page.locator("#timeline rect[data-id]").first).to_be_attached()
    # The sample night is in the past: the stale banner must be loud, and the data age shown.
    expect(page.locator("#stale")).to_be_visible()
    expect(page.locator("#stale")).to_contain_text("silent")
    expect(page.locator("#stale")).to_contain_text("Run monitor.py --check to see which part fails.")
    expect(page.locator("#age")).to_contain_text("ago")
    expect(page.locator("#sessions")).to_contain_text("wake-up")

    page.locator(f'#timeline rect[data-id="{tick_id}"]').click()
    expect(page.locator("#img")).to_have_attribute("src", f"/frames/{tick_id}.jpg")
    expect(page.locator("#details")).to_contain_text(TARGET)
    # Wait for the frame itself before drawing on it. Not by wait_for_function: its string predicate is eval'd
    # again at each poll, which the dashboard's CSP (no 'unsafe-eval') refuses once the image is still loading.
    expect(page.locator("#img")).to_have_js_property("complete", True)
    assert page.locator("#img").evaluate("img => img.naturalWidth") == 640  # the sample frame, not a broken image

    page.get_by_role("button", name="Closed").click()
    expect(page.locator("#humanline")).to_contain_text('eyes → "closed"')
    assert active_corrections(settings, tick_id) == [("presence", "present"), ("eyes", "closed")]

    img = page.locator("#img").bounding_box()
    page.mouse.move(img["x"] + 0.30 * img["width"], img["y"] + 0.20 * img["height"])
    page.mouse.down()
    page.mouse.move(img["x"] + 0.40 * img["width"], img["y"] + 0.35 * img["height"], steps=5)
    page.mouse.move(img["x"] + 0.50 * img["width"], img["y"] + 0.50 * img["height"], steps=5)
    page.mouse.up()
    expect(page.locator("#humanbox")).to_be_visible()
    box = dict(active_corrections(settings, tick_id))["face_box"]
    assert box == pytest.approx([192, 72, 320, 180], abs=3)  # frame pixels of the 640x360 sample frame

    page.keyboard.press("u")  # undo the box only
    expect(page.locator("#humanbox")).to_be_hidden()
    assert active_corrections(settings, tick_id) == [("presence", "present"), ("eyes", "closed")]

    page.keyboard.press("ArrowRight")
    expect(page.locator("#img")).not_to_have_attribute("src", f"/frames/{tick_id}.jpg")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#details")).to_contain_text(TARGET)
    expect(page.locator("#humanline")).to_contain_text('eyes → "closed"')

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert errors == []


def test_review_queue_takes_one_key_per_frame(browser_page):
    page, base, settings, errors = browser_page
    page.goto(base + "/")
    page.get_by_role("button", name="Review queue").click()
    expect(page.locator("#reviewinfo")).to_contain_text("not reviewed yet")
    expect(page.locator("#details")).to_contain_text("why review")
    first = page.locator("#img").get_attribute("src")
    page.keyboard.press("r")
    expect(page.locator("#img")).not_to_have_attribute("src", first)
    first_id = int(first.split("/")[-1].split(".")[0])
    assert active_corrections(settings, first_id) == [("reviewed", True)]
    page.keyboard.press("u")  # take it back: the frame returns
    expect(page.locator("#img")).to_have_attribute("src", first)
    assert active_corrections(settings, first_id) == []
    page.get_by_role("button", name="Model metrics").click()
    expect(page.locator("#metrics")).to_be_visible()
    assert errors == []


def test_cry_markers_are_drawn_on_the_timeline_for_ticks_above_the_threshold(tmp_path):
    from tests.test_dashboard import tick_row

    settings = dashboard_settings(tmp_path, cry_threshold=0.5)
    now = datetime.now().timestamp()
    probabilities = [None, 0.1, 0.92, 0.97, 0.3]
    with Store.open(settings.db_path) as store:
        for i, p in enumerate(probabilities):
            row = tick_row(now - 240 * (len(probabilities) - i), None)
            audio = {} if p is None else {"cry_probability": p, "dbfs": -30.0, "audio_s": 5.0}
            store.insert_tick(row.__class__(**{**row.__dict__, **audio}))
    with dashboard_page(settings) as page:
        expect(page.locator("svg [data-cry]")).to_have_count(2)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-cry.png"))


def test_a_camera_outage_is_shown_in_the_red_banner_until_a_frame_arrives(tmp_path):
    from tests.test_dashboard import tick_row

    settings = dashboard_settings(tmp_path)
    now = datetime.now().timestamp()
    reason = "camera rtsp://***@192.168.1.20:554/stream1 refused the connection"
    with Store.open(settings.db_path) as store:
        store.insert_tick(tick_row(now - 900, None))
        for k in (3, 2, 1):
            store.add_capture_failure(now - 240 * k, reason)
    with dashboard_page(settings) as page:
        banner = page.locator("#stale")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Camera unreachable since")
        expect(banner).to_contain_text("(3 failed ticks)")
        expect(banner).to_contain_text("refused the connection")
        with Store.open(settings.db_path) as store:  # then BILBO itself fails too: not only the camera's fault now
            store.add_capture_failure(now - 10, "model manifest models/weights/manifest.json is missing", camera=False)
        page.evaluate("api('/api/status')")
        expect(banner).to_contain_text("BILBO cannot watch since")
        expect(banner).to_contain_text("(4 failed ticks): model manifest")
        with Store.open(settings.db_path) as store:
            store.insert_tick(tick_row(now, None))  # a frame again: the outage is over
        page.evaluate("api('/api/status')")
        expect(banner).to_be_hidden()


def test_backup_lines_waiting_to_be_written_are_shown_in_the_banner_until_a_tick_writes_them(tmp_path):
    from db import jsonl
    from tests.test_backup import back_up
    from tests.test_dashboard import tick_row

    settings = dashboard_settings(tmp_path)
    with Store.open(settings.db_path) as store:
        row = tick_row(datetime.now().timestamp(), None)
        row = store.tick(store.insert_tick(row))
        settings.jsonl_path.mkdir()  # a folder in the way, as a full disk would refuse the append
        assert back_up(store, settings.jsonl_path, [jsonl.tick_record(row)])
    with dashboard_page(settings) as page:
        banner = page.locator("#stale")
        expect(banner).to_contain_text("Backup lines are waiting to be written (1 for ticks.jsonl)")
        settings.jsonl_path.rmdir()
        with Store.open(settings.db_path) as store:
            assert back_up(store, settings.jsonl_path, []) is None  # what the next tick's append does
        page.evaluate("api('/api/status')")
        expect(banner).to_be_hidden()
    assert [r for _, r, _ in jsonl.read_records(settings.jsonl_path)] == [jsonl.tick_record(row)]


def test_a_named_cameras_dashboard_says_whose_it_is(tmp_path):
    settings = dashboard_settings(tmp_path, camera_name="Ada")
    with dashboard_page(settings) as page:
        expect(page.locator("#title")).to_have_text("BILBO — Ada")
        expect(page).to_have_title("BILBO — Ada")


def test_the_nights_sleep_log_downloads_from_the_page_and_matches_its_summary(browser_page):
    page, base, _, errors = browser_page
    page.goto(base + "/")
    link = page.get_by_role("link", name="Download CSV")
    expect(link).to_have_attribute("href", f"/export/sleep.csv?night={NIGHT.isoformat()}")  # "Latest" = this night
    expect(page.locator("#csv-ticks")).to_have_attribute("href", f"/export/ticks.csv?night={NIGHT.isoformat()}")
    expect(page.locator("#summary")).to_contain_text("longest stretch")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == f"bilbo-sleep-{NIGHT.isoformat()}.csv"
    with open(download.value.path(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["night_of"] for r in rows} == {NIGHT.isoformat()}
    asleep_s, wakeups = sum(float(r["asleep_min"]) * 60 for r in rows), sum(int(r["wakeups"]) for r in rows)
    expect(page.locator("#summary")).to_contain_text(
        f"Asleep {int(asleep_s // 3600)} h {round(asleep_s % 3600 / 60):02d} min"
    )
    expect(page.locator("#summary")).to_contain_text(f"{wakeups} wake-up")

    page.locator("#night").fill((NIGHT - timedelta(days=3)).isoformat())  # another night chosen: the link follows
    expect(link).to_have_attribute("href", f"/export/sleep.csv?night={(NIGHT - timedelta(days=3)).isoformat()}")
    assert errors == []
