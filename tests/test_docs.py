"""The manual in docs/: it builds as a site with no broken link, every page reads in a real browser at a
desktop's and a phone's width (no table or code block wider than its column, no literal `\\|`, nothing
fetched from another host), every command's options are the ones its page documents (and only those,
with the placeholders --help shows), and the examples it shows run and print what it says."""

from __future__ import annotations

import html
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from caduceus_cli.cli import COMMANDS, load_command

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The browser the project's CI installs (Debian's chromium); the flags keep it off the network.
CADUCEUS = [sys.executable, "-c", "from caduceus_cli.cli import main; main()"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built with `mkdocs build --strict`: any warning (a broken link or anchor) fails it."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_the_site_builds_with_no_broken_link_or_anchor_and_opens_from_disk(site):
    """Pages are page.html, not page/index.html: the built site/ opened from disk follows its links."""
    assert (site / "index.html").is_file()
    assert (site / "commands" / "score-variants.html").is_file()
    links = re.findall(r'href="([^"#:]+)"', (site / "commands" / "embed.html").read_text())
    assert links and all((site / "commands" / link).resolve().exists() for link in links)


def test_the_site_starts_with_install_a_quick_start_and_the_exit_codes(site):
    nav = re.findall(r'<a class="reference internal" href="([^"]+)">([^<]+)</a>', (site / "index.html").read_text())
    titles = [title for _, title in nav]  # the page's own entry aside
    assert titles[:2] == ["Install", "Quick start"] and "Exit codes and outputs" in titles
    for page in DOCS.rglob("*.md"):  # another folder's README (benchmarks/README.md) is named by its path
        assert not re.search(r"(?<![\w/])README\b", page.read_text()), f"{page}: the README is not part of the site"


# Measures, in the page as laid out, what a reader cannot see: a table or code block that goes past the
# text column or scrolls (the theme's scroll boxes), a page that scrolls sideways, a literal \| (an escape
# Markdown leaves in code), and anything fetched from another host (CDN scripts, fonts, images).
LAYOUT_CHECK = r"""
async function check(pages, widths) {
  const frame = document.getElementById("page");
  const report = [];
  for (const width of widths) {
    frame.style.width = width + "px";
    for (const page of pages) {
      await new Promise((loaded) => { frame.onload = loaded; frame.src = page; });
      const doc = frame.contentDocument;
      const column = doc.querySelector("[role=main]") || doc.body;
      const edge = column.getBoundingClientRect().right;
      const problems = [];
      const start = (el) => el.textContent.trim().slice(0, 60);
      for (const el of column.querySelectorAll("table, pre")) {
        const kind = el.tagName.toLowerCase();
        const past = el.getBoundingClientRect().right - edge;
        if (past > 1) problems.push(`${kind} ${Math.round(past)}px past the column: ${start(el)}`);
        for (const box of [el, el.parentElement, ...el.querySelectorAll("code")]) {
          if (box.scrollWidth > box.clientWidth + 1 && getComputedStyle(box).overflowX !== "visible")
            problems.push(`${kind} scrolls by ${box.scrollWidth - box.clientWidth}px: ${start(el)}`);
        }
      }
      const page_width = doc.documentElement;
      if (page_width.scrollWidth > page_width.clientWidth + 1) problems.push("the page scrolls sideways");
      if (column.innerText.includes("\\|")) problems.push("a literal \\| shows");
      const fetched = frame.contentWindow.performance.getEntriesByType("resource").map((entry) => entry.name);
      const sources = [...doc.querySelectorAll("script[src], link[rel~=stylesheet], link[rel~=icon], img, iframe, source")]
        .map((el) => el.src || el.href || "");
      for (const url of new Set([...fetched, ...sources])) if (!url.startsWith("file:")) problems.push(`fetches ${url}`);
      report.push({ page, width, problems });
    }
  }
  return report;
}
"""
WIDTHS = (1280, 390)  # a laptop's window, a phone's


def layout_report(folder: Path, pages: list[str], profile: Path) -> list[dict]:
    """LAYOUT_CHECK run on `pages` (paths under `folder`) at every width of WIDTHS, in one headless browser
    (a page in a frame of that width: media queries and wrapping apply as on a screen of that width)."""
    harness = folder / "_layout_check.html"
    harness.write_text(
        '<!doctype html><html><body><iframe id="page" style="height:900px;border:0"></iframe>'
        f'<pre id="report">pending</pre><script>{LAYOUT_CHECK}\n'
        f"check({json.dumps(pages)}, {json.dumps(WIDTHS)}).then("
        '(report) => { document.getElementById("report").textContent = JSON.stringify(report); },'
        '(error) => { document.getElementById("report").textContent = "error: " + error; });'
        "</script></body></html>"
    )
    try:
        dom = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, "--allow-file-access-from-files", f"--user-data-dir={profile}",
             "--timeout=60000", "--dump-dom", harness.as_uri()],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        harness.unlink()
    found = re.search(r'<pre id="report">(.*?)</pre>', dom.stdout, flags=re.S)
    assert found, dom.stderr
    text = html.unescape(found.group(1))
    assert text.startswith("["), text
    return json.loads(text)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the CI installs Debian's)")
