"""The built book read as its readers read it: headless Chromium (Debian's, driven by Playwright) with no
network, at 400, 900 and 1400 px.

Every request that is not a file of the book is aborted and counted as a failure, so the book must carry
everything it shows (MathJax included). The book is built once per session with warnings as errors, into
a temporary folder; set ``PPAL_BOOK_HTML`` to a built ``_build/html`` to test that one instead, and
``PPAL_BOOK_SHOTS`` to a folder to keep a screenshot of every page at every width.

Without Chromium or Playwright these tests skip with the reason, except under CI (``CI`` set), where
``.ci/run`` installs both and a missing browser fails the run.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from ppal_lab.compendium.paths import repo_root

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

CHROMIUM = os.environ.get("PPAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTHS = (400, 900, 1400)
def _numbered_chapters() -> list[str]:
    """The chapters of the table of contents' numbered parts, in order: the book numbers them 1, 2, ..."""
    toc = yaml.safe_load((repo_root() / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]
    return [f.split("/")[-1] for f in files if f.startswith("notebooks/")]


CHAPTERS = _numbered_chapters()
PAGES = ([f"book/{n}" for n in ("intro", "course", "reproduce", "glossary", "verdict_rules",
                                "claims_ledger", "bibliography")]
         + [f"notebooks/{c}" for c in CHAPTERS] + ["genindex", "search"])
SLACK = 1  # px of rounding between a box and its column


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    if os.environ.get("PPAL_BOOK_HTML"):
        return Path(os.environ["PPAL_BOOK_HTML"])
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run([str(jb), "build", str(repo_root()), "--path-output", str(out), "-W", "-n",
                           "--keep-going"], capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return out / "_build" / "html"


class Reader:
    """One browser page that refuses the network and remembers what went wrong while loading."""

    def __init__(self, context, html: Path):
        self.html, self.errors, self.failed = html, [], []
        context.route("**/*", self._route)
        self.page = context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))

    def _route(self, route):
        url = route.request.url
        local = url.startswith(("file://", "data:", "blob:")) or urlparse(url).hostname == "127.0.0.1"
        if local:
            route.continue_()
        else:
            self.failed.append(url)
            route.abort()

    def open(self, name: str, width: int, query: str = ""):
        self.errors.clear()
        self.failed.clear()
        self.page.set_viewport_size({"width": width, "height": 900})
        self.page.goto((self.html / f"{name}.html").as_uri() + query)
        self.page.wait_for_load_state("load")
        # MathJax typesets after load; its promise resolves when every formula is done
        self.page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        if os.environ.get("PPAL_BOOK_SHOTS"):
            shots = Path(os.environ["PPAL_BOOK_SHOTS"])
            shots.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(shots / f"{name.replace('/', '_')}_{width}.png"))
        return self.page


@pytest.fixture(scope="session")
def reader(html):
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS,
                                                       headless=True)
        yield Reader(context, html)
        context.close()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_loads_offline_with_no_console_error_and_no_failed_request(reader, name):
    reader.open(name, 1400)
    assert reader.failed == [], f"{name}: requests that failed or would leave the machine: {reader.failed}"
    assert reader.errors == [], f"{name}: console errors: {reader.errors}"


@pytest.mark.parametrize("name", [p for p in PAGES if p != "search"])
def test_math_is_typeset_and_no_raw_tex_is_left(reader, name):
    page = reader.open(name, 1400)
    seen = page.evaluate("""() => ({
        formulas: document.querySelectorAll('article .math').length,
        typeset: document.querySelectorAll('article .math mjx-container').length,
        text: document.querySelector('article').innerText,
        contents: (document.querySelector('#pst-page-toc-nav') || {innerText: ''}).innerText})""")
    if name.startswith("notebooks/"):
        assert seen["formulas"] > 0, f"{name}: a chapter without a formula? the check would prove nothing"
    assert seen["typeset"] == seen["formulas"], f"{name}: {seen['typeset']} of {seen['formulas']} formulas typeset"
    for where in ("text", "contents"):
        raw = re.findall(r".{0,30}(?:\\\(|\\\[|\$\$).{0,30}", seen[where])
        assert not raw, f"{name}: raw TeX left in the page {where}: {raw[:3]}"


@pytest.mark.parametrize("name", PAGES)
def test_every_image_loads(reader, name):
    page = reader.open(name, 1400)
    broken = page.evaluate("""() => [...document.querySelectorAll('img')]
        .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))""")
    assert broken == [], f"{name}: images that did not load: {broken}"


