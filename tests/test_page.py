"""Tests for common/page.py and common/live_page.py: the pages' CSP and inline data, and the live
page of a training run (--page) in headless Chromium during a real run: the samples and both
curves shown, the page reloading while the run lives and no longer once it has ended."""
import base64
import hashlib
import json
import os
import re
import signal

import pytest

from common import live_page, page
from common.checkpoint import check_replaceable
from common.cli import UserError
from conftest import (CLI_TIMEOUT, GOOD_TEXT, browser_errors, page_payload, page_ready, read_npz,
                      run_ok, start, wait_for, write_text)

BROWSER_WAIT = 10  # seconds a person would wait for the page to show
# The page reloads every RELOAD_SECONDS and is rewritten about every PAGE_SECONDS of training:
# a change in the run reaches the browser within their sum, plus a start-up second
SHOWN_WITHIN = live_page.RELOAD_SECONDS + live_page.PAGE_SECONDS + 1
SCROLL_TOL = 2  # pixels: a scroll position restored after a reload (rounding of the layout)
HOSTILE = '<img src=x onerror="alert(1)">'
# A tiny gist model on GOOD_TEXT, validating and sampling often, until it is stopped
LIVE_RUN = ["corpus.txt", "--hidden-size", "7", "--seq-length", "6", "--eval-every", "100",
            "--sample-every", "300", "--sample-length", "40", "--max-iters", "100000000",
            "--seed", "0", "--page", "live.html", "--out", "m.npz"]


def live_data(**changes):
    """Data for the live page as the Reporter gives it, with changes."""
    data = {"live": True, "status": "running", "title": "m.npz", "written": "12:00:00",
            "reload_seconds": 3, "unit": "char", "iter": 40, "total": 100, "speed": 1234.5,
            "wall_seconds": 12.0, "train_seconds": 10.0, "page_seconds": 0.01,
            "left": {"seconds": 15.0, "by": "60 more"},
            "best": {"loss": 2.1, "iter": 40, "path": "m.best.npz"}, "options": {"seed": 0},
            "history": [[k, 3.0 - k / 50, 3.1 - k / 50 if k % 20 == 0 else None, k / 4]
                        for k in range(0, 41, 2)],
            "samples": [{"iter": k, "text": f"sample {k}", "loss": 2.5} for k in (0, 20, 40)]}
    data.update(changes)
    return data


def sha(text):
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def test_live_page_allows_its_own_script_and_style_by_hash_only():
    html = live_page.LIVE.render(live_data())
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert "unsafe" not in csp and "default-src 'none'" in csp
    script, = re.findall(r"<script>(.*?)</script>", html, re.S)
    style, = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert f"script-src 'sha256-{sha(script)}';" in csp
    assert f"style-src 'sha256-{sha(style)}'" in csp
    # markup is made with DOM calls only: no HTML parsing sink anywhere in the script
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    assert not re.search(r"https?://", html.replace('"http://www.w3.org/2000/svg"', ""))


def test_page_data_stays_data():
    """Text that would close the script element, or open a comment, is read back unchanged;
    a number JSON cannot hold is refused rather than written as a page that does not parse."""
    texts = ["</script><script>alert(1)</script>", "<!--", "&amp;", "\u2028"]
    data = live_data(samples=[{"iter": 0, "text": t, "loss": None} for t in texts])
    html = live_page.LIVE.render(data)
    assert html.count("</script>") == 2 and "<!--" not in html
    assert page_payload(html) == json.loads(json.dumps(data))
    with pytest.raises(ValueError):
        live_page.LIVE.render(live_data(speed=float("nan")))


# How every page written before the pages' files moved to pages/ begins (their TEMPLATE up to the
# CSP): such a page is still ours to replace
EARLIER_PAGE_START = (b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                      b'<meta http-equiv="Content-Security-Policy" content="')


