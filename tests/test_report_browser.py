"""report.html of the tiny run, opened in a real headless browser (Debian's chromium through selenium and
chromedriver): the page renders, every figure loads, every table page renders, every result has its
caption, and the browser logs no JavaScript error. Screenshots of the pages are written to the test's
tmp dir and copied to a folder named at the end of the pytest output (FHNKIT_SCREENSHOTS, by default
<tmp>/fhnkit-report-screenshots), for a person to look at.

Needs the Debian packages chromium and chromium-driver and selenium (the `dev` extra); nothing is
installed at test time. Without them the tests skip locally and fail under CI (CI=true).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from conftest import SUMMARY_NOTES

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("FHNKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FHNKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1600, 1000)
TIMEOUT = 30  # seconds for the page and each view to render
SCREENSHOTS = Path(os.environ.get("FHNKIT_SCREENSHOTS", Path(tempfile.gettempdir()) / "fhnkit-report-screenshots"))

# JavaScript run in the page. The report is Snakemake's single-page app: a navbar (<nav>, menu and
# result lists) beside a content pane (image, iframe for HTML, or the workflow page); the data (results
# with data: URIs and captions, categories) are globals of the page.
JS_LAYOUT = """
const nav = document.querySelector('#app nav');
const pane = document.querySelector('#app div.overflow-auto');
const content = pane.firstElementChild;
const box = content ? content.getBoundingClientRect() : {width: 0, height: 0};
return [nav.offsetWidth + Math.max(pane.scrollWidth, box.width),
        Math.max(nav.scrollHeight, pane.scrollHeight, box.height)];
"""
JS_IMAGE = """
const img = document.querySelector('#app div.overflow-auto img');
if (!img || !img.complete) return null;
const box = img.getBoundingClientRect();
return {src: img.src.slice(0, 60), base64: img.src.slice(0, 200).includes(";base64,"), natural: [img.naturalWidth, img.naturalHeight],
        shown: [box.width, box.height], pane: document.querySelector('#app div.overflow-auto').clientWidth};
