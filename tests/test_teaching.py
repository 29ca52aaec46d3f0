"""docs/teaching.md, the instructor's guide: an answer for every experiment of every chapter
page, a lab for every part, the commands it quotes accepted by the chapter scripts."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUIDE = (REPO / "docs" / "teaching.md").read_text()
PAGES = {
    "part1_overview": "Part 1", "part2_manual_oci": "Part 2", "part3_go_style_builder": "Part 3", "part4_tar": "Part 4",
    "part5_namespaces": "Part 5", "part6_runtime": "Part 6", "part7_union": "Part 7", "capstone": "The capstone",
}


def _numbered_items(text: str) -> int:
    return len(re.findall(r"^\d+\. ", text, flags=re.M))


def _section(title: str) -> str:
    start = GUIDE.index(f"\n## {title}")
    end = GUIDE.find("\n## ", start + 1)
    return GUIDE[start:end if end > 0 else None]


@pytest.mark.parametrize("package", sorted(PAGES))
def test_every_experiment_of_the_page_has_an_answer(package):
    page = (REPO / package / "README.md").read_text()
    experiments = page.split("\n## Experiments\n", 1)[1].split("\n## ", 1)[0]
    section = _section(PAGES[package])
    answers = section.split("**Experiments:**", 1)[1].split("**Common mistakes", 1)[0] if "**Experiments:**" in section else section
    assert _numbered_items(answers) == _numbered_items(experiments), (
        f"{package}/README.md has {_numbered_items(experiments)} experiments, docs/teaching.md answers {_numbered_items(answers)}"
    )


@pytest.mark.parametrize("package", [p for p in sorted(PAGES) if p.startswith("part")])
def test_every_lab_is_in_the_guide_and_on_its_page(package):
    lab = importlib.import_module(f"{package}.lab").LAB
    row = next(line for line in GUIDE.splitlines() if line.startswith(f"| {package[4]} |"))
    for module in lab.modules:
        assert f"`{module}`" in row
    page = (REPO / package / "README.md").read_text()
    assert f"python -m {package} lab start" in page and "docs/teaching.md" in page


def test_the_guides_lab_commands_run():
    r = subprocess.run([sys.executable, "-m", "part2_manual_oci", "lab", "check", "--solution", "--task", "3", "--json"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0 and '"status": "passed"' in r.stdout
