"""A PNG of painmon's device page in Home Assistant's frontend, in Debian's headless Chromium.

Used by tools/ha_check.py --screenshot. The frontend keeps its tokens in localStorage
(``hassTokens``); the check's own login (the onboarding's tokens) is put there before the
page loads, so no login form is needed. The PNG is reduced to a 128-colour palette to stay
small in the repository.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 1560}  # the whole device page: readings to diagnostics


def device_page(base: str, ha, device_id: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install chromium")
    tokens = {"access_token": ha.token, "refresh_token": ha.refresh_token,
              "token_type": "Bearer", "expires_in": 1800, "hassUrl": base,
              "clientId": ha.client_id, "expires": int(time.time() * 1000) + 1800 * 1000}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(
                f"window.localStorage.setItem('hassTokens', {json.dumps(json.dumps(tokens))});")
            page.goto(f"{base}/config/devices/device/{device_id}", wait_until="networkidle")
            # The cards render once the states arrive (Playwright's text lookup pierces the
            # frontend's shadow DOM).
            page.get_by_text("Pain score").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)
            shot = page.screenshot()
        finally:
            browser.close()
    _write_small_png(shot, out)


def _write_small_png(png: bytes, out: Path) -> None:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