def test_every_page_reads_at_a_desktop_and_a_phones_width_with_nothing_fetched_from_another_host(site, tmp_path):
    pages = sorted(
        str(page.relative_to(site)) for page in site.rglob("*.html") if page.name not in ("404.html", "search.html")
    )
    report = layout_report(site, pages, tmp_path / "profile")
    assert [(entry["page"], entry["width"]) for entry in report] == [(p, w) for w in WIDTHS for p in pages]
    problems = [f"{entry['page']} at {entry['width']} px: {problem}" for entry in report for problem in entry["problems"]]
    assert problems == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the CI installs Debian's)")
def test_the_layout_check_finds_each_thing_a_reader_would_miss(tmp_path):
    """The check above, on a page with each fault: it must name them all (else it would pass anything)."""
    (tmp_path / "bad.html").write_text(
        '<!doctype html><html><head><script src="http://example.invalid/highlight.js"></script></head><body>'
        '<div role="main" style="width:600px">'
        '<div class="wy-table-responsive" style="overflow:auto"><table><tr>'
        f'<td style="white-space:nowrap">{"cell " * 60}</td></tr></table></div>'
        f'<pre style="overflow:auto">{"code " * 60}</pre>'
        "<p><code>flag\\|skip</code></p></div></body></html>"
    )
    (report,) = layout_report(tmp_path, ["bad.html"], tmp_path / "profile")[:1]
    problems = " / ".join(report["problems"])
    assert "table scrolls by" in problems and "pre scrolls by" in problems
    assert "a literal \\| shows" in problems and "fetches http://example.invalid/highlight.js" in problems


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the CI installs Debian's)")
@pytest.mark.parametrize("width", WIDTHS)
def test_a_command_page_renders_in_a_headless_browser(site, tmp_path, width):
    page = site / "commands" / "embed.html"
    shot = tmp_path / "embed.png"
    subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         f"--window-size={width},900", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000  # not a blank page


def first_cells(page: Path) -> list[str]:
    """The first column of the page's tables that name options (`| \\`-o, --output FILE\\` | ...`)."""
    return [line.split("|")[1] for line in page.read_text().splitlines() if line.startswith("| `")]


def documented_options(page: Path) -> set[str]:
    """Long options named in the first column of the page's option tables."""
    return {option for cell in first_cells(page) for option in re.findall(r"(--[a-z][a-z0-9-]*)", cell)}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_of_a_command_is_documented_on_its_page_and_no_other(name):
    command = load_command(name)
    options = {
        opt
        for param in command.params
        if param.param_type_name == "option"
        for opt in param.opts + param.secondary_opts
        if opt.startswith("--") and opt != "--help"
    }
    documented = documented_options(DOCS / "commands" / f"{name}.md")
    assert options - documented == set(), f"{name}: options missing from docs/commands/{name}.md"
    assert documented - options == set(), f"{name}: docs/commands/{name}.md documents options it does not have"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_docs_write_each_options_value_as_help_does(name):
    """`--window N` in the table where --help says `--window N`: on the command's page, or for the model and
    runtime options on options.md. No choice list escaped with `\\|` (it shows as written in code)."""
    cells = first_cells(DOCS / "commands" / f"{name}.md") + first_cells(DOCS / "options.md")
    written = " ".join(cell.replace("`", "") for cell in cells)
    for param in load_command(name).params:
        if param.param_type_name == "option" and param.metavar:
            long = next(opt for opt in param.opts if opt.startswith("--"))
            assert f"{long} {param.metavar}" in written, f"{name}: {long} {param.metavar} is not in its docs"
    assert "\\|" not in (DOCS / "commands" / f"{name}.md").read_text()


