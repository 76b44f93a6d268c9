"""The viewer in a real headless Chromium: it opens from a signed link, shows the API's numbers,
moves through planes by slider, keys and wheel, toggles overlays and windows, and paints the
class colour exactly where the model's mask is (checked on a saved screenshot)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from ich_client import Analysis, Client
from PIL import Image
from scipy.ndimage import binary_erosion
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import update

from api.db import analyses, connect
from api.process import GatewayProcess
from ich.schema import HemorrhageClass

CHROMA = 40
"""max - min of R, G, B above which a pixel is coloured (the tint adds about 140)."""
GREY = 6
"""At most this much chroma where nothing is drawn (greys may pick up rounding)."""


def _body(browser: webdriver.Chrome, name: str) -> str:
    return browser.find_element(By.TAG_NAME, "body").get_attribute(f"data-{name}") or ""


def _drawn(browser: webdriver.Chrome, timeout: float = 30) -> int:
    """The plane shown once it is drawn (and no error was reported)."""

    def settled(driver: webdriver.Chrome) -> bool:
        if _body(driver, "error"):
            raise AssertionError(f"viewer error: {_body(driver, 'error')}")
        return _body(driver, "drawn") != "" and _body(driver, "drawn") == _body(driver, "plane")

    WebDriverWait(browser, timeout).until(settled)
    return int(_body(browser, "plane"))


def _frame(browser: webdriver.Chrome) -> np.ndarray:
    """The image area (canvas and boxes) as the user sees it, RGB."""
    png = browser.find_element(By.ID, "frame").screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _chroma(rgb: np.ndarray) -> np.ndarray:
    return rgb.max(axis=-1) - rgb.min(axis=-1)


def _on_screen(mask: np.ndarray, shot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Screenshot rows and columns of the centres of the mask's pixels."""
    rows, columns = np.nonzero(mask)
    height, width = shot.shape[:2]
    y = ((rows + 0.5) * height / mask.shape[0]).astype(int)
    x = ((columns + 0.5) * width / mask.shape[1]).astype(int)
    return y, x


@pytest.fixture(scope="module")
def opened(browser: webdriver.Chrome, sdk: Client, positive: Analysis) -> webdriver.Chrome:
    link = sdk.viewer_link(positive)
    browser.get(link.url)
    _drawn(browser)
    return browser


