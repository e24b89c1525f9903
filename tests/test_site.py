"""The documentation site: it builds in strict mode (``scripts/docs.sh``: a warning fails),
every internal link and image of the built pages resolves, and Debian's Chromium, headless,
renders the home page, the API page with LAMB's signature and a study page with its table.
Screenshots are kept in ``$TF_LAMB_ARTIFACTS/site/`` (default ``artifacts/site/``)."""

import functools
import html.parser
import http.server
import os
import re
import shutil
import subprocess
import threading
import urllib.parse

import pytest

from tests.docs_support import ROOT, require

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(["bash", os.path.join(ROOT, "scripts", "docs.sh"), str(out)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, f"sphinx-build -W failed:\n{built.stderr[-5000:]}"
    return out


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") == "preconnect"):
                self.links.append(attrs[key])


def _parse(path):
    parser = _Links()
    with open(path, encoding="utf-8") as f:
        parser.feed(f.read())
    return parser


def test_the_site_has_every_page(site):
    for page in ("index.html", "quickstart.html", "choosing.html", "migration.html",
                 "api/optimizers.html", "api/schedules.html", "api/callbacks.html",
                 "recipes/index.html", "recipes/bert.html", "recipes/resnet.html",
                 "studies/batch_scaling.html", "studies/legw.html", "results.html",
                 "benchmarks.html", "changelog.html", "notebooks/quickstart.html",
                 "notebooks/bert_pretraining_tpu.html", "notebooks/resnet50_tpu.html"):
        assert (site / page).is_file(), page


def test_every_internal_link_and_image_resolves(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 25
    parsed = {path: _parse(path) for path in pages}
    broken, checked = [], 0
    for path, parser in parsed.items():
        for link in parser.links:
            url = urllib.parse.urlsplit(link)
            if url.scheme or link.startswith("//"):
                continue  # outside the site
            target = path if not url.path else (path.parent / urllib.parse.unquote(url.path))
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {link}")
            elif url.fragment and target.suffix == ".html":
                ids = parsed[target.resolve()].ids if target.resolve() in parsed else \
                    _parse(target).ids
                if urllib.parse.unquote(url.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    assert checked > 1000
    assert not broken, "\n".join(broken[:40])


def test_the_link_check_sees_a_broken_link(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#x">b</a><img src="c.png">')
    (tmp_path / "b.html").write_text('<p id="y">b</p>')
    parser = _Links()
    parser.feed((tmp_path / "a.html").read_text())
    assert parser.links == ["b.html#x", "c.png"]
    assert "x" not in _parse(tmp_path / "b.html").ids


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    """The site over HTTP on localhost, as a browser sees a published site."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _chromium(args, tmp_path):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    require(binary, "Debian's chromium")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _text(dom):
    """The visible text of a DOM dump, whitespace collapsed."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", dom)).split())


def _artifacts():
    folder = os.path.join(os.environ.get("TF_LAMB_ARTIFACTS", os.path.join(ROOT, "artifacts")),
                          "site")
    os.makedirs(folder, exist_ok=True)
    return folder


@pytest.mark.parametrize("page, expected", [
    ("index.html", ["Layer-wise adaptive optimizers", "Quickstart", "API reference"]),
    ("api/optimizers.html", ["class tf_lamb.LAMB(learning_rate=0.001, beta_1=0.9, "
                             "beta_2=0.999, epsilon=1e-06, weight_decay=0.0",
                             "max_trust_ratio – optional float > 0", "class tf_lamb.LARS("]),
    ("studies/batch_scaling.html", ["LAMB (lr 0.005, wd 0.01) 90.11 89.98 (-0.13)",
                                    '<img alt="Test accuracy against global batch size"']),
])
def test_chromium_renders_the_page(served, page, expected, tmp_path):
    dom = _chromium(["--dump-dom", f"{served}/{page}"], tmp_path)
    text = _text(dom)
    for phrase in expected:
        assert phrase in (dom if phrase.startswith("<") else text), f"{page}: {phrase!r}"
    screenshot = os.path.join(_artifacts(), page.replace("/", "_").replace(".html", ".png"))
    if os.path.exists(screenshot):
        os.remove(screenshot)
    _chromium([f"--screenshot={screenshot}", "--window-size=1280,1600", f"{served}/{page}"],
              tmp_path)
    with open(screenshot, "rb") as f:
        png = f.read()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000  # a blank page is ~5 KB


def test_the_readmes_links_resolve():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 150  # read in two minutes; the rest is on the site
    links = re.findall(r"\]\(([^)#\s]+)", readme)
    assert len(links) >= 15
    missing = [link for link in links
               if "://" not in link and not os.path.exists(os.path.join(ROOT, link))]
    assert not missing, missing
