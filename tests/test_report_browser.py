"""report.html of the tiny run, opened in a real headless browser (Debian's chromium through selenium and
chromedriver): the page renders; the menu holds one category per stage and each category one subcategory
per study; every result is reached by clicking category -> subcategory -> row, once; every figure loads,
every table page renders with its "Download as CSV" link, the summary CSV downloads, every result has its
caption, and the browser logs no JavaScript error. Screenshots of the pages are written to the test's tmp
dir and copied to a folder named at the end of the pytest output (FHNKIT_SCREENSHOTS, by default
<tmp>/fhnkit-report-screenshots), for a person to look at.

Needs the Debian packages chromium and chromium-driver and selenium (the `dev` extra); nothing is
installed at test time. Without them the tests skip locally and fail under CI (CI=true).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
import time
import urllib.parse
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SUMMARY_NOTES

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("FHNKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FHNKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1600, 1000)
TIMEOUT = 30  # seconds for the page and each view to render
SCREENSHOTS = Path(os.environ.get("FHNKIT_SCREENSHOTS", Path(tempfile.gettempdir()) / "fhnkit-report-screenshots"))

# The report's organisation (report_item and REPORT_STAGES in workflow/rules/common.smk) for the tiny config:
# category (stage) -> subcategory (study, ALL for what spans studies) -> the results under it.
ALL = "(all studies)"
REPRODUCTION, TRAINING, ACCURACY, RESAMPLING, INFERENCE, SUMMARY = STAGES = [
    "0 Reproduction", "1 Training", "2 Accuracy", "3 Resampling", "4 Inference cost", "5 Summary and configuration"]
# Snakemake 9 sorts the categories of the menu, the subcategories of a category and the rows of a list
# alphabetically (String.localeCompare in menu.js, category.js, abstract_results.js): the numbers keep the
# stages in reading order and the parenthesis puts ALL first.
MENU = STAGES
STUDIES = ("A_scarce", "B_S", "C", "diverges")


def _fig(name: str) -> str:
    return f"results/figures/{name}.png"


def _table(name: str) -> str:
    return f"results/analysis/{name}.html"


EXPECTED_INDEX = {
    REPRODUCTION: {ALL: {_table("reproduction"), _table("surrogate_pays"), _fig("reproduction_forest")}},
    TRAINING: {**{study: {_fig(f"training_curves_{study}")} for study in STUDIES},
                 ALL: {_fig("iteration_cost"), _table("technique_anova"), _table("failed_models")}},
    ACCURACY: {"A_scarce": {_fig("predictions_A_scarce")},
                 "B_S": {_fig("predictions_B_S"), _fig("error_cuts_B_S")},
                 "C": {_fig("predictions_C"), _fig("error_cuts_C"), _fig("rollout_C")},
                 "diverges": {_fig("predictions_diverges")},
                 ALL: {_fig("accuracy_vs_neurons"), *map(_table, ("shape_anova", "shape_variance", "time_domains",
                                                                  "ttest_pinn_ddnn"))}},
    RESAMPLING: {"B_S": {_fig("error_maps_B_S")}, "C": {_fig("error_maps_C")}, ALL: {_table("resampling")}},
    INFERENCE: {ALL: {_table("benchmark"), _fig("error_vs_inference")},
                       "cost sweep": {"results/cost_sweep/timings.html", _table("cost_anova_time"),
                                      _table("cost_anova_speedup"), _fig("inference_vs_neurons"),
                                      _fig("compile_speedup")}},
    SUMMARY: {ALL: {"results/summary.csv", "results/config.html"}},
}
TYPES = {".png": "figure", ".html": "table", ".csv": "table (CSV)"}  # the "type" label by file suffix

# JavaScript run in the page. The report is Snakemake's single-page app: a navbar (<nav>: breadcrumbs, then
# the menu, a category's subcategories, a subcategory's result rows or a result's info) beside a content
# pane (image, iframe for HTML, or the workflow page); the data are globals of the page: `categories`
# ({category: {subcategory: [path, ...]}}) and `results` ({path: {data_uri, caption, labels, ...}}).
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
return {src: img.src.slice(0, 60), base64: img.src.slice(0, 200).includes(";base64,"),
        natural: [img.naturalWidth, img.naturalHeight],
        shown: [box.width, box.height], pane: document.querySelector('#app div.overflow-auto').clientWidth,
        this_result: img.src === results[arguments[0]].data_uri};
"""
JS_NAV = """
const nav = document.querySelector('#app nav');
if (!nav) return null;
const text = (el) => el.textContent.trim();
return {trail: [...nav.querySelectorAll('nav ol > li')].map(text).filter((t) => t),
        items: [...nav.querySelectorAll('div.p-3 > ul > li > a')].map(text),
        header: [...nav.querySelectorAll('div.p-3 table thead th')].map(text),
        rows: [...nav.querySelectorAll('div.p-3 table tbody tr')]
            .map((tr) => [...tr.querySelectorAll('td')].map(text))};
"""
JS_CLICK_ITEM = """
const link = [...document.querySelectorAll('#app nav div.p-3 > ul > li > a')]
    .find((a) => a.textContent.trim() === arguments[0]);
if (link) link.click();
return Boolean(link);
"""
JS_LABELS = "return Object.fromEntries(Object.entries(results).map(([path, r]) => [path, r.labels]))"


