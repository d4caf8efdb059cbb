"""The batch report: one self-contained HTML page, checked in a real headless browser
(Debian's chromium driven by selenium through chromedriver)."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.batch import run_batch
from bnnlogic.cli import main
from bnnlogic.data import load_dataset
from bnnlogic.errors import UserError
from bnnlogic.report import load_records, render, write_report
from tests.helpers import random_ir


@pytest.fixture(scope="module")
def verify_run(tmp_path_factory):
    """A verify batch on digits with a random 8x8-image model: counterexamples with pictures."""
    d = tmp_path_factory.mktemp("report")
    Model(random_ir(5, image=(1, 8, 8), hi=16, hidden=(6,), n_classes=10)).save(d / "m.bnn")
    data = load_dataset("digits")
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    recs = run_batch(str(d / "m.bnn"), X, data.y_test, range(8), [1, 2], str(d / "res.jsonl"), jobs=0,
                     cex_dir=str(d / "res.cex"), progress=False)
    return d, recs


def test_report_counts_and_pictures(verify_run):
    d, recs = verify_run
    s = write_report(d / "res.jsonl", d / "report.html")
    page = (d / "report.html").read_text()
    assert s["records"] == 16 and s["statuses"] == dict(Counter(r["status"] for r in recs))
    assert '<b id="total">16</b>' in page and "src=\"http" not in page and "<script" not in page
    n_cex = sum(r["status"] == "counterexample" for r in recs)
    assert page.count("<figure>") == n_cex > 0


def test_report_reads_torn_files_and_rejects_what_is_not_a_results_file(tmp_path):
    recs = [{"task": "explain", "index": i, "eps": None, "kind": "abductive", "status": s, "time_s": 0.1 * i,
             "size": i} for i, s in enumerate(["explained", "robust", "unknown", "explained"])]
    path = tmp_path / "ex.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"task": "expl')
    assert load_records(path) == recs and path.read_text().endswith('"expl')  # the file is left alone
    page = render(recs)
    assert 'data-eps="domain"' in page and '<b id="count-explained">2</b>' in page
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(UserError, match="not a batch record"):
        load_records(tmp_path / "bad.jsonl")
    with pytest.raises(UserError, match="no such results file"):
        load_records(tmp_path / "missing.jsonl")


def test_report_cli_one_line_error(tmp_path, capsys):
    (tmp_path / "x.jsonl").write_text("not json\nnot json either\n")
    assert main(["report", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a JSON line" in err and not (tmp_path / "r.html").exists()


def _browser():
    """Headless Debian chromium through chromedriver (no browser download: both are Debian
    packages), or skip if this machine has neither."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless browser test: Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver; .ci/run does)")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for a driver online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,2000",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='bnnlogic-chromium-')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_report_renders_in_a_headless_browser(verify_run):
    """The page loads without console errors, every image decodes, and the per-eps table
    shows the counts of the results file."""
    d, recs = verify_run
    assert main(["report", str(d / "res.jsonl"), "--out", str(d / "shown.html")]) == 0
    browser = _browser()
    try:
        browser.get((d / "shown.html").as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);")
        n_cex = sum(r["status"] == "counterexample" for r in recs)
        assert len(images) == 2 + n_cex and all(ok and w > 0 for ok, w in images)
        assert browser.find_element("id", "total").text == "16"
        head = [th.text for th in browser.find_elements("css selector", "#per-eps thead th")]
        for eps in (1, 2):
            cells = [td.text for td in browser.find_elements("css selector", f'#per-eps tr[data-eps="{eps}"] td')]
            shown = dict(zip(head, cells))
            for status in ("robust", "counterexample"):
                want = sum(r["eps"] == eps and r["status"] == status for r in recs)
                assert shown.get(status, "0") == str(want)  # a column only for statuses that occur
        assert re.search(r"\d+ counterexamples with a picture", browser.find_element("id", "pictures-note").text)
    finally:
        browser.quit()
