"""The demo page in headless Chromium: type a German sentence, translate, see the output and the
cross-attention heatmap (averaged by default, then one layer and head)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from any2seq.serve import create_app

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SENTENCE = "Ein Hund läuft über die Wiese."


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


@pytest.fixture
def page_model(request):
    """The tiny test model, or the model in $ANY2SEQ_DEMO_MODEL (the README's screenshot uses runs/demo)."""
    demo = os.environ.get("ANY2SEQ_DEMO_MODEL")
    if demo:
        import any2seq

        return any2seq.load(demo)
    return request.getfixturevalue("predictor")


def painted(driver) -> int:
    """How many distinct colours the heatmap canvas holds (1 when blank)."""
    return driver.execute_script("""
        const c = document.getElementById("heatmap"), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size;""")


def test_translate_in_the_browser_shows_outputs_and_an_attention_heatmap(browser, page_model, live_server, tmp_path):
    predictor = page_model
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 15)
    with live_server(create_app(predictor)) as server:
        browser.get(server.url + "/")
        button = wait.until(EC.element_to_be_clickable((By.ID, "submit")))
        assert "translation" in browser.find_element(By.ID, "model").text
        box = browser.find_element(By.ID, "input")
        box.clear()
        box.send_keys(SENTENCE)
        button.click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#outputs li"))
        wait.until(EC.visibility_of_element_located((By.ID, "heatmap")))
        outputs = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#outputs li")]
        assert outputs and all(text.strip() for text in outputs)
        assert browser.find_element(By.ID, "error").text == ""

        layer, head = Select(browser.find_element(By.ID, "layer")), Select(browser.find_element(By.ID, "head"))
        cfg = predictor.cfg.model.decoder
        assert layer.first_selected_option.text == head.first_selected_option.text == "average"
        assert [o.text for o in layer.options] == ["average", *map(str, range(cfg.layers))]
        assert [o.text for o in head.options] == ["average", *map(str, range(cfg.heads))]
        canvas = browser.find_element(By.ID, "heatmap")
        assert canvas.size["width"] > 50 and canvas.size["height"] > 50
        averaged = painted(browser)
        assert averaged > 4  # cells in several colours, not a blank canvas

        layer.select_by_visible_text("0")
        head.select_by_visible_text(str(cfg.heads - 1))
        time.sleep(0.2)
        assert painted(browser) > 4
        screenshot = Path(os.environ.get("ANY2SEQ_SCREENSHOT") or tmp_path / "demo.png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 1000
        severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, severe