def _rst_errors(html: str) -> list[str]:
    """What docutils leaves in a caption it could not render: a "System Message" section, problematic spans,
    an unrendered Jinja template."""
    return [m for m in ("system-message", "problematic", "System Message", "{{", "{%") if m in html]


def _slug(*labels: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", "_".join(labels).lower()).strip("_")


def _data(uri: str) -> bytes:
    """The bytes a data: URI holds."""
    head, _, data = uri.partition(",")
    return base64.b64decode(data) if head.endswith(";base64") else urllib.parse.unquote_to_bytes(data)


def _toggle(labels: list[dict]) -> str | None:
    """The label Snakemake 9 turns into a toggle above a list of results (abstract_results.js): a label other
    than the first with exactly two values, each on half of the results, if only one label qualifies. The
    rows are then keyed by the other labels, and a row with no result for the toggle's value crashes the
    report (TypeError: Cannot read properties of undefined (reading 'mime_type'), then a blank page)."""
    names = list(dict.fromkeys(name for item in labels for name in item))
    toggles = [name for name in names[1:]
               if len(counts := Counter(item[name] for item in labels if name in item)) == 2
               and all(2 * n == len(labels) for n in counts.values())]
    return toggles[0] if len(toggles) == 1 else None


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


@dataclass
class Row:
    """A result row as the walk reaches it: where it is, its labels as shown, the result it stands for,
    and its view (eye) and info buttons."""
    category: str
    subcategory: str
    index: int
    labels: dict
    path: str
    view: object
    info: object

    @property
    def slug(self) -> str:
        return _slug(self.category, self.subcategory, self.labels["item"])


class Report:
    """The open report, with the actions a reader takes: menu and breadcrumb links, view (eye) and info
    buttons. `categories` and `labels` are the report's embedded index (the page's globals)."""

    def __init__(self, driver, url: str, shots: Path):
        self.driver = driver
        self.url = url
        self.shots = shots
        self.console: list[dict] = []
        start = time.monotonic()
        self.load()
        self.load_s = time.monotonic() - start
        self.categories: dict[str, dict[str, list[str]]] = self.js("return categories")
        self.labels: dict[str, dict] = self.js(JS_LABELS)

    def load(self):
        self.driver.get(self.url)
        self.wait(lambda: self.js("return document.querySelector('#loading-screen').style.display") == "none"
                  and self.css("#app nav a"), "the report to render", in_app=False)

    # --- the page

    def wait(self, condition, what: str, timeout: float = TIMEOUT, hint: str = "", in_app: bool = True):
        """Until condition() is true. In the app (in_app), fails at once, naming the console errors, if the
        app crashed (React leaves #app empty after an exception in a render: a blank page)."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if in_app and not self.css("#app nav"):
                self.screenshot(f"crash_{_slug(what)[:40]}")
                raise AssertionError(f"the report crashed (blank page) on {what}: {self.new_errors()}{hint}")
            if time.monotonic() > deadline:
                self.screenshot(f"timeout_{_slug(what)[:40]}")
                raise AssertionError(f"timed out after {timeout} s waiting for {what}{hint}")
            time.sleep(0.1)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def css(self, selector, within=None):
        from selenium.webdriver.common.by import By

        return (within or self.driver).find_elements(By.CSS_SELECTOR, selector)

    def click(self, element):
        self.js("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)

    # --- the navbar

    def nav(self) -> dict:
        """What the navbar shows (JS_NAV), read in one call: trail, items, header, rows."""
        return self.js(JS_NAV) or {"trail": [], "items": [], "header": [], "rows": []}

    def menu_items(self) -> list[str]:
        """The links of the navbar's list: the menu (Workflow, ..., the categories) or a category's subcategories."""
        return self.nav()["items"]

    def menu(self, label: str):
        assert self.js(JS_CLICK_ITEM, label), f"no link {label!r} in the navbar: {self.nav()}"

    def trail(self) -> list[str]:
        """The breadcrumbs after the home icon, e.g. ["Results", "2 Accuracy", "B_S"]."""
        return self.nav()["trail"]

    def result_rows(self):
        """The rows of a subcategory's result list (labels, then the eye and info buttons)."""
        return self.css("#app nav div.p-3 table tbody tr")

    def row_labels(self) -> list[dict]:
        nav = self.nav()
        return [dict(zip(nav["header"][:-1], cells[:-1], strict=False)) for cells in nav["rows"]]

    def hint(self, category: str, subcategory: str | None = None) -> str:
        """Why a list may not render: Snakemake's toggle, where one of the category's lists makes one."""
        lists = [subcategory] if subcategory else list(self.categories[category])
        hints = []
        for sub in lists:
            paths = self.categories[category][sub]
            label = _toggle([self.labels[path] for path in paths])
            if label:
                values = sorted(Counter(self.labels[path][label] for path in paths).items())
                hints.append(f"{category} / {sub}: the label {label!r} splits its {len(paths)} results evenly "
                             f"{values}, so Snakemake 9 makes it a toggle, which crashes the report")
        return "".join(f"\n  {h}" for h in hints)

    def go_home(self):
        if not self.css("#app nav"):  # a crash (its test failed): load the page again for the next checks
            self.load()
        self.js("document.querySelector('#app nav nav ol li a').click()")  # the first breadcrumb: the menu
        self.wait(lambda: "Workflow" in self.menu_items(), "the menu")

    def front_page(self):
        """The menu's Workflow item: the workflow description and the rule graph."""
        self.go_home()
        self.menu("Workflow")
        return self.wait(lambda: self.css("#app .prose"), "the workflow description")[0]

    def open_category(self, category: str) -> list[str]:
        """Menu -> category: the subcategories it lists, or [] where it has one (Snakemake then shows that
        one's rows at once, and no subcategory in the breadcrumbs)."""
        self.go_home()
        self.menu(category)
        nav = self.wait(lambda: (nav := self.nav())["trail"][-1:] == [category] and (nav["rows"] or nav["items"])
                        and nav, f"the category {category}", hint=self.hint(category))
        return [] if nav["rows"] else nav["items"]

    def open_subcategory(self, category: str, subcategory: str):
        """Menu -> category -> subcategory: its result rows."""
        if self.open_category(category):
            self.menu(subcategory)
            self.wait(lambda: (nav := self.nav())["trail"][-1:] == [subcategory] and nav["rows"],
                      f"the results of {category} / {subcategory}", hint=self.hint(category, subcategory))
        else:
            assert list(self.categories[category]) == [subcategory], (category, subcategory)
        return self.result_rows()

    def walk(self, kind: str | None = None):
        """Every result row (or those of type `kind`), reached as a reader reaches it: menu -> category ->
        subcategory -> row, afresh for each row, in the order the report lists them. Yields a Row whose
        buttons the caller may click. On the way: the rows of a subcategory are its results in the
        embedded index, one row each, told apart by the item label."""
        self.go_home()
        for category in [item for item in self.menu_items() if item in self.categories]:
            for subcategory in self.open_category(category) or list(self.categories[category]):
                if kind and kind not in {self.labels[path]["type"] for path in self.categories[category][subcategory]}:
                    continue  # no row of this type (the complete walk checks every list)
                self.open_subcategory(category, subcategory)
                shown = self.row_labels()
                paths = {self.labels[path]["item"]: path for path in self.categories[category][subcategory]}
                assert len(paths) == len(self.categories[category][subcategory]), f"items named twice: {paths}"
                assert sorted(row["item"] for row in shown) == sorted(paths), (
                    f"{category} / {subcategory}: the rows {shown} are not its results {sorted(paths)}"
                    f"{self.hint(category, subcategory)}")
                for i, labels in enumerate(shown):
                    if kind is None or labels.get("type") == kind:
                        # the first row right after the listing; any other afresh from the menu
                        row = self.open_subcategory(category, subcategory)[i] if i else self.result_rows()[0]
                        view, info = self.css("td:last-child a", row)
                        yield Row(category, subcategory, i, labels, paths[labels["item"]], view, info)

    def caption(self, row: Row) -> str:
        """Open a result's info panel; its Description (the caption from workflow/report/*.rst) as text."""
        self.click(row.info)
        item = self.wait(lambda: self.css("#app nav li.prose"), f"the caption of {row.slug}")[0]
        assert self.js("return app.state.resultPath") == row.path, (row, self.js("return app.state.resultPath"))
        html = item.get_attribute("innerHTML")
        assert not _rst_errors(html), f"{row.slug}: the caption did not render: {_rst_errors(html)}\n{html[:2000]}"
        text = item.text
        assert len(text) > 150, (row.slug, text)
        return text

    # --- screenshots and the console

    def screenshot(self, name: str, min_height: int = 0) -> Path:
        """The whole app: the viewport grown to its content (the app scrolls inside fixed-height panes;
        min_height for what an iframe holds), capped at 4000 x 8000 px."""
        width, height = WINDOW
        if self.css("#app nav"):
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

    def new_errors(self) -> list[str]:
        """SEVERE console messages since the last call (each test asks for its own)."""
        new = self.driver.get_log("browser")
        self.console += new
        return [f"{m['level']}: {m['message']}" for m in new if m["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def report(browser, tiny_run, tmp_path_factory):
    shots = tmp_path_factory.mktemp("report-screenshots")
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    page = Report(browser, (tiny_run / "report.html").as_uri(), shots)
    yield page
    SUMMARY_NOTES.append(f"report.html screenshots ({len(list(shots.glob('*.png')))} pages): {SCREENSHOTS} "
                         f"(also {shots})")


def test_front_page_renders_the_workflow_description_and_rule_graph(report):
    assert not report.css("#loading-screen")[0].is_displayed()
    prose = report.css("#app .prose")
    assert prose, "no workflow description on the front page"
    description = " ".join(prose[0].get_attribute("textContent").split())
    assert "fhnkit trains small neural networks" in description, description[:500]
    assert not _rst_errors(prose[0].get_attribute("innerHTML")), "workflow/report/workflow.rst did not render"
    for study in STUDIES:
        assert f"{study}: problem" in description, study
    # Snakemake centres the page vertically (flex items-center): a description taller than the window
    # loses its first lines above the top, where no scroll bar reaches
    top, height, window = report.js("const box = arguments[0].getBoundingClientRect(); "
                                    "return [box.top, box.height, window.innerHeight]", prose[0])
    assert top >= 0, (f"the first {-top:.0f} px of workflow/report/workflow.rst are cut off above the window: "
                      f"the description is {height:.0f} px high in a {window} px window")
    # the rule graph is a vega chart: drawn once it has a non-empty canvas or svg
    graph = report.wait(lambda: [g for g in report.css("#rulegraph canvas, #rulegraph svg")
                                 if g.size["width"] > 100 and g.size["height"] > 100], "the rule graph")
    assert graph
    # the menu: the general items, then exactly the five stages (sorted by Snakemake, see MENU)
    assert report.menu_items() == ["Workflow", "Statistics", "About", *MENU], report.menu_items()
    report.screenshot("01_front_page")
    assert not (errors := report.new_errors()), errors
    print(f"report rendered in {report.load_s:.1f} s")


def test_the_embedded_index_places_every_result_under_its_stage_and_study(report, tiny_run):
    index = {category: {sub: set(paths) for sub, paths in subs.items()} for category, subs in report.categories.items()}
    assert index == EXPECTED_INDEX
    for path, labels in report.labels.items():
        assert labels["item"] and labels["type"] == TYPES[Path(path).suffix], (path, labels)
        assert (tiny_run / path).is_file(), path
    assert not (errors := report.new_errors()), errors


def test_links_in_the_workflow_description_open_their_category(report):
    links = [(a.get_attribute("textContent"), a.get_attribute("href")) for a in report.css("a", report.front_page())]
    assert {text for text, _ in links} >= set(STAGES), links
    for i, (text, href) in enumerate(links):
        link = report.css("a", report.front_page())[i]
        report.click(link)
        # a category link shows that category (its subcategories, or the rows of its one subcategory);
        # anything else must at least raise no error
        if href.startswith("javascript:app.showCategory("):
            report.wait(lambda text=text: (nav := report.nav())["trail"][-1:] == [text]
                        and (nav["rows"] or nav["items"]),
                        f"the category after clicking the link {text!r}", hint=report.hint(text))
        errors = report.new_errors()
        assert not errors, f"the link {text!r} ({href}) in workflow/report/workflow.rst: {errors}"


def test_each_category_lists_its_studies(report):
    for category in MENU:
        shown = report.open_category(category)
        expected = sorted(EXPECTED_INDEX[category])
        if len(expected) == 1:  # a single subcategory: its rows at once, no subcategory level
            assert shown == [] and report.trail() == ["Results", category], (category, shown, report.trail())
        else:
            assert sorted(shown) == expected, (category, shown)
            assert shown == report.js("return arguments[0].slice().sort((a, b) => a.localeCompare(b))", shown)
        report.screenshot(f"02_category_{_slug(category)}")
        for subcategory in shown:
            report.open_subcategory(category, subcategory)
            assert report.trail() == ["Results", category, subcategory], report.trail()
            report.screenshot(f"02_category_{_slug(category, subcategory)}")
    assert report.open_category(ACCURACY) == [ALL, "A_scarce", "B_S", "C", "diverges"]
    assert not (errors := report.new_errors()), errors


def test_every_result_is_reached_once_through_category_subcategory_and_row(report):
    reached = []
    for row in report.walk():
        assert report.trail()[:2] == ["Results", row.category], (row, report.trail())
        assert row.labels["type"] == TYPES[Path(row.path).suffix], row
        report.click(row.info)  # the app's own word on which result the row stands for
        report.wait(lambda row=row: report.js("return app.state.resultPath") == row.path, f"the info of {row.slug}")
        reached.append(row.path)
    assert [path for path, n in Counter(reached).items() if n > 1] == []
    assert sorted(reached) == sorted(report.labels)
    assert not (errors := report.new_errors()), errors


def test_every_figure_loads_and_has_its_caption(report):
    seen = []
    for n, row in enumerate(report.walk("figure")):
        report.click(row.view)
        image = report.wait(lambda row=row: report.js(JS_IMAGE, row.path), f"figure {row.slug}")
        assert image["this_result"] and image["src"].startswith("data:image/png") and image["base64"], (row, image)
        assert image["natural"][0] > 300 and image["natural"][1] > 200, (row.slug, image)
        # not shrunk to a thumbnail: the pane shows it at least 600 px wide, or at its full width
        assert image["shown"][0] >= min(600, image["natural"][0]), (row.slug, image)
        report.screenshot(f"03_figure_{n:02d}_{row.slug}")
        caption = report.caption(row)
        if row.labels["item"] == "Predictions vs solver":  # the Jinja template filled in: the study and the rule
            assert f"study {row.subcategory} against the solver" in caption and "= of_max" in caption, caption
        if n == 0:
            report.screenshot(f"04_figure_info_{row.slug}")
        seen.append(row.path)
    assert sorted(seen) == sorted(path for path, labels in report.labels.items() if labels["type"] == "figure")
    assert all(path.endswith(".png") for path in seen), seen
    assert not (errors := report.new_errors()), errors


def test_every_table_page_renders_with_its_caption_and_csv_download(report, tiny_run):
    from selenium.webdriver.common.by import By

    seen, without_csv, too_wide = [], [], []
    for n, row in enumerate(report.walk("table")):
        report.click(row.view)
        frame = report.wait(lambda: report.css("#app div.overflow-auto iframe"), f"table page {row.slug}")[0]
        assert report.js("return arguments[0].src === results[arguments[1]].data_uri", frame, row.path), row
        assert frame.get_attribute("src").startswith("data:text/html"), row
        report.driver.switch_to.frame(frame)
        try:
            body = report.wait(lambda: report.driver.find_element(By.TAG_NAME, "body").text, f"text of {row.slug}",
                               in_app=False)
            # an analysis table, or the configuration page's YAML
            cells = report.driver.find_elements(By.CSS_SELECTOR, "table td, table th, pre")
            links = [(a.get_attribute("href"), a.get_attribute("download"))
                     for a in report.driver.find_elements(By.XPATH, "//a[normalize-space()='Download as CSV']")]
            scroll = report.js("return [document.documentElement.scrollWidth, window.innerWidth, "
                               "document.documentElement.scrollHeight]")
        finally:
            report.driver.switch_to.default_content()
        assert len(body) > 50 and cells, (row.slug, body[:300])
        assert "Traceback" not in body and "{{" not in body, (row.slug, body[:300])
        # the link holds the CSV written beside the page (the same bytes), under its file name
        csv = tiny_run / Path(row.path).with_suffix(".csv")
        if links:
            assert len(links) == 1 and csv.is_file(), (row.slug, links)
            href, name = links[0]
            assert href.startswith("data:text/csv") and name == csv.name, (row.slug, href[:60], name)
            assert _data(href) == csv.read_bytes(), f"{row.slug}: the CSV link does not hold {csv}"
        else:
            without_csv.append(row.path)
        report.screenshot(f"05_table_{n:02d}_{row.slug}", min_height=scroll[2] + 40)
        if scroll[0] > scroll[1] + 5:
            too_wide.append(f"{row.labels['item']}: {scroll[0]} px wide in a {scroll[1]} px frame")
        report.caption(row)
        seen.append(row.path)
    assert sorted(seen) == sorted(path for path, labels in report.labels.items() if labels["type"] == "table")
    assert without_csv == ["results/config.html"]  # the configuration is a page of YAML, not a table
    # with the navbar open in a 1600 px window a table should not need a horizontal scroll bar; the frame
    # scrolls, so nothing is lost: a warning in the pytest summary rather than a failure
    if too_wide:
        warnings.warn(f"report table pages wider than their frame (horizontal scrolling): {'; '.join(too_wide)}",
                      stacklevel=1)
    assert not (errors := report.new_errors()), errors


def test_the_summary_csv_downloads_and_has_its_caption(report, tiny_run):
    seen = []
    for row in report.walk("table (CSV)"):
        # the eye button of a CSV is a download link (a data: URI), not a view
        href, name = row.view.get_attribute("href") or "", row.view.get_attribute("download")
        assert href.startswith("data:text/csv") and name == Path(row.path).name, (row.slug, href[:60], name)
        assert _data(href) == (tiny_run / row.path).read_bytes(), row.slug
        report.caption(row)
        report.screenshot(f"06_csv_info_{row.slug}")
        seen.append(row.path)
    assert seen == ["results/summary.csv"]
    assert not (errors := report.new_errors()), errors


def test_statistics_page_renders(report):
    report.go_home()
    report.menu("Statistics")
    report.wait(lambda: [g for g in report.css("#app div.overflow-auto canvas, #app div.overflow-auto svg")
                         if g.size["width"] > 100], "the run-time charts")
    report.screenshot("07_statistics")
    assert not (errors := report.new_errors()), errors