def test_every_benchmark_runs_as_the_docs_write_it_from_the_repository_root():
    """`python -m benchmarks.NAME`, as README, docs/ and CONTRIBUTING.md write them: each module imports
    (its own and its siblings' imports resolve) when run from a clone's root."""
    names = sorted(path.stem for path in (ROOT / "benchmarks").glob("*.py"))
    probe = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module('benchmarks.' + name)\n"
    result = subprocess.run(
        [sys.executable, "-c", probe, *names], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    written = set()
    for page in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md"), ROOT / "benchmarks" / "README.md"]:
        written.update(re.findall(r"python -m benchmarks\.([a-z_]+)", page.read_text()))
        assert "python benchmarks/" not in page.read_text(), page
    assert written and written <= set(names)


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_the_python_api_page_runs_and_its_jobs_write_the_command_lines_files(tmp_path):
    """Every Python example of docs/python-api.md runs as written, from a clone's root, on the example
    files; the files its jobs write are the ones the commands in its comments write."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    blocks = python_blocks(DOCS / "python-api.md")
    assert len(blocks) == 3
    api = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert api.returncode == 0, api.stderr
    assert "10 regions, 18,486 bases" in api.stdout and "300 records, 300 alleles scored" in api.stdout
    commands = [line.split("# ", 1)[1] for line in blocks[2].splitlines() if line.startswith("# caduceus ")]
    assert len(commands) == 2
    for typed, output in zip(commands, ("genes.h5", "scored.vcf.gz"), strict=True):
        (tmp_path / output).rename(tmp_path / f"api.{output}")
        cli = subprocess.run(
            [*CADUCEUS, *typed.split()[1:], "-q"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert provenance_free(tmp_path / output) == provenance_free(tmp_path / f"api.{output}"), typed
    assert (tmp_path / "scored.vcf.gz.tbi").is_file()


def provenance_free(path: Path) -> object:
    """The file's content apart from the command line it records (the API's jobs were given none)."""
    if path.suffix == ".h5":
        import h5py

        content = {}
        with h5py.File(path) as h5:
            content["/"] = {key: value for key, value in h5.attrs.items() if key != "command_line"}

            def keep(name: str, item: h5py.Group | h5py.Dataset) -> None:
                if isinstance(item, h5py.Dataset):  # strings as text, numbers as their exact bytes
                    content[name] = item[()].tolist() if item.dtype.kind == "O" else item[()].tobytes()
                else:
                    content[name] = dict(item.attrs)

            h5.visititems(keep)
        return content
    import gzip

    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    return [line for line in lines if not line.startswith("##caduceus_command=")]


def bash_lines(page: Path) -> list[str]:
    """The command lines of a page's ```bash blocks (continuation lines joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_every_caduceus_line_of_the_quick_start_runs_and_says_what_the_page_says(run_cli, tmp_path, monkeypatch):
    """The quick start's commands, on the example data, from a clone's root (the model: the shipped one)."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    page = DOCS / "quickstart.md"
    commands = [line for line in bash_lines(page) if line.startswith("caduceus ")]
    assert len(commands) == 7
    logs = ""
    for line in commands:
        result = run_cli(*shlex.split(line)[1:])
        assert result.code == 0, f"{line}: {result.err}"
        logs += result.err
    for written in ("genes.h5", "scored.vcf.gz.tbi", "percentiles.tsv", "chr1.llr-min.bw", "ism.png"):
        assert (tmp_path / written).is_file(), written
    assert len((tmp_path / "ism.tsv").read_text().splitlines()) == 1 + 240
    text = " ".join(page.read_text().split())
    assert f"missense 215 {effect_means()['missense']:.2f}, nonsense 16 {effect_means()['nonsense']:.2f}" in text
    size = re.search(r"background.tsv.gz: (\d+) variants per context \(median\), so percentiles come in steps of (\d+)",
                     logs)  # fmt: skip
    assert size and f"the background has {size[1]} variants per context (median)" in text
    assert f"steps of {size[2]} points or more" in text


def effect_means() -> dict[str, float]:
    """The mean CADUCEUS_LLR per INFO/EFFECT of the quick start's scored.vcf.gz (in the current folder)."""
    import pysam

    scores: dict[str, list[float]] = {}
    with pysam.VariantFile("scored.vcf.gz") as vcf:
        for record in vcf:
            scores.setdefault(record.info["EFFECT"], []).append(record.info["CADUCEUS_LLR"][0])
    return {effect: sum(values) / len(values) for effect, values in scores.items()}


def test_the_error_lines_the_exit_codes_page_shows_are_the_ones_printed(run_cli):
    shown = re.findall(r"^\$ caduceus (.*)\n(caduceus: error: .*)$", (DOCS / "exit-codes.md").read_text(), flags=re.M)
    assert len(shown) == 3
    for args, line in shown:
        assert run_cli(*shlex.split(args)) == (2, "", f"{line}\n")


def test_no_page_or_message_installs_a_package_pypi_does_not_have():
    """caduceus-cli is not on PyPI: `pip install caduceus-cli` (or an extra of it) cannot work."""
    for pattern in ("*.md", "caduceus_cli/**/*.py", "docs/**/*.md", "weights/*", "examples/*", "workflows/**/*"):
        for path in ROOT.glob(pattern):
            if path.is_file() and path.suffix not in (".safetensors", ".fa", ".fai", ".vcf", ".bed", ".tsv"):
                assert not re.search(r"pip install [\"']?caduceus-cli", path.read_text(errors="replace")), path
