"""``python -m part7_union``: a union of two layers, copy-up, a whiteout, the resulting layer.

``python -m part7_union cbt`` runs the blog's ``cbt run`` (with the cbt command) and builds its
layer folders into an image; ``lab start DIR`` / ``lab check DIR`` are the chapter's lab.

Run by an ordinary user, the demonstration runs as root of a user namespace of the user's own
(part 5), where overlayfs mounts with ``userxattr``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from part1_overview import Narrator, lab_main, run_cli
from part4_tar import LayerError
from part5_namespaces import in_user_namespace, run_in_user_namespace

from .chapter import run_chapter
from .errors import UnionError


def cbt_main(argv: list[str]) -> int:
    """``cbt [--workdir DIR]``: the blog's ``cbt run``, for real, through the cbt command."""
    from .cbtrun import run_cbt_story

    parser = argparse.ArgumentParser(prog="python -m part7_union cbt", description="cbt run, the end of the cbt story")
    parser.add_argument("--workdir", type=Path, help="an empty (or new) directory; kept afterwards")
    args = parser.parse_args(argv)
    n = Narrator()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="part7-cbt-"))
    if args.workdir and work.exists() and any(work.iterdir()):
        n.warn(f"{work}: not empty; give an empty or new directory")
        return 2
    work.mkdir(parents=True, exist_ok=True)
    try:
        ok = run_cbt_story(n, work)
    except BrokenPipeError:
        raise
    except (UnionError, LayerError, OSError) as e:
        n.warn(f"failed: {e}")
        return 1
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    if argv[:1] == ["cbt"]:
        return cbt_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m part7_union", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="an empty (or new) directory for the demonstration; kept afterwards")
    args = parser.parse_args(argv)
    n = Narrator()
    work = args.workdir
    keep = work is not None
    if work is None:
        work = Path(tempfile.mkdtemp(prefix="part7-chapter-"))
    elif work.exists() and any(work.iterdir()):
        n.warn(f"{work}: not empty; give an empty or new directory")
        return 2
    work.mkdir(parents=True, exist_ok=True)
    try:
        if os.geteuid() != 0 and not in_user_namespace():
            # mounts need root: that of a user namespace of our own will do (kernel 5.11+)
            code = run_in_user_namespace(lambda: run_cli(lambda _argv: _demonstrate(n, work, keep)))
        else:
            code = _demonstrate(n, work, keep)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if keep and code == 0:
        n.say(f"Everything is left in {work} (lowers/, upper/, changes.tar.gz, applied/).")
    return code


def _demonstrate(n: Narrator, work: Path, keep: bool) -> int:
    try:
        ok = run_chapter(n, work)
    except BrokenPipeError:
        raise  # the reader went away: run_cli ends quietly
    except (UnionError, LayerError, OSError) as e:
        n.warn(f"failed: {e}")
        return 1
    finally:
        if not keep:
            # here, not only in the caller: overlayfs leaves its work/work dir mode 0, which
            # only root (of this user namespace, when rootless) may still enter to delete
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
