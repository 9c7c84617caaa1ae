"""The page of pynima serve, end to end in real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): upload images, wait for the scores, read them from the DOM and compare them with the API; keyboard access,
sorting, a per-image error and phone width. A screenshot is saved as a test artifact (PYNIMA_TEST_ARTIFACTS,
default runs/test-artifacts/)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from PIL import Image
from test_serve import start, stop

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("PYNIMA_TEST_ARTIFACTS", REPO / "runs" / "test-artifacts"))
pytestmark = [
    pytest.mark.browser,
    pytest.mark.serve,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"
    ),
]


@pytest.fixture(scope="module")
def server():
    proc, url = start()
    yield url
    stop(proc)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_upload_scores_match_the_api_and_the_page_works_by_keyboard_and_at_phone_width(
    server, browser, photos, tmp_path
):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    files = []
    for i, photo in enumerate(photos):
        files.append(tmp_path / f"photo{i}.jpg")
        Image.fromarray(photo if i == 0 else photo[::2, ::2]).save(files[-1], quality=85)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a jpeg")
    api = {
        r["name"]: r
        for r in httpx.post(
            server + "/v1/score", timeout=30, files=[("files", (p.name, p.read_bytes())) for p in files]
        ).json()["results"]
    }

    browser.get(server + "/")
    assert browser.title.startswith("pynima")
    reached = []
    for _ in range(4):  # the file picker is reachable by keyboard, within the first stops of Tab
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.append(browser.switch_to.active_element.get_attribute("id"))
    assert "files" in reached, reached
    picker = browser.find_element(By.ID, "files")
    picker.send_keys("\n".join(str(p) for p in files + [broken]))
    WebDriverWait(browser, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".score")) == 2 and d.find_elements(By.CSS_SELECTOR, ".error")
    )
    shown = {card.get_attribute("data-name"): card for card in browser.find_elements(By.CSS_SELECTOR, "li.card")}
    assert set(shown) == {p.name for p in files} | {"broken.jpg"}
    for name, result in api.items():
        mean = float(shown[name].find_element(By.CSS_SELECTOR, ".score").get_attribute("data-mean"))
        assert abs(mean - result["mean"]) < 1e-6
        assert len(shown[name].find_elements(By.CSS_SELECTOR, ".bars span")) == 10
    assert "not an image" in shown["broken.jpg"].find_element(By.CSS_SELECTOR, ".error").text
    anchors = httpx.get(server + "/v1/model").json()["anchors"]  # the bundled model's: what typical versions score
    assert anchors.startswith("On 6 scikit-image photos: clean ")
    assert browser.find_element(By.ID, "anchors").text == anchors

    Select(browser.find_element(By.ID, "sort")).select_by_value("best")
    means = [float(e.get_attribute("data-mean")) for e in browser.find_elements(By.CSS_SELECTOR, ".score")]
    assert means == sorted(means, reverse=True)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "page.png"))
    browser.set_window_size(390, 844)  # a phone
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.save_screenshot(str(ARTIFACTS / "page-phone.png"))
    assert (ARTIFACTS / "page.png").stat().st_size > 10_000


@pytest.mark.slow
def test_more_files_than_one_request_takes_warnings_labels_and_rescoring_when_the_crops_change(
    photos, browser, tmp_path
):
    """The server takes 2 files per request: 5 go in three requests, every card scored. A small image shows the
    server's padding warning; the bars carry their scores 0-9; choosing grid crops rescored every image with them."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    proc, server = start("--max-files", "2")
    try:
        files = []
        for i in range(4):
            files.append(tmp_path / f"photo{i}.png")
            Image.fromarray(photos[i % len(photos)][i * 8 :, i * 8 :]).save(files[-1])
        files.append(tmp_path / "small.png")
        Image.fromarray(photos[0][:120, :100]).save(files[-1])
        api = {}
        for mode in ("centre", "grid"):
            for part in (files[:2], files[2:4], files[4:]):
                answer = httpx.post(
                    f"{server}/v1/score?crops={mode}",
                    timeout=60,
                    files=[("files", (p.name, p.read_bytes())) for p in part],
                ).json()
                api.update({(mode, r["name"]): r for r in answer["results"]})

        browser.get(server + "/")
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return maxFiles") == 2)
        browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in files))

        def shown(mode):  # the status first: once it says done, the cards are not rendered again
            if "(" + mode + " crops)" not in browser.find_element(By.ID, "status").text:
                return None
            cards = browser.find_elements(By.CSS_SELECTOR, "li.card")
            return {c.get_attribute("data-name"): c for c in cards} if len(cards) == 5 else None

        for mode in ("centre", "grid"):
            if mode == "grid":
                Select(browser.find_element(By.ID, "crops")).select_by_value("grid")
            cards = WebDriverWait(browser, 120, ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d, m=mode: shown(m)
            )
            assert not browser.find_elements(By.CSS_SELECTOR, ".error")
            for name, card in cards.items():
                mean = float(card.find_element(By.CSS_SELECTOR, ".score").get_attribute("data-mean"))
                assert abs(mean - api[mode, name]["mean"]) < 1e-6, (mode, name)
                ticks = [t.text for t in card.find_elements(By.CSS_SELECTOR, ".ticks span")]
                assert ticks == [str(k) for k in range(10)]
            warning = cards["small.png"].find_element(By.CSS_SELECTOR, ".warning").text
            assert "100x120 is smaller than the 224x224 crop" in warning
            assert not cards["photo0.png"].find_elements(By.CSS_SELECTOR, ".warning")
        assert "spread" in browser.find_element(By.TAG_NAME, "p").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "page-five-files-grid.png"))
    finally:
        stop(proc)


@pytest.mark.slow
def test_the_api_page_works_offline_and_can_upload(server, browser):
    """/docs is Swagger UI from the package's own files (this browser reaches no CDN either way: the machine is
    offline), and the score operation declares its body, so Try it out offers a file upload."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/docs")
    WebDriverWait(browser, 60).until(
        lambda d: any("/v1/score" in e.text for e in d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    )
    operation = browser.find_element(By.CSS_SELECTOR, ".opblock-post")
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    browser.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-post input[type=file]"))
    assert "ScoreResponse" in browser.page_source
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "api-docs.png"))