def test_pages_of_earlier_versions_are_still_ours_and_no_other_file_is(tmp_path):
    earlier = tmp_path / "earlier.html"
    earlier.write_bytes(EARLIER_PAGE_START + b"default-src 'none'\"><title>t</title>")
    check_replaceable(str(earlier), "--page", "page")  # no error: it may be replaced
    other = tmp_path / "other.html"
    other.write_bytes(b"<!DOCTYPE html>\n<html><body>a page of someone else's</body></html>")
    with pytest.raises(UserError, match="is not a page this tool wrote"):
        check_replaceable(str(other), "--page", "page")
    assert live_page.LIVE.render(live_data()).encode("utf-8").startswith(EARLIER_PAGE_START)


def test_the_pages_files_are_found_from_any_folder(tmp_path, monkeypatch):
    """common/page.py finds pages/ from its own place, not from the working directory."""
    monkeypatch.chdir(tmp_path)
    assert page.Page("live", "t").render({}) == live_page.LIVE.render({}).replace(
        "<title>min-char-rnn: a training run</title>", "<title>t</title>")


@pytest.mark.slow
def test_no_page_unless_asked_and_the_final_page_of_a_finished_run(tmp_path):
    write_text(tmp_path / "corpus.txt", GOOD_TEXT * 3)
    common = ["corpus.txt", "--hidden-size", "7", "--wordvec-size", "5", "--seq-length", "6",
              "--batch-size", "2", "--max-iters", "40", "--eval-every", "10", "--sample-every",
              "10", "--sample-length", "12", "--seed", "0"]
    run_ok("rnnlm.py", [*common, "--out", "plain.npz"], cwd=tmp_path)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".html")]
    run_ok("rnnlm.py", [*common, "--out", "m.npz", "--page", "run.html"], cwd=tmp_path)
    data = page_payload((tmp_path / "run.html").read_text(encoding="utf-8"))
    meta = read_npz(tmp_path / "m.npz")[1]
    assert not data["live"] and data["status"] == "finished after 40 iterations"
    assert data["iter"] == data["total"] == 40 and data["left"] is None
    assert data["best"] == {"loss": meta["best_val_loss"], "iter": meta["best_val_iter"],
                            "path": "m.best.npz"}
    assert [h[:3] for h in data["history"]] == [[r["iter"], r["loss"], r["val_loss"]]
                                                for r in meta["history"]["records"]]
    # a sample every 10 iterations, the same in the page and the checkpoint; the page also
    # shows the one printed as the run ended, after its last save
    assert [(s["iter"], s["text"]) for s in data["samples"][:-1]] == \
        [(s["iter"], s["text"]) for s in meta["history"]["samples"]]
    assert [s["iter"] for s in data["samples"]] == [0, 10, 20, 30, 40]
    assert data["options"]["cell"] == "rnn" and data["options"]["page"] == "run.html"


# ----------------------------------------------------------------------------- in a real browser

def curve_points(browser, curve_id):
    """How many points the polyline `curve_id` has (0 when it is not there, or the page is
    reloading)."""
    from selenium.common.exceptions import WebDriverException
    try:
        found = browser.find_elements("id", curve_id)
        return len(found[0].get_dom_attribute("points").split()) if found else 0
    except WebDriverException:  # the element went with a reload
        return 0


def page_state(browser):
    """(ready, live, status, samples shown) of the page now in the browser; None while it loads."""
    from selenium.common.exceptions import WebDriverException
    try:
        if not page_ready(browser):
            return None
        live, status = browser.execute_script("return [D.live, D.status]")
        return [True, live, status, len(browser.find_elements("css selector", "#samples .sample"))]
    except WebDriverException:  # the page reloaded between two calls: D is not there yet
        return None


def wait_until(browser, condition, timeout):
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, timeout, poll_frequency=0.2).until(lambda d: condition())


def reloads_within(browser, seconds):
    """Mark the page's window; whether a reload (a new window object) comes within seconds."""
    browser.execute_script("window.stillHere = 1")
    try:
        wait_until(browser, lambda: browser.execute_script("return window.stillHere") is None,
                   seconds)
        return True
    except Exception:  # selenium's TimeoutException: no reload
        return False


