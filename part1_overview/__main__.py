"""``python -m part1_overview``: the map of the course, the pipeline, and the host check.

``--json`` prints the same facts as one JSON document for scripts; ``lab start DIR`` and
``lab check DIR`` are the chapter's quiz (see labkit.py). Exit code 0, also when a
check fails (the report says what will not work); 141 when the reader of stdout went away.
"""

from __future__ import annotations

import argparse
import json
import sys

from .course import PARTS, PIPELINE
from .host import HostReport, doctor, host_checks
from .labkit import lab_main
from .narrate import Narrator, run_cli


def report_json() -> dict:
    """Everything the tour shows, as JSON: the course, the pipeline, the host and its checks."""
    report = doctor()
    return {
        "course": [p.to_json() for p in PARTS],
        "pipeline": [s.to_json() for s in PIPELINE],
        "host": report.to_json(),
        "checks": [c.to_json() for c in host_checks(report)],
    }


def tour(n: Narrator, report: HostReport | None = None) -> int:
    """Narrate the tour (of this host, or of ``report``); returns the number of host checks
    that failed."""
    n.title("Part 1: the tour")
    n.step("what a container image is")
    n.say(
        "An image is a tar archive plus JSON: layers are tar streams of files, the config says\n"
        "what to run (Cmd, Env, WorkingDir) and lists the layers' diff_ids, the manifest points\n"
        "at the config and the layer blobs, and index.json names the manifests. Every piece is a\n"
        "blob named by the sha256 of its bytes. Building one without RUN is file work (parts 2-4);\n"
        "RUN needs a container: namespaces, a runtime and a union mount (parts 5-7)."
    )

    n.step("the map of the course")
    rows = []
    for p in PARTS:
        uses = "any part" if p.uses == ("*",) else ", ".join(u.split("_")[0] for u in p.uses) or "-"
        rows.append((p.number, p.package, p.concept, uses))
    n.table(rows, ("part", "package", "what it teaches", "builds on"))
    n.say("Each chapter's command, as it runs today:")
    for p in PARTS:
        n.command(p.command)
        if p.later:
            n.say(f"  later: {p.later}")

    n.step("from Dockerfile to image")
    n.table(((s.what, s.how, ", ".join(s.parts)) for s in PIPELINE), ("stage", "what happens", "parts"))

    n.step("what this host can do")
    report = report if report is not None else doctor()
    checks = host_checks(report)
    n.fact("kernel", f"{report.kernel} ({report.machine})")
    n.table(((c.name, "yes" if c.ok else ("-" if c.optional else "NO"), c.needed_by, c.detail) for c in checks),
            ("check", "ok", "needed by", "detail"))
    missing = [c for c in checks if c.failed]
    for c in missing:
        n.warn(f"no {c.name} here: {c.if_missing}")
    for c in checks:
        if c.optional and not c.ok:
            n.say(f"{c.name} {c.if_missing}")
    if not missing:
        n.say("Everything the course uses is here: every part runs for real on this host.")
    n.step("where to start")
    n.say("Read part1_overview/README.md, then run part 2 to build your first image by hand:")
    n.command("python -m part2_manual_oci --out /tmp/busybox-oci")
    n.done("tour finished" if not missing else f"tour finished; {len(missing)} check(s) failed")
    return len(missing)


def main(argv: list[str] | None = None) -> int:
    """The tour (or ``--json``). Exit code 0 even when a check fails: the report says what is
    missing; scripts read the ``ok`` fields of ``--json``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    parser = argparse.ArgumentParser(prog="python -m part1_overview", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the course, pipeline and host check as JSON")
    parser.add_argument("--plain", action="store_true", help="plain text even on a terminal")
    args = parser.parse_args(argv)
    if args.json:
        json.dump(report_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    tour(Narrator(plain=True if args.plain else None))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
