"""Chapter 5: run a child in each namespace and compare what it sees with the host.

    python -m part5_namespaces [uts|pid|mount|net|ipc|user|cgroup|all]
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import sys

from part1_overview import Narrator, lab_main, run_cli

from .demos import DEMO_USER, DEMOS, Comparison

WHAT = {
    "uts": ("UTS namespace", "the hostname and NIS domain name (uname -n)."),
    "pid": ("PID namespace", "process ids: the first process in it is PID 1 and sees only its descendants."),
    "mount": ("mount namespace", "the mount table: mounts made inside stay inside."),
    "net": ("network namespace", "interfaces, routes, firewall rules, sockets, /proc/net."),
    "ipc": ("IPC namespace", "System V message queues, semaphores, shared memory; POSIX message queues."),
    "user": ("user namespace", "uids, gids and capabilities: root inside can be an ordinary user outside."),
    "cgroup": ("cgroup namespace", "the view of the cgroup tree: the current group becomes '/'."),
}

ORDERING = """\
spawn() follows the kernel's ordering rules:
- fork first, then unshare(2) in the child, in one call: the kernel creates the user namespace
  before the others (which it then owns), and the child is single-threaded right after fork
  (unshare(CLONE_NEWUSER) refuses a multi-threaded process);
- the parent writes /proc/PID/uid_map and gid_map (after 'deny' to /proc/PID/setgroups for an
  unprivileged single mapping), then releases the child through a pipe;
- CLONE_NEWPID applies to the children of the caller, so the child forks again: the grandchild
  is PID 1 and the middle process forwards signals and passes its exit status on."""


def show(n: Narrator, name: str, result: Comparison) -> None:
    n.command(result.command)
    n.table(result.rows, result.headers)
    if result.notes:
        n.say("\n".join(result.notes))  # one paragraph: a terminal fills the notes' lines again
    verdict = "yes: the namespace inode differs" if result.isolated else "NO: same namespace inode"
    n.fact("isolated", verdict)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    parser = argparse.ArgumentParser(prog="python -m part5_namespaces", description=__doc__.splitlines()[0])
    parser.add_argument("namespace", nargs="?", default="all", choices=[*DEMOS, "all"])
    args = parser.parse_args(argv)
    names = list(DEMOS) if args.namespace == "all" else [args.namespace]

    n = Narrator()
    n.title("Part 5: Linux namespaces")
    n.fact("kernel", platform.release())
    n.fact("running as", f"uid {os.geteuid()}")
    n.say(ORDERING)
    failures = 0
    for name in names:
        title, isolates = WHAT[name]
        n.step(f"{title}: isolates {isolates}")
        if name == "user":
            try:
                pwd.getpwnam(DEMO_USER)
            except KeyError:
                n.say(
                    f"User {DEMO_USER} does not exist: creating it (useradd, no home, no login shell) and\n"
                    f"delegating it 65536 subordinate ids in /etc/subuid and /etc/subgid (usermod)."
                )
            n.say(f"The demonstration drops from root to {DEMO_USER} first, then unshares the user namespace.")
        try:
            result = DEMOS[name]()
        except BrokenPipeError:
            raise  # the reader went away: run_cli ends quietly
        except OSError as e:  # NamespaceError and the syscall errors: one line, naming the step
            n.warn(f"{name}: {e}")
            failures += 1
            continue
        show(n, name, result)
    if failures:
        n.warn(f"{failures} demonstration(s) failed (namespaces need root, or a user namespace)")
        return 1
    n.done()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
