"""The manual in docs/: it builds as a site with no broken link, a page renders in a real browser, and
every command's options are the ones its page documents (and only those)."""

from __future__ import annotations

import re
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


def test_the_site_builds_with_no_broken_link_or_anchor(site):
    assert (site / "index.html").is_file()
    assert (site / "commands" / "score-variants" / "index.html").is_file()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the CI installs Debian's)")
def test_a_command_page_renders_in_a_headless_browser(site, tmp_path):
    page = site / "commands" / "embed" / "index.html"
    dom = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr
    html = dom.stdout
    assert "<table" in html and "--max-output-size" in html  # the options table, rendered
    assert re.search(r"<h1[^>]*>\s*<code>caduceus embed</code>", html)
    shot = tmp_path / "embed.png"
    subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,900", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000  # not a blank page


def documented_options(page: Path) -> set[str]:
    """Long options named in the first column of the page's option tables (`| \\`-o, --output FILE\\` | ...`)."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            found.update(re.findall(r"(--[a-z][a-z0-9-]*)", first))
    return found


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
