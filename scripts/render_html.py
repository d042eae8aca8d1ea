"""Render an HTML page (the displaCy sample) to a PNG with headless Chromium, so the picture can be
looked at and shown in the README. Needs Debian's `chromium` (apt-get install chromium); without
it, says so and exits 0 (the HTML is the primary output)."""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from wasabi import msg

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def main(html_path: str, png_path: str, width: int = 1500, height: int = 1800) -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        msg.warn(f"no Chromium found: {png_path} not rendered (apt-get install chromium)")
        return 0
    src = Path(html_path).resolve()
    if not src.exists():
        msg.fail(f"no HTML file at {src}")
        return 1
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
               f"--window-size={width},{height}", src.as_uri()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not out.exists():
        msg.fail(f"Chromium could not render {src}: {result.stderr.strip()[-300:]}")
        return 1
    msg.good(f"wrote {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 5):
        msg.fail("usage: python scripts/render_html.py PAGE.html OUT.png [WIDTH HEIGHT]")
        sys.exit(2)
    sys.exit(main(*sys.argv[1:3], *map(int, sys.argv[3:5])))