def test_browser_live_page_during_a_real_run(browser, tmp_path):
    """While a run lives its page shows the samples (newest first) and both curves, and reloads
    itself, keeping the scroll; once the run has ended (here by Ctrl-C) it says so and stops
    reloading. No console errors, nothing fetched."""
    write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    proc = start("min_char_rnn.py", LIVE_RUN, tmp_path)
    try:
        wait_for(lambda: (tmp_path / "live.html").exists(), proc)
        browser_errors(browser)
        browser.get((tmp_path / "live.html").as_uri())
        # the first page comes at the first validation: one validation point; the next, some
        # seconds on, has more of everything
        wait_until(browser, lambda: (page_state(browser) or [0, 0, 0, 0])[3] >= 2
                   and curve_points(browser, "val-curve") >= 2, SHOWN_WITHIN + BROWSER_WAIT)
        ready, live, status, shown = page_state(browser)
        assert live and status == "running" and proc.poll() is None
        assert curve_points(browser, "train-curve") >= 2
        assert curve_points(browser, "train-curve-s") >= 2
        # the training loss smoothed, over each iteration's as a faint band
        assert curve_points(browser, "train-raw") == curve_points(browser, "train-curve")
        assert browser.find_element("id", "train-raw").get_dom_attribute("stroke-opacity") == "0.25"
        assert "training loss smoothed" in \
            browser.find_element("id", "curves").get_property("textContent")
        assert curve_points(browser, "val-curve-s") >= 2
        iters = [e.get_property("textContent")
                 for e in browser.find_elements("css selector", "#samples .sample .note")]
        numbers = [int(re.match(r"iteration (\d+)", x).group(1)) for x in iters]
        assert numbers == sorted(numbers, reverse=True) and len(numbers) == shown  # newest first
        assert "running" in browser.find_element("id", "facts").text
        # it reloads itself; the reader's choice (the options shown) and scroll stay
        browser.find_element("css selector", "#options-box summary").click()
        bottom = browser.find_element("tag name", "body").get_property("scrollHeight")
        scroll_y = browser.execute_script("window.scrollTo(0, arguments[0]); return window.scrollY",
                                          bottom)
        assert scroll_y > 100
        assert reloads_within(browser, live_page.RELOAD_SECONDS + BROWSER_WAIT)
        wait_until(browser, lambda: page_state(browser) is not None, BROWSER_WAIT)
        assert browser.find_element("id", "options-box").get_property("open")
        assert abs(browser.execute_script("return window.scrollY") - scroll_y) <= SCROLL_TOL
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=CLI_TIMEOUT) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    # the browser, reloading, comes to the final page, which stays
    wait_until(browser, lambda: (page_state(browser) or [0, True])[1] is False,
               live_page.RELOAD_SECONDS + BROWSER_WAIT)
    ready, live, status, shown = page_state(browser)
    assert status.startswith("interrupted at iteration ") and shown >= 2
    assert "no longer changes" in browser.find_element("id", "written").text
    assert not reloads_within(browser, 3 * live_page.RELOAD_SECONDS)
    assert browser_errors(browser) == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    data = page_payload((tmp_path / "live.html").read_text(encoding="utf-8"))
    kept = read_npz(tmp_path / "m.npz")[1]["history"]["samples"]
    assert data["samples"][-1]["iter"] == kept[-1]["iter"]


def test_browser_live_page_builds_no_markup_from_its_data(browser, tmp_path):
    data = live_data(title=HOSTILE, status=HOSTILE, options={HOSTILE: HOSTILE},
                     best={"loss": 2.0, "iter": 3, "path": HOSTILE}, live=False,
                     samples=[{"iter": 1, "text": HOSTILE, "loss": None}])
    path = tmp_path / "hostile.html"
    path.write_text(live_page.LIVE.render(data), encoding="utf-8")
    browser_errors(browser)
    browser.get(path.as_uri())
    wait_until(browser, lambda: page_state(browser) is not None, BROWSER_WAIT)
    assert browser.find_elements("tag name", "img") == []
    for box in ("title", "facts", "samples", "options"):
        assert HOSTILE in browser.find_element("id", box).get_attribute("textContent"), box
    assert browser_errors(browser) == []