def test_the_link_opens_the_page_without_its_token(
    opened: webdriver.Chrome, positive: Analysis
) -> None:
    assert opened.current_url.endswith(f"/viewer/{positive.id}")
    assert "Unverified triage aid" in opened.find_element(By.CLASS_NAME, "notice").text
    assert positive.model is not None
    assert positive.model.version in opened.find_element(By.ID, "model").text
    errors = [e for e in opened.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_the_side_panel_shows_the_apis_numbers(
    opened: webdriver.Chrome, positive: Analysis
) -> None:
    result = positive.result
    assert result is not None
    for finding in result.classes:
        row = opened.find_element(By.CSS_SELECTOR, f'tr[data-class="{finding.hemorrhage_class}"]')
        volume = row.find_element(By.CLASS_NAME, "volume")
        assert float(volume.get_attribute("data-ml") or "nan") == finding.total_volume_ml
        assert volume.text == f"{finding.total_volume_ml:.2f} mL"
        assert (row.find_elements(By.TAG_NAME, "td")[1].text == "flagged") == finding.flagged
    assert opened.find_element(By.ID, "summary").get_attribute("data-flagged") == "true"
    listed = opened.find_elements(By.CSS_SELECTOR, "#hemorrhages button")
    assert len(listed) == len(result.hemorrhages)
    for button, hemorrhage in zip(listed, result.hemorrhages, strict=True):
        assert f"{hemorrhage.volume_ml:.2f} mL" in button.text
    shown = [
        w.get_attribute("data-code") for w in opened.find_elements(By.CSS_SELECTOR, "#warnings li")
    ]
    expected = {w.code for w in [*positive.warnings, *result.warnings]}
    assert set(filter(None, shown)) == expected


def test_the_mask_is_painted_where_the_model_found_blood(
    opened: webdriver.Chrome, positive: Analysis, plane, artifacts: Path
) -> None:
    k = _drawn(opened)
    _, label = plane(positive, k)
    assert label.any(), f"the viewer opened on plane {k}, which has no blood"
    opened.save_screenshot(str(artifacts / "viewer-positive.png"))
    shot = _frame(opened)
    Image.fromarray(shot.astype(np.uint8)).save(artifacts / "viewer-positive-frame.png")
    for c in HemorrhageClass:
        inside = binary_erosion(label == c.label)  # away from edges the browser blends
        if not inside.any():
            continue
        coloured = _chroma(shot[_on_screen(inside, shot)])
        assert (coloured > CHROMA).mean() > 0.95, f"{c.value} mask not coloured on screen"
    anywhere = np.zeros(label.shape, bool)
    anywhere[::4, ::4] = True
    far = anywhere & ~_near_findings(label, positive, k)
    assert (_chroma(shot[_on_screen(far, shot)]) <= GREY).mean() > 0.99


def _near_findings(label: np.ndarray, positive: Analysis, k: int) -> np.ndarray:
    """Pixels of the mask, the boxes and their captions on plane ``k``, with a margin."""
    near = label > 0
    assert positive.result is not None
    for d in positive.result.detections:
        if d.index == k:
            c0, r0, c1, r1 = d.box_pixels
            near[max(0, r0 - 20) : r1 + 20, max(0, c0 - 6) : c1 + 6] = True
            near[max(0, r0 - 20) : r0 + 4, max(0, c0 - 4) : c0 + 120] = True  # the caption
    out = np.zeros_like(near)
    rows, columns = np.nonzero(near)
    for dr in (-2, 0, 2):
        for dc in (-2, 0, 2):
            out[
                np.clip(rows + dr, 0, near.shape[0] - 1),
                np.clip(columns + dc, 0, near.shape[1] - 1),
            ] = True
    return out


def test_turning_the_overlays_off_leaves_grey_and_on_brings_colour_back(
    opened: webdriver.Chrome, positive: Analysis, plane, artifacts: Path
) -> None:
    k = _drawn(opened)
    _, label = plane(positive, k)
    boxes = opened.find_elements(By.CSS_SELECTOR, "input[data-label]")
    for box in boxes:
        box.click()
    assert not opened.find_elements(By.CSS_SELECTOR, "#boxes rect")
    grey = _frame(opened)
    Image.fromarray(grey.astype(np.uint8)).save(artifacts / "viewer-overlays-off.png")
    assert (_chroma(grey) <= GREY).mean() > 0.999
    opened.find_element(By.TAG_NAME, "body").send_keys("o")  # all back on
    inside = binary_erosion(label > 0)
    assert (_chroma(_frame(opened)[_on_screen(inside, grey)]) > CHROMA).mean() > 0.95
    assert opened.find_elements(By.CSS_SELECTOR, "#boxes rect")


def test_the_slider_keys_and_wheel_move_through_the_planes(
    opened: webdriver.Chrome, positive: Analysis
) -> None:
    assert positive.result is not None
    planes = positive.result.shape[0]
    start = _drawn(opened)
    body = opened.find_element(By.TAG_NAME, "body")
    step = 1 if start < planes - 1 else -1
    body.send_keys(Keys.ARROW_UP if step == 1 else Keys.ARROW_DOWN)
    assert _drawn(opened) == start + step
    label = opened.find_element(By.ID, "plane-label").text
    assert label == f"Plane {start + step + 1} / {planes}"
    slider = opened.find_element(By.ID, "slider")
    assert slider.get_attribute("value") == str(start + step + 1)
    slider.send_keys(Keys.HOME)
    assert _drawn(opened) == 0
    slider.send_keys(Keys.ARROW_RIGHT)
    assert _drawn(opened) == 1
    body.send_keys(Keys.END)
    assert _drawn(opened) == planes - 1
    stage = opened.find_element(By.ID, "stage")
    ActionChains(opened).scroll_from_origin(ScrollOrigin.from_element(stage), 0, -120).perform()
    assert _drawn(opened) < planes - 1
    opened.find_elements(By.CSS_SELECTOR, "#hemorrhages button")[0].click()
    assert _drawn(opened) == int(
        opened.find_elements(By.CSS_SELECTOR, "#hemorrhages button")[0].get_attribute("data-plane")
        or -1
    )


def test_window_presets_change_the_picture(opened: webdriver.Chrome) -> None:
    brain = _frame(opened)
    opened.find_element(By.CSS_SELECTOR, 'button[data-window="bone"]').click()
    assert _body(opened, "window") == "bone"
    bone = _frame(opened)
    assert np.abs(bone - brain).mean() > 5
    opened.find_element(By.TAG_NAME, "body").send_keys("1")
    assert _body(opened, "window") == "brain"
    assert np.abs(_frame(opened) - brain).max() <= 2


def test_planes_load_lazily_nearest_first(
    opened: webdriver.Chrome, positive: Analysis, sdk: Client
) -> None:
    assert positive.result is not None
    planes = positive.result.shape[0]
    opened.get(sdk.viewer_link(positive).url)
    first = _drawn(opened)
    WebDriverWait(opened, 30).until(lambda d: _body(d, "loaded") == str(planes))
    fetched = opened.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/planes/')).map(e => e.name)"
    )
    order = [int(name.rsplit("/", 1)[1]) for name in fetched]
    assert sorted(order) == list(range(planes))
    assert order[0] == first
    page = opened.execute_script("return document.documentElement.outerHTML.length")
    assert page < 100_000, "the page should carry the result, not the pixels"


def test_an_expired_or_forged_link_shows_why(
    browser: webdriver.Chrome, sdk: Client, positive: Analysis
) -> None:
    url = sdk.viewer_link(positive).url
    browser.delete_all_cookies()
    browser.get(url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB"))
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == "Invalid viewer link"
    assert "ask the API for a new one" in browser.find_element(By.TAG_NAME, "main").text


def test_failed_images_are_reported_not_polled_for(
    browser: webdriver.Chrome, gateway: GatewayProcess, sdk: Client, small_synth: Path
) -> None:
    analysis = sdk.analyze(sorted(small_synth.glob("case_*"))[3] / "dicom").wait(outputs=True)
    engine = connect(f"sqlite:///{gateway.data_dir.resolve() / 'ich.db'}")
    with engine.begin() as db:  # as when writing its images failed
        db.execute(update(analyses).where(analyses.c.id == analysis.id).values(outputs="failed"))
    browser.get(sdk.viewer_link(analysis).url)
    WebDriverWait(browser, 20).until(lambda d: _body(d, "error"))
    assert _body(browser, "error").startswith("Outputs failed")
    requests = browser.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/planes/'))"
        ".length"
    )
    assert requests <= 6  # the first wave, then it stopped
