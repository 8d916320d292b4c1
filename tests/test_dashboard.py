"""Issue 6 (first slice): the ops dashboard in headless Chromium — loads without
console errors, shows the counts the API gives, updates by itself when a
complaint is submitted; a screenshot is kept in tests/artifacts/."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ARTIFACTS, ROOT

NODE = shutil.which("node")


@pytest.mark.skipif(not NODE or not os.path.exists("/usr/bin/chromium")
                    or not os.path.isdir(os.path.join(ROOT, "node_modules", "playwright-core")),
                    reason="needs node, Debian chromium and `make web` (make test provides all three)")
def test_dashboard_shows_api_counts_and_updates_live(system):
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    # One admin token serves both the page and the script's own submission.
    r = subprocess.run([NODE, os.path.join(ROOT, "tests", "browser", "dashboard.js"),
                        system["analytics"].url(""), system["intake"].url(""), system.admin, shot],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "failure" not in out, out
    assert out["consoleErrors"] == [] and out["pageErrors"] == [], out
    assert out["title"].startswith("客诉运营看板")
    assert out["tiles"] == {k: out["api"][k] for k in out["tiles"]}
    assert out["receivedAfter"] >= out["api"]["received"] + 1
    assert out["feedHasOrder"] and out["chartDrawn"]
    assert os.path.getsize(shot) > 10000
