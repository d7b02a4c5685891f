"""The operator's view, in a real browser: `dagster dev` on a free loopback port with its own
DAGSTER_HOME, inbox and store; sample media dropped in the inbox; once the sensor's runs have
succeeded, headless Chromium (Debian's package, driven by Playwright; no browser download)
checks the asset lineage, a batch's contact sheet, a lookup's thumbnail, a quarantine record,
and a rebuild launched from the launchpad. Screenshots go to $MEDIA_ASSETS_SCREENSHOTS (the
README's come from `make screenshots`).

Without Chromium the tests skip with the reason, unless MEDIA_ASSETS_REQUIRE_BROWSER=1 (set by
.ci/run), where they fail instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from media_assets.records.catalog import read_arrivals
from media_assets.storage import LocalObjectStore
from media_assets_tests.dagster_dev import dagster_dev, wait_for

try:
    from playwright import sync_api as playwright_sync
except ImportError:
    if os.environ.get("MEDIA_ASSETS_REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)
expect = playwright_sync.expect
# expect()'s own default is 5 s (apart from the context's action timeout): too tight on a
# 2-core machine while dagster runs start next to the browser.
expect.set_options(timeout=20_000)

SHOTS = Path(os.environ.get("MEDIA_ASSETS_SCREENSHOTS")
             or Path(tempfile.gettempdir()) / "media_assets_screenshots")
LOCATION = "media_assets"  # code location name == repoPath in /locations/<repoPath>/...
pytestmark = pytest.mark.slow


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/lib/chromium/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None












@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """`dagster dev` with the sample media processed: every sensor-launched run succeeded."""
    with dagster_dev(tmp_path_factory.mktemp("ui")) as running:
        running.wait_until_ready()
        # The "Join the Dagster community" dialog opens 1 s after the first page load on
        # localhost/127.0.0.1 and blocks clicks; mark it seen on this (fresh) instance.
        assert running.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
        subprocess.run([sys.executable, "-m", "media_assets.samples", str(running.inbox),
                        "--width", "480", "--height", "360"], check=True, capture_output=True)

        def all_done():
            # the sensor may split the samples over several batches (files settle 2 s after
            # their last write): wait until the inbox is drained and every run has ended
            if any(p.is_file() for p in running.inbox.rglob("*")):
                return None
            found = running.runs()
            if not {"process_images", "process_av"} <= {r["jobName"] for r in found}:
                return None
            if any(r["status"] not in ("SUCCESS", "FAILURE", "CANCELED") for r in found):
                return None
            return found

        found = wait_for(all_done, 120, "the sensor's sample runs")
        assert all(r["status"] == "SUCCESS" for r in found), found
        yield running


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        if os.environ.get("MEDIA_ASSETS_REQUIRE_BROWSER") == "1":
            pytest.fail("no chromium, but MEDIA_ASSETS_REQUIRE_BROWSER=1: apt-get install chromium")
        pytest.skip("no chromium: apt-get install chromium (see .ci/run)")
    with playwright_sync.sync_playwright() as p:
        # Playwright's bundled-browser lookup is bypassed by executable_path; --no-sandbox is
        # what Playwright passes by default anyway (chromium_sandbox=False), needed as root.
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    yield pg
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def batch_of(root: Path, source_name: str) -> str:
    """The batch (partition key) that catalogued `source_name`."""
    arrivals = read_arrivals(LocalObjectStore(root / "store"))
    [key] = [r["batch_key"] for r in arrivals.iter_rows(named=True)
             if r["source_name"] == source_name]
    return key


def natural_width(locator) -> int:
    expect(locator).to_be_visible()
    # a data: URI decodes asynchronously: wait until the image has loaded before reading it
    locator.page.wait_for_function("e => e.complete && e.naturalWidth > 0",
                                   arg=locator.element_handle())
    return locator.evaluate("e => e.naturalWidth")


def test_the_lineage_graph_shows_every_asset_from_originals_to_the_archive(dev, page):
    base = dev.base_url
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{base}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    # Groups start collapsed. The graph's toolbar cog (an icon button named "settings"; the
    # left nav's is "settings Settings") opens a menu; it stays open after a click.
    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.get_by_role("menuitem", name="Change graph to vertical orientation").click()
    page.keyboard.press("Escape")
    # Both choices persist in localStorage; a reload zooms the expanded graph to fit.
    page.reload()
    for name in ("originals", "thumbnails", "web_rendition", "catalog", "catalog_archive"):
        expect(page.get_by_text(name, exact=True).last).to_be_visible()
    page.wait_for_timeout(500)  # the zoom-to-fit animation
    shot(page, "lineage")


def test_a_batch_partition_shows_its_contact_sheet(dev, page):
    root, base = dev.root, dev.base_url
    batch = batch_of(root, "web.webp")
    page.goto(f"{base}/assets/thumbnails?view=partitions&partition={batch}")
    expect(page.get_by_role("tab", name="Partitions", selected=True)).to_be_visible()
    # the key shows in the partition list and as the detail header (each also has a hidden
    # MiddleTruncate "measure" copy, hence visible=True)
    expect(page.get_by_text(batch, exact=True).filter(visible=True)).to_have_count(2)
    # Markdown metadata is not inline: the cell holds an <a> (no href, so not role=link)
    # "[Show Markdown]" that opens a dialog rendering the markdown.
    row = page.get_by_role("row").filter(
        has=page.get_by_role("cell", name="contact_sheet", exact=True))
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text="contact_sheet")
    # every file of the batch, captioned, in pages (alt text: "page 1 of N: files 1–k of n")
    expect(dialog).to_contain_text(re.compile(r"\d+ files on \d+ pages of up to 48"))
    sheet = dialog.get_by_role("img", name=re.compile(r"^page 1 of \d+: files 1–\d+ of \d+"))
    assert natural_width(sheet) > 0
    assert sheet.get_attribute("src").startswith("data:image/webp;base64,")
    shot(page, "contact_sheet")


def launch_lookup(page, dev, query: str, via: str = "url") -> str:
    config = f"ops:\n  find_file:\n    config:\n      query: {query}\n"
    return launch(page, dev, "lookup_file", config, via)


def launch(page, dev, job: str, config: str, via: str = "url") -> str:
    """Launch `job` from the launchpad with YAML `config`; return the run page URL once the
    run succeeded. via="url": config passed in the URL; via="editor": typed into CodeMirror."""
    if via == "url":
        # /playground/setup?config=<yaml> opens a new launchpad tab holding that YAML and
        # redirects to /playground (what "Open in Launchpad" links use): no editor typing.
        page.goto(f"{dev.base_url}/locations/{LOCATION}/jobs/{job}/playground/setup?"
                  + urllib.parse.urlencode({"config": config}))
        page.wait_for_url(re.compile(rf"/jobs/{job}/playground$"))
    else:
        page.goto(f"{dev.base_url}/locations/{LOCATION}/jobs/{job}/playground")
        # The editor is CodeMirror 5 (.CodeMirror is CM5's own class, not a hashed CSS module
        # class). keyboard.type() would be auto-indented line by line (nested indentation
        # doubles); insert_text() pastes the text as one input event.
        expect(page.locator(".CodeMirror")).to_be_visible()
        page.locator(".CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(config)
    expect(page.get_by_text("No errors")).to_be_visible()
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    status = wait_for(lambda: (s := dev.run_status(run_id)) in ("SUCCESS", "FAILURE", "CANCELED")
                      and s, 90, f"{job} run {run_id}")
    assert status == "SUCCESS"
    expect(page.get_by_text("RUN_SUCCESS")).to_be_visible()
    return page.url


def open_output_entry(page, run_url: str, entry: str):
    """Open the run's STEP_OUTPUT event's `entry` metadata dialog; return that dialog."""
    # ?logs=type:STEP_OUTPUT pre-fills the log filter. The long output row is truncated and
    # its overlay intercepts clicks on the row: open it with "View full message" first.
    page.goto(f"{run_url}?logs=" + urllib.parse.quote("type:STEP_OUTPUT"))
    page.get_by_role("button", name="View full message").click()
    full = page.get_by_role("dialog").filter(has_text="STEP_OUTPUT")
    full.get_by_role("row").filter(
        has=page.get_by_role("cell", name=entry, exact=True)).get_by_text("[Show").click()
    # the entry's own dialog opens on top; its title is the entry name
    return page.get_by_role("dialog").filter(
        has=page.get_by_role("button", name="Copy")).filter(has_text=entry)


def test_a_lookup_from_the_launchpad_shows_the_files_thumbnail(dev, page):
    run_url = launch_lookup(page, dev, "web.webp")
    dialog = open_output_entry(page, run_url, "thumbnail")
    thumb = dialog.get_by_role("img", name="thumbnail", exact=True)
    assert natural_width(thumb) > 0
    shot(page, "lookup_thumbnail")


def test_a_quarantined_files_lookup_shows_its_reason(dev, page):
    run_url = launch_lookup(page, dev, "broken.jpg", via="editor")
    dialog = open_output_entry(page, run_url, "quarantine_record")
    expect(dialog).to_contain_text('"source_name": "broken.jpg"')
    expect(dialog).to_contain_text(re.compile(r'"reason": "(truncated|corrupt)"'))
    shot(page, "lookup_quarantine")



def test_a_rebuild_launched_from_the_launchpad_succeeds(dev, page):
    config = ("ops:\n  rebuild_op:\n    config:\n      mode: all\n"
              "      derivatives: [thumbnail]\n      dry_run: false\n")
    run_url = launch(page, dev, "rebuild_derivatives", config)
    page.goto(f"{run_url}?logs=" + urllib.parse.quote("type:STEP_OUTPUT"))
    expect(page.get_by_text("RUN_SUCCESS").or_(page.get_by_text("STEP_OUTPUT")).first) \
        .to_be_visible()
    shot(page, "rebuild_run")


def test_a_policy_change_proposed_and_applied_from_the_launchpad_takes_effect(dev, page):
    """Propose (the prefilled example patch: sharper thumbnails), then apply as a second
    person; the active version in the store changes, with who and why."""
    store = LocalObjectStore(dev.store_root)
    before = json.loads(store.read_bytes("control/policy/active.json"))
    config = ("ops:\n  propose_op:\n    config:\n      reason: sharper thumbnails\n"
              "      proposed_by: ann\n")
    propose_url = launch(page, dev, "propose_policy_change", config)
    dialog = open_output_entry(page, propose_url, "diff")
    expect(dialog).to_contain_text("quality: 85")
    shot(page, "policy_proposal")
    [proposal] = [k.rsplit("/", 1)[1].removesuffix(".json")
                  for k in store.list("control/policy/proposals/")]
    config = (f"ops:\n  apply_op:\n    config:\n      proposal_id: {proposal}\n"
              "      approved_by: ben\n")
    launch(page, dev, "apply_policy_change", config, via="editor")
    after = json.loads(store.read_bytes("control/policy/active.json"))
    assert after["digest"] != before["digest"] and after["by"] == "ann (approved by ben)"
    assert after["why"] == "sharper thumbnails"