def test_no_internal_link_is_broken(html):
    """Every relative link of every page points at a file of the book, and at an anchor that exists."""
    pages = list(html.rglob("*.html"))
    ids = {p.resolve(): set(re.findall(r'\sid="([^"]+)"', p.read_text(errors="replace"))) for p in pages}
    broken = []
    for page in pages:
        for href in re.findall(r'<a [^>]*href="([^"]+)"', page.read_text(errors="replace")):
            url = urlparse(href)
            if url.scheme or href.startswith(("//", "mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(html)} -> {href}")
            elif url.fragment and target.suffix == ".html" and target in ids and url.fragment not in ids[target]:
                broken.append(f"{page.relative_to(html)} -> {href} (no such anchor)")
    assert not broken, broken[:20]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sidebar_toggle_reaches_the_chapter_list(reader, width):
    page = reader.open("notebooks/03_sparsity", width)
    toggles = page.locator(".primary-toggle:visible")
    assert toggles.count() == 1, "exactly one visible sidebar toggle"
    chapter_link = 'a.reference.internal[href$="06_secret_sharing.html"]'
    was_shown = page.locator(f"#pst-primary-sidebar {chapter_link}").is_visible()
    toggles.first.click()
    page.wait_for_timeout(400)  # the theme animates the sidebar
    if width < 992:  # below the theme's breakpoint the chapter list opens as a dialog
        assert page.locator(f"dialog[open] {chapter_link}").is_visible(), "the chapter list did not open"
    else:  # at desktop widths the sidebar is shown by default and the toggle hides it
        assert was_shown
        assert not page.locator(f"#pst-primary-sidebar {chapter_link}").is_visible(), "the sidebar did not close"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_claims_ledger_fits_the_column_with_visible_verdict_badges(reader, width):
    page = reader.open("book/claims_ledger", width)
    boxes = page.evaluate("""() => {
        const col = document.querySelector('article.bd-article').getBoundingClientRect();
        return [...document.querySelectorAll('table.ledger')].map(t => {
            const r = t.getBoundingClientRect();
            const badges = [...t.querySelectorAll('tbody .sd-badge')].map(b => b.getBoundingClientRect());
            return {left: r.left - col.left, right: r.right - col.right, scroll: t.scrollWidth - t.clientWidth,
                    badges: badges.length, rows: t.querySelectorAll('tbody tr').length,
                    badgeRight: Math.max(...badges.map(b => b.right)), viewport: window.innerWidth};
        });
    }""")
    assert boxes, "no ledger tables"
    for i, box in enumerate(boxes):
        assert box["right"] <= SLACK and box["scroll"] <= SLACK, f"table {i} is wider than the column: {box}"
        assert box["badges"] == box["rows"], f"table {i}: a row without a verdict badge"
        assert box["badgeRight"] <= box["viewport"], f"table {i}: verdicts off screen at {width} px"
    colours = page.evaluate("""() => [...new Set([...document.querySelectorAll('table.ledger .sd-badge')]
        .map(b => getComputedStyle(b).backgroundColor))]""")
    assert len(colours) >= 3, f"verdict badges are not told apart by colour: {colours}"


@pytest.mark.parametrize("name", [f"notebooks/{c}" for c in CHAPTERS] + ["book/claims_ledger", "book/reproduce"])
def test_no_code_output_or_table_runs_past_the_column_at_1400px(reader, name):
    page = reader.open(name, 1400)
    over = page.evaluate("""() => {
        const col = document.querySelector('article.bd-article').getBoundingClientRect().right;
        return [...document.querySelectorAll('article pre, article table, article img')]
            .filter(e => e.offsetParent !== null)
            .filter(e => e.getBoundingClientRect().right > col + 1
                         || (e.tagName === 'PRE' && e.scrollWidth > e.clientWidth + 1))
            .map(e => e.tagName + ': ' + e.innerText.slice(0, 60));
    }""")
    assert over == [], f"{name}: wider than the column: {over[:5]}"


@pytest.mark.parametrize("name", ["book/claims_ledger", "notebooks/02_active_learning"])
def test_nothing_scrolls_the_page_sideways_at_400px(reader, name):
    page = reader.open(name, 400)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_solutions_are_hidden_until_toggled(reader):
    page = reader.open("notebooks/01_supply_chain_data", 1400)
    solution = page.locator(".solution.dropdown").first
    body = solution.locator(".solution-content, section").first
    assert not body.is_visible()
    solution.locator(".admonition-title, summary, button").first.click()
    page.wait_for_timeout(300)
    assert body.is_visible()


def test_search_finds_a_term(reader):
    page = reader.open("search", 1400, "?q=bifurcation")
    page.wait_for_selector("#search-results li", timeout=15000)
    assert page.locator("#search-results li").count() > 0


def test_exercises_are_numbered_per_chapter(reader):
    for number, chapter in enumerate(CHAPTERS, 1):
        page = reader.open(f"notebooks/{chapter}", 1400)
        titles = page.locator(".exercise .admonition-title").all_inner_texts()
        assert titles, f"{chapter}: no exercises"
        assert [re.search(r"Exercise (\d+)\.(\d+)", t).groups() for t in titles] == \
            [(str(number), str(i)) for i in range(1, len(titles) + 1)], (chapter, titles)


def test_citations_read_the_same_in_the_text_and_the_bibliography(reader):
    page = reader.open("book/bibliography", 1400)
    # a reader sees no difference between a space and a no-break space ("El\xa0Mhamdi")
    labels = {" ".join(lab.split()).strip("[]") for lab in page.locator("div.citation > span.label").all_inner_texts()}
    assert labels and all(re.fullmatch(r"[^\[\],]+, \d{4}[a-z]?", lab) for lab in labels), labels
    cited = set()
    for chapter in CHAPTERS:
        page = reader.open(f"notebooks/{chapter}", 1400)
        cited |= {" ".join(t.split()) for t in page.locator("a[href*='bibliography.html#']").all_inner_texts()
                  if re.search(r", \d{4}", t)}
    assert "Shamir, 1979" in cited and len(cited) > 10, cited
    assert cited <= labels, f"cited in the text but labelled otherwise in the bibliography: {cited - labels}"


def test_one_search_box(reader):
    for width in (400, 1400):
        page = reader.open("notebooks/02_active_learning", width)
        boxes = page.locator(".search-button-field:visible, .search-button:visible, #searchbox input:visible")
        assert boxes.count() == 1, f"{boxes.count()} search boxes at {width} px"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_shows_its_rerun_command_and_links_to_reproduce(reader, chapter):
    page = reader.open(f"notebooks/{chapter}", 1400)
    text = page.locator("article").inner_text()
    assert f"ppal-lab run {chapter[:2]}" in text
    assert page.locator("article a[href$='book/reproduce.html']").count() > 0
    student = page.locator(f"article a[href$='_static/student/{chapter}.ipynb']")
    assert student.count() == 1
    assert (reader.html / "_static" / "student" / f"{chapter}.ipynb").exists()


def test_a_figure_enlarges_to_the_window_on_click(reader):
    page = reader.open("notebooks/05_qubo_feature_selection", 1400)
    figure = page.locator("article .cell_output img").first
    small = figure.bounding_box()
    assert small["width"] < 1000
    figure.click()
    big = figure.bounding_box()
    assert (big["width"], big["height"]) == (1400, 900), "the figure does not fill the window"
    page.keyboard.press("Escape")
    back = figure.bounding_box()
    assert (back["width"], back["height"]) == (small["width"], small["height"])


def test_the_page_contents_toggle_opens_at_400px(reader):
    page = reader.open("notebooks/03_sparsity", 400)
    page.locator(".secondary-toggle:visible").first.click()
    page.wait_for_timeout(400)
    assert page.locator("dialog[open] #pst-page-toc-nav a").first.is_visible(), "the page contents did not open"


def test_the_index_lists_the_glossary_terms(reader):
    page = reader.open("genindex", 1400)
    indexed = page.locator("a[href*='glossary.html#term-']").count()
    glossary = reader.open("book/glossary", 1400)
    assert indexed == glossary.locator("dl.glossary dt").count() >= 20


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_figures_are_shown_at_a_legible_scale_numbered_captioned_and_described_at_1400px(reader, chapter):
    """A figure is drawn at 100 dpi with 9-10 pt labels, 12-14 px high at its natural size. Shown narrower
    than its natural width / 1.5 its labels drop below 8-9 px, too small to read, so the measure is the
    shrink factor: the image's natural width over its displayed width (not the file's dpi or pixel count,
    which say nothing about what the reader sees). Each figure is also numbered, captioned and has alt text
    that describes it (not its file name)."""
    page = reader.open(f"notebooks/{chapter}", 1400)
    figures = page.evaluate("""() => [...document.querySelectorAll('article .cell_output img')].map(i => ({
        src: i.getAttribute('src').split('/').pop(), alt: i.getAttribute('alt') || '',
        shrink: i.naturalWidth / i.getBoundingClientRect().width,
        number: (i.closest('figure') || {querySelector: () => null}).querySelector('.caption-number')
                ? i.closest('figure').querySelector('.caption-number').textContent.trim() : null}))""")
    assert figures, f"{chapter}: no figure?"
    shrunk = [(f["src"], round(f["shrink"], 2)) for f in figures if f["shrink"] > 1.5]
    assert not shrunk, f"{chapter}: figures shown at less than 1/1.5 of their natural width: {shrunk}"
    unnumbered = [f["src"] for f in figures if not (f["number"] or "").startswith("Fig")]
    assert not unnumbered, f"{chapter}: figures without a number and caption: {unnumbered}"
    undescribed = [f["src"] for f in figures if len(f["alt"].split()) < 5 or f["alt"].endswith(".png")]
    assert not undescribed, f"{chapter}: figures whose alt text does not describe them: {undescribed}"


def test_the_header_download_serves_the_student_notebook(reader):
    """The page header's download button hands out the chapter without its solutions."""
    page = reader.open("notebooks/06_secret_sharing", 1400)
    href = page.locator("a.btn-download-source-button").first.get_attribute("href")
    assert href.endswith("06_secret_sharing.ipynb"), href
    served = (reader.html / "notebooks" / unquote(href)).resolve().read_text()
    assert "{solution-start}" not in served and "{exercise}" in served
