"""The demo page in headless Chromium: type a German sentence, translate, see the output and the
cross-attention heatmap (averaged by default, then one layer and head); speak a digit into a speech
model's page through Chromium's fake microphone and see its transcript."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from any2seq.data.audio_io import read_audio
from any2seq.serve import create_app

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SENTENCE = "Ein Hund läuft über die Wiese."


def chromium(tmp_path, *extra_flags: str):
    """Headless Chromium driven by selenium, quit and cleaned up when the generator closes."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,1000", f"--user-data-dir={tmp_path / 'chromium'}",
                 *extra_flags):
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
def browser(tmp_path):
    yield from chromium(tmp_path)


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


FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"
SPOKEN = "7_nicolas_20.wav"  # a recording the tests' speech model transcribes


@pytest.fixture
def microphone(tmp_path):
    """Chromium whose fake microphone plays one spoken digit (48 kHz, with silence around it) once."""
    if not FSDD.is_dir():
        pytest.skip(f"the Free Spoken Digit Dataset is not at {FSDD}")
    import numpy as np
    import soundfile
    import soxr

    audio, rate = soundfile.read(FSDD / SPOKEN, dtype="float32")
    audio = soxr.resample(audio, rate, 48000)
    silence = np.zeros(24000, np.float32)
    soundfile.write(tmp_path / "spoken.wav", np.concatenate([silence, audio, silence, silence]), 48000,
                    subtype="PCM_16")
    yield from chromium(tmp_path, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                        "--autoplay-policy=no-user-gesture-required",
                        f"--use-file-for-fake-audio-capture={tmp_path / 'spoken.wav'}%noloop")


def speech_seconds(audio) -> tuple[float, float]:
    """(seconds of 20 ms frames within 20 dB of the loudest, the loudest frame's RMS) of 8 kHz audio."""
    import numpy as np

    rms = np.sqrt(np.mean(audio[: len(audio) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    return float(np.sum(rms > 0.1 * rms.max()) * 0.02), float(rms.max())


def recorded_wav(driver) -> bytes:
    """The bytes behind the page's playback element (a blob: URL), fetched inside the page."""
    import base64

    data = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById("playback").src).then((r) => r.arrayBuffer()).then((buffer) => {
          let text = "";
          for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
          done(btoa(text));
        });""")
    return base64.b64decode(data)


def test_speak_into_the_page_and_see_the_transcript_and_attention(microphone, speech_model, live_server):
    import any2seq
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    predictor = any2seq.load(speech_model)
    wait = WebDriverWait(microphone, 30)
    with live_server(create_app(predictor)) as server:
        microphone.get(server.url + "/")
        record = wait.until(EC.element_to_be_clickable((By.ID, "record")))
        Select(microphone.find_element(By.ID, "mode")).select_by_value("greedy")
        record.click()
        wait.until(lambda d: record.text == "Stop")
        time.sleep(2.5)  # the fake microphone's 2 s of audio: silence, the digit, silence
        record.click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#outputs li") or d.find_element(By.ID, "error").text)
        assert microphone.find_element(By.ID, "error").text == ""
        outputs = microphone.execute_script(  # each output's text, without the score beside it
            "return [...document.querySelectorAll('#outputs li')].map((li) => li.firstChild.textContent)")
        wait.until(EC.visibility_of_element_located((By.ID, "heatmap")))
        assert painted(microphone) > 4  # the attention over the recording's frames
        heard = recorded_wav(microphone)  # the WAV the page sent, kept for playback
        recorded, spoken = speech_seconds(read_audio(heard, 8000, name="recording.wav")), speech_seconds(
            read_audio(FSDD / SPOKEN))
        assert 0.5 < recorded[0] / spoken[0] < 2 and 0.3 < recorded[1] / spoken[1] < 3  # the digit, not silence
        assert outputs[0] == predictor.translate([heard], beam=1)[0] != ""  # its transcript
        severe = [e for e in microphone.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, severe
