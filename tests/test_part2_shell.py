"""Part 2 the blog's way: the busybox image made with shell tools only, beside the Python version."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from part2_manual_oci import OCILayout, build_busybox_image, validate_layout
from part2_manual_oci.shell import SCRIPT, build_with_shell, header_differences

REPO = Path(__file__).resolve().parent.parent


def test_the_shell_script_makes_a_valid_image_of_the_same_tree(tmp_path):
    facts = build_with_shell(tmp_path / "sh-oci", tmp_path / "sh")
    assert validate_layout(tmp_path / "sh-oci") == []
    r = subprocess.run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=latest", str(tmp_path / "sh-oci")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    layout = OCILayout.open(tmp_path / "sh-oci")
    manifest = layout.read_manifest(layout.resolve("latest"))
    config = layout.read_config(manifest)
    assert config.rootfs_diff_ids == (facts["diff_id"],)
    assert manifest.layers[0].digest == facts["layer"].split()[0] and manifest.config.digest == facts["config"].split()[0]
    assert config.config.cmd == ("sh",)
    build_busybox_image(tmp_path / "py-oci", workdir=tmp_path / "py")
    listing = [subprocess.run(["tar", "-tvf", str(tmp_path / d / "layer.tar")], capture_output=True, text=True, check=True).stdout
               for d in ("sh", "py")]
    assert listing[0] == listing[1]  # the same entries, names, modes, owners, times and sizes
    # ... and yet other bytes: GNU tar fills the device fields, Python's tarfile leaves them NUL
    differences = header_differences(tmp_path / "sh" / "layer.tar", tmp_path / "py" / "layer.tar")
    assert set(differences) == {"devmajor", "devminor", "checksum"}
    assert len(set(differences.values())) == 1  # in every header


def test_the_chapter_compares_the_two_and_prints_the_script(tmp_path):
    r = subprocess.run([sys.executable, "-m", "part2_manual_oci", "shell", "--out", str(tmp_path / "oci"), "--workdir", str(tmp_path / "w")],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "violations: none" in r.stdout and "tar -tvf of the two layers: the same listing" in r.stdout
    assert re.search(r"diff_id +sha256:\S+ +sha256:\S+ +differs", r.stdout)
    printed = subprocess.run([sys.executable, "-m", "part2_manual_oci", "shell", "--print"], capture_output=True, text=True, cwd=REPO)
    assert printed.stdout == SCRIPT
    again = subprocess.run([sys.executable, "-m", "part2_manual_oci", "shell", "--out", str(tmp_path / "oci")],
                           capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 1 and again.stderr == f"python -m part2_manual_oci shell: error: {tmp_path / 'oci'}: not a new or empty directory\n"


def test_the_chapter_page_shows_the_script_as_it_is():
    page = (REPO / "part2_manual_oci" / "README.md").read_text()
    block = page.split("```bash\n", 1)[1].split("```", 1)[0]
    assert block == SCRIPT
