"""The front page and the citation metadata stay what the docs promise (the site itself is built
with `mkdocs build --strict` by the README's test command, which fails on broken links)."""
import configparser
import re
from pathlib import Path

import yaml

import gfsr_tf

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_a_front_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets, "the README links into the docs"
    missing = [t for t in targets if not t.startswith("http") and not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_test_command_builds_the_docs_and_runs_pytest():
    lines = (ROOT / "README.md").read_text().splitlines()
    command = lines[lines.index("<!-- test-command -->") + 2]
    assert "mkdocs build --strict" in command and "pytest" in command
    # -q hides the warnings that --strict counts: with it a broken link passes (mkdocs 1.6.1)
    assert "mkdocs build --strict -q" not in command


def test_every_docs_page_is_in_the_navigation():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(entry):
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, list):
            return [p for e in entry for p in pages(e)]
        return [p for v in entry.values() for p in pages(v)]

    listed = set(pages(nav))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == listed


def test_citation_and_licence_match_the_package():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert citation["version"] == gfsr_tf.__version__ == setup["metadata"]["version"]
    assert citation["license"] == setup["metadata"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
