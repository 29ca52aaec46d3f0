"""Chapter 5: run a child in each namespace and compare what it sees with the host.

    python -m part5_namespaces [uts|pid|mount|net|ipc|user|cgroup|all]
    python -m part5_namespaces reexec [CMD...]     # the blog's re-exec pattern (default: hostname)
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import socket
import sys

from part1_overview import Narrator, lab_main, run_cli

from .demos import DEMO_USER, DEMOS, Comparison, demo_user_namespace

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


def reexec_demo(n: Narrator, cmd: list[str]) -> int:
    """The blog's re-exec pattern beside part 5's fork, and why Go needs the detour."""
    from .reexec import INSIDE_HOSTNAME, reexec_argv, run_reexec, self_exe, startup_costs, threads_and_unshare

    n.title("Part 5: the re-exec pattern")
    n.step("/proc/self/exe is the program this process runs")
    n.fact("readlink /proc/self/exe", self_exe())
    n.step(f"run {' '.join(cmd)}: the child re-executes itself in a new UTS namespace")
    n.say("The blog's Go program asks clone(2) for a new UTS namespace and, in that child, execs\n"
          "/proc/self/exe with the hidden subcommand `ns`: a fresh copy of itself, which sets the\n"
          f"hostname to {INSIDE_HOSTNAME} and execs the command. The same, from Python:")
    n.command(["/proc/self/exe"] + reexec_argv(cmd)[1:])
    code, output = run_reexec(cmd)
    n.output(output or "(no output)")
    n.fact("exit code", code)
    n.fact("the host's hostname, unchanged", socket.gethostname())
    n.step("why Go needs it: unshare(CLONE_NEWUSER) and threads")
    for threads, outcome in threads_and_unshare().items():
        n.fact(f"a process with {threads} thread{'s' if threads > 1 else ''}: unshare(CLONE_NEWUSER)", outcome)
    n.say("A Go program runs several threads from its first instruction (the scheduler, the garbage\n"
          "collector): the kernel refuses it a new user namespace (EINVAL), and fork() would copy only\n"
          "one thread of a runtime that needs them all. So Go lets clone(2) make the namespaces and runs\n"
          "the setup in a freshly executed process. A Python process has one thread until it starts\n"
          "one: spawn() forks (the child has one thread) and unshares in the child, as plain Python.")
    n.step("what the detour costs: a fresh interpreter")
    costs = startup_costs()
    for name, seconds in costs.items():
        n.fact(f"{name}, then exec true (best of 5)", f"{seconds * 1000:.0f} ms")
    n.say("A fresh program has none of its parent's memory, descriptors or environment: that is why a\n"
          "runtime re-executes a small init as PID 1 even where it could fork.")
    n.done()
    return 0 if code == 0 else 1


def reexec_main(argv: list[str]) -> int:
    """``reexec [CMD...]`` (default ``hostname``); ``reexec ns -- CMD`` is the re-executed child."""
    if argv[:1] == ["ns"]:
        from .reexec import ns_exec

        cmd = argv[1:]
        ns_exec(cmd[1:] if cmd[:1] == ["--"] else cmd)
    cmd = argv[1:] if argv[:1] == ["--"] else argv
    try:
        return reexec_demo(Narrator(), cmd or ["hostname"])
    except BrokenPipeError:
        raise
    except OSError as e:
        print(f"python -m part5_namespaces reexec: error: {e}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    if argv[:1] == ["reexec"]:
        return reexec_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m part5_namespaces", description=__doc__.splitlines()[0])
    parser.add_argument("namespace", nargs="?", default="all", choices=[*DEMOS, "all"])
    args = parser.parse_args(argv)
    names = list(DEMOS) if args.namespace == "all" else [args.namespace]

    n = Narrator()
    n.title("Part 5: Linux namespaces")
    n.fact("kernel", platform.release())
    n.fact("running as", f"uid {os.geteuid()}")
    userns = demo_user_namespace()
    if userns is not None:
        n.say(
            f"Not root: without CAP_SYS_ADMIN the kernel creates the other namespaces only together with\n"
            f"a user namespace, which then owns them. So every demonstration adds CLONE_NEWUSER, and\n"
            f"the parent maps {userns.user}'s ids into it" + (" with newuidmap/newgidmap (/etc/subuid, /etc/subgid):" if userns.full else ":")
        )
        n.fact("uid_map inside", userns.describe())
        warning = userns.warning()
        if warning:
            n.warn(warning)
    n.say(ORDERING)
    failures = 0
    for name in names:
        title, isolates = WHAT[name]
        n.step(f"{title}: isolates {isolates}")
        if name == "user" and userns is not None:
            n.say(f"The demonstration runs as you ({userns.user}): the single mapping, then the full range if you have one.")
        elif name == "user":
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
        n.warn(f"{failures} demonstration(s) failed")
        return 1
    n.done()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