"""


def _rst_errors(html: str) -> list[str]:
    """What docutils leaves in a caption it could not render: a "System Message" section, problematic spans,
    an unrendered Jinja template."""
    return [m for m in ("system-message", "problematic", "System Message", "{{", "{%") if m in html]


def _slug(*labels: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", "_".join(labels).lower()).strip("_")


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: apt-get install --no-install-recommends {package}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI: the browser test cannot run: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
                 f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given: selenium does not run its driver manager (which would download a browser).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


class Report:
    """The open report, with the actions a reader takes: menu items, view (eye) and info buttons."""

    def __init__(self, driver, shots: Path):
        self.driver = driver
        self.shots = shots
        self.console: list[dict] = []

    def wait(self, condition, what: str, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                self.screenshot(f"timeout_{what.replace(' ', '_')[:40]}")
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.1)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def css(self, selector):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def click(self, element):
        self.js("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)

    def menu(self, label: str):
        """A menu or breadcrumb link of the navbar by its text."""
        links = [a for a in self.css("#app nav a") if a.text.strip() == label]
        assert links, f"no link {label!r} in the navbar: {self.css('#app nav')[0].text!r}"
        self.click(links[0])

    def result_rows(self):
        """The rows of the results list of a category (labels, eye button, info button)."""
        return self.css("#app nav table.table-auto.w-full tbody tr")

    def open_category(self, category: str) -> list[list[str]]:
        self.go_home()
        self.menu(category)
        self.wait(lambda: self.result_rows(), f"the result list of {category}")
        return [[td.text for td in row.find_elements("css selector", "td")[:-1]] for row in self.result_rows()]

    def front_page(self):
        """The menu's Workflow item: the workflow description and the rule graph."""
        self.go_home()
        self.menu("Workflow")
        return self.wait(lambda: self.css("#app .prose"), "the workflow description")[0]

    def go_home(self):
        home = self.css("#app nav ol li a")  # the first breadcrumb: the menu
        self.click(home[0])
        self.wait(lambda: any(a.text.strip() == "Workflow" for a in self.css("#app nav a")), "the menu")

    def caption(self, info_button, labels) -> str:
        """Open a result's info panel; its Description (the caption from workflow/report/*.rst) as text."""
        self.click(info_button)
        item = self.wait(lambda: self.css("#app nav li.prose"), f"the caption of {labels}")[0]
        html = item.get_attribute("innerHTML")
        assert not _rst_errors(html), f"{labels}: the caption did not render: {_rst_errors(html)}\n{html[:2000]}"
        text = item.text
        assert len(text) > 150, (labels, text)
        return text

    def screenshot(self, name: str, min_height: int = 0) -> Path:
        """The whole app: the viewport grown to its content (the app scrolls inside fixed-height panes;
        min_height for what an iframe holds), capped at 4000 x 8000 px."""
        width, height = WINDOW
        for _ in range(2):  # the layout follows the viewport: measure again once
            content_w, content_h = self.js(JS_LAYOUT)
            width = int(min(max(width, content_w), 4000))
            height = int(min(max(height, content_h, min_height), 8000))
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            time.sleep(0.3)
        path = self.shots / f"{name}.png"
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / path.name)
        return path

    def collect_console(self):
        self.console += self.driver.get_log("browser")

    def errors(self) -> list[str]:
        self.collect_console()
        return [f"{m['level']}: {m['message']}" for m in self.console if m["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def report(browser, tiny_run, tmp_path_factory, request):
    shots = tmp_path_factory.mktemp("report-screenshots")
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    page = Report(browser, shots)
    start = time.monotonic()
    browser.get((tiny_run / "report.html").as_uri())
    page.wait(lambda: page.js("return document.querySelector('#loading-screen').style.display") == "none"
              and page.css("#app nav a"), "the report to render")
    page.load_s = time.monotonic() - start
    yield page
    SUMMARY_NOTES.append(f"report.html screenshots ({len(list(shots.glob('*.png')))} pages): {SCREENSHOTS} "
                         f"(also {shots})")


def test_front_page_renders_the_workflow_description_and_rule_graph(report):
    assert not report.css("#loading-screen")[0].is_displayed()
    prose = report.css("#app .prose")
    assert prose, "no workflow description on the front page"
    description = prose[0].text
    assert "fhnkit trains small neural networks" in description, description[:500]
    assert not _rst_errors(prose[0].get_attribute("innerHTML")), "workflow/report/workflow.rst did not render"
    for study in ("A_scarce", "B_S", "C", "diverges"):
        assert f"{study}: problem" in description, study
    # the rule graph is a vega chart: drawn once it has a non-empty canvas or svg
    graph = report.wait(lambda: [g for g in report.css("#rulegraph canvas, #rulegraph svg")
                                 if g.size["width"] > 100 and g.size["height"] > 100], "the rule graph")
    assert graph
    menu = [a.text.strip() for a in report.css("#app nav a")]
    assert {"Workflow", "Statistics", "About", "Figures", "Tables"} <= set(menu), menu
    report.screenshot("01_front_page")
    assert not report.errors(), report.errors()
    print(f"report rendered in {report.load_s:.1f} s")


def test_links_in_the_workflow_description_open_their_category(report):
    links = [(a.text, a.get_attribute("href")) for a in report.front_page().find_elements("css selector", "a")]
    assert {text for text, _ in links} >= {"Tables", "Figures"}, links
    for i, (text, href) in enumerate(links):
        link = report.front_page().find_elements("css selector", "a")[i]
        report.click(link)
        # a category link shows that category's results; anything else must at least raise no error
        if href.startswith("javascript:app.showCategory("):
            report.wait(lambda: any(a.text.strip() == text for a in report.css("#app nav ol a, #app nav ol li"))
                        and report.result_rows(), f"the {text} list after clicking the link {text!r}")
        errors = report.errors()
        assert not errors, f"the link {text!r} ({href}) in workflow/report/workflow.rst: {errors}"


def test_every_figure_loads_and_has_its_caption(report, tiny_run):
    # what the report holds under Figures (its embedded index), checked against the files and the rows shown
    expected = sorted(path for paths in report.js("return categories['Figures']").values() for path in paths)
    assert all(path.endswith(".png") and (tiny_run / path).is_file() for path in expected), expected
    assert {f"results/figures/{name}.png" for name in (
        "accuracy_vs_neurons", "error_vs_inference", "rollout_C", "error_maps_B_S", "error_maps_C",
        "training_curves_A_scarce", "training_curves_B_S", "training_curves_C", "training_curves_diverges",
        "iteration_cost", "predictions_A_scarce", "predictions_B_S", "predictions_C", "predictions_diverges",
    )} <= set(expected), expected
    rows = report.open_category("Figures")
    assert len(rows) == len(expected), rows
    report.screenshot("02_figures_list")
    seen = []
    for i, labels in enumerate(rows):
        report.open_category("Figures")
        row = report.result_rows()[i]
        view, info = row.find_elements("css selector", "td:last-child a")
        report.click(view)
        image = report.wait(lambda: report.js(JS_IMAGE), f"figure {labels}")
        assert image["src"].startswith("data:image/png") and image["base64"], image
        assert image["natural"][0] > 300 and image["natural"][1] > 200, (labels, image)
        # not shrunk to a thumbnail: the pane shows it at least 600 px wide, or at its full width
        assert image["shown"][0] >= min(600, image["natural"][0]), (labels, image)
        slug = _slug(*(x for x in labels if x != "all"))
        report.screenshot(f"03_figure_{i:02d}_{slug}")
        caption = report.caption(info, labels)
        if labels[0] == "Predictions vs solver":  # the Jinja template filled in: the study and the config's rule
            assert f"study {labels[1]} against the solver" in caption and "= of_max" in caption, caption
        if i == 0:
            report.screenshot(f"04_figure_info_{slug}")
        seen.append(report.js("return app.state.resultPath"))
    assert sorted(seen) == expected
    assert not report.errors(), report.errors()


def test_every_table_page_renders_with_its_caption(report, tiny_run):
    from selenium.webdriver.common.by import By

    rows = report.open_category("Tables")
    report.screenshot("05_tables_list")
    names = {labels[0] for labels in rows}
    assert {"Summary of all models", "Configuration", "High-error resampling"} <= names, names
    pages, downloads, too_wide = 0, 0, []
    for i, labels in enumerate(rows):
        report.open_category("Tables")
        row = report.result_rows()[i]
        view, info = row.find_elements("css selector", "td:last-child a")
        href = view.get_attribute("href") or ""
        if href.startswith("data:"):  # a CSV: the eye button downloads it
            assert href.startswith("data:text/csv"), (labels, href[:40])
            assert len(href) > 500, labels
            downloads += 1
        else:
            report.click(view)
            frame = report.wait(lambda: report.css("#app div.overflow-auto iframe"), f"table page {labels}")[0]
            assert (frame.get_attribute("src") or "").startswith("data:text/html"), labels
            report.driver.switch_to.frame(frame)
            try:
                body = report.wait(lambda: report.driver.find_element(By.TAG_NAME, "body").text, f"text of {labels}")
                # an analysis table, or the configuration page's YAML
                cells = report.driver.find_elements(By.CSS_SELECTOR, "table td, table th, pre")
                scroll = report.js("return [document.documentElement.scrollWidth, window.innerWidth, "
                                   "document.documentElement.scrollHeight]")
            finally:
                report.driver.switch_to.default_content()
            assert len(body) > 50 and cells, (labels, body[:300])
            assert "Traceback" not in body and "{{" not in body, (labels, body[:300])
            slug = _slug(labels[0])
            report.screenshot(f"06_table_{i:02d}_{slug}", min_height=scroll[2] + 40)
            if scroll[0] > scroll[1] + 5:
                too_wide.append(f"{labels[0]}: {scroll[0]} px wide in a {scroll[1]} px frame")
            pages += 1
        report.caption(info, labels)
    assert downloads >= 1 and pages + downloads == len(rows)  # HTML pages, and CSVs such as the summary
    # with the navbar open in a 1600 px window a table should not need a horizontal scroll bar; the frame
    # scrolls, so nothing is lost: a warning in the pytest summary rather than a failure
    if too_wide:
        warnings.warn(f"report table pages wider than their frame (horizontal scrolling): {'; '.join(too_wide)}",
                      stacklevel=1)
    assert not report.errors(), report.errors()


def test_statistics_page_renders(report):
    report.go_home()
    report.menu("Statistics")
    report.wait(lambda: [g for g in report.css("#app div.overflow-auto canvas, #app div.overflow-auto svg")
                         if g.size["width"] > 100], "the run-time charts")
    report.screenshot("07_statistics")
    assert not report.errors(), report.errors()
