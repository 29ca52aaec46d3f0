"""Chapter script: ``python -m part6_runtime`` runs the narrated demonstration; ``python -m
part6_runtime pivot`` shows pivot_root with a put_old directory beside pivot_root(".", ".");
``python -m part6_runtime run ROOTFS [options] -- CMD...`` and
``python -m part6_runtime run --bundle DIR`` run a container."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile

from part1_overview import Narrator, lab_main, replace, run_cli
from part5_namespaces import UserNamespaceMapping, in_user_namespace, rootless_mapping

from . import ContainerSpec, Limits, Mount, RuntimeSetupError, load_bundle, make_busybox_rootfs, parse_size, run
from .cgroups import delegation_problem
from .errors import ContainerError
from .setup import describe_steps


@functools.lru_cache(maxsize=1)
def user_namespace() -> UserNamespaceMapping | None:
    """None for root; for an ordinary user the user namespace every container gets (the
    full subordinate range through newuidmap, else the single mapping)."""
    if os.geteuid() == 0 or in_user_namespace():
        return None
    return rootless_mapping()


def rootless(spec: ContainerSpec) -> ContainerSpec:
    """``spec`` with the caller's user namespace when the caller is not root (a spec that
    maps ids itself is left alone)."""
    userns = user_namespace()
    if userns is None or spec.uid_maps:
        return spec
    return replace(spec, uid_maps=userns.uid_maps, gid_maps=userns.gid_maps)


def _run_captured(spec: ContainerSpec, on_step=None) -> tuple[int, str]:
    spec = rootless(spec)
    with tempfile.TemporaryFile("w+") as out:
        code = run(spec, stdin=os.open(os.devnull, os.O_RDONLY), stdout=out, stderr=out, on_step=on_step)
        out.seek(0)
        return code, out.read()


def demo(n: Narrator) -> int:
    n.title("Part 6: a mini container runtime")
    userns = user_namespace()
    if userns is not None:
        n.fact("running as", f"uid {os.geteuid()} ({userns.user}), not root")
        n.say("Every container gets a user namespace of its own (spawn() adds CLONE_NEWUSER): root inside,\n"
              f"{userns.user} outside" + (", with the subordinate range newuidmap maps:" if userns.full else ":"))
        n.fact("uid_map inside", userns.describe())
        if not userns.full:
            n.warn(userns.warning())
    with tempfile.TemporaryDirectory(prefix="part6-demo-") as tmp:
        n.step("make a root filesystem from the static busybox binary")
        rootfs = make_busybox_rootfs(os.path.join(tmp, "rootfs"))
        n.fact("rootfs", rootfs)
        n.fact("applets linked to /bin/busybox", sum(1 for _ in (rootfs / "bin").iterdir()) - 1)
        n.command(f"python -m part6_runtime run {rootfs} -- sh")

        n.step("the container's setup: an ordered tuple of named steps")
        n.table(describe_steps(), headers=["step", "what it does"])

        n.step("run `echo $$; hostname` and watch each step go by")
        seen: list[str] = []
        spec = ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", "echo PID $$; hostname"), hostname="demo")
        code, out = _run_captured(spec, on_step=seen.append)
        n.say("=> " + " => ".join(seen))
        n.output(out)
        n.fact("exit code", code)

        n.step("what the container sees")
        probes = [
            # the shell expands the glob itself: no other process (ls, grep) runs to be seen
            ("its processes (/proc)", "cd /proc && echo [0-9]*"),
            ("network interfaces", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; ip link show lo | head -1"),
            ("capabilities", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"),
            ("no_new_privs and seccomp", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"),
            ("a masked path", "wc -c < /proc/timer_list"),
            ("read-only /proc/sys", "echo 1 > /proc/sys/kernel/hostname"),
            ("a node for the host's disk", f"mknod /dev/disk b {os.major(os.stat(rootfs).st_dev)} {os.minor(os.stat(rootfs).st_dev)}; head -c 1 /dev/disk"),
            ("PID 1's environment", "tr '\\0' ' ' < /proc/1/environ; ls /proc/1/fd | tr '\\n' ' '"),
            ("mounts", "cut -d' ' -f5,9 /proc/self/mountinfo"),
        ]
        for label, command in probes:
            code, out = _run_captured(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", command)))
            n.say(f"{label}:")
            n.command(command)
            n.output(out or "(no output)")

        n.step("limits through cgroups: 32 MiB of memory, 10 processes")
        problem = delegation_problem(Limits(memory=32 << 20, pids=10))
        if problem is not None:
            n.warn(f"skipped: {problem}")
        else:
            _limits(n, rootfs)

        n.step("a user from the image's /etc/passwd, and its capabilities")
        if userns is not None and userns.ids <= 1000:
            n.warn(f"skipped: alice (uid 1000) is not mapped by {userns.describe()}")
        else:
            code, out = _run_captured(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", "id; grep CapEff /proc/self/status; pwd"), user="alice", cwd="/home/alice"))
            n.output(out)

        n.step("exit codes pass through; a failed step is named")
        code, _ = _run_captured(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", "exit 7")))
        n.fact("sh -c 'exit 7'", code)
        try:
            _run_captured(ContainerSpec(rootfs=str(rootfs), args=("no-such-command",)))
        except RuntimeSetupError as e:
            n.fact("no-such-command", e)
    n.done()
    return 0


def pivot_demo(n: Narrator) -> int:
    """The two forms of pivot_root, each in a mount namespace of its own, stage by stage."""
    from .pivots import PUT_OLD, compare_pivot_forms

    n.title("Part 6: pivot_root two ways")
    with tempfile.TemporaryDirectory(prefix="part6-pivot-") as tmp:
        rootfs = make_busybox_rootfs(os.path.join(tmp, "rootfs"))
        n.step("a busybox root filesystem, bound on itself in a new mount namespace")
        n.fact("rootfs", rootfs)
        seen = compare_pivot_forms(rootfs)
        blog, dot = seen["put_old"], seen['"." and "."']
        n.step(f"the blog's way: pivot_root(rootfs, rootfs/{PUT_OLD})")
        n.command(f"mkdir rootfs/{PUT_OLD}; pivot_root rootfs rootfs/{PUT_OLD}; cd /")
        n.fact("ls /", " ".join(blog["after pivot_root: /"]))
        n.fact(f"ls /{PUT_OLD}", " ".join(blog[f"after pivot_root: /{PUT_OLD}"]) + " ...  (the host's root)")
        n.fact("mounts in this namespace", blog["after pivot_root: mounts"])
        n.command(f"umount -l /{PUT_OLD}; rmdir /{PUT_OLD}")
        n.fact("ls /", " ".join(blog["after the unmount: /"]))
        n.fact("mounts", f"{blog['after the unmount: mounts']} (the rootfs, and the /proc mounted to count them)")
        n.step('runc\'s way (and setup.pivot\'s): pivot_root(".", ".")')
        n.command('cd rootfs; pivot_root . .')
        n.fact("ls /", " ".join(dot["after pivot_root: /"]))
        n.fact("mounts at /", f"{dot['after pivot_root: mounts at /']} (the old root is stacked on top of the new one)")
        n.fact("mounts in this namespace", dot["after pivot_root: mounts"])
        n.command("cd <the old root, by a descriptor opened before>; mount --make-rslave .; umount -l .; cd /")
        n.fact("mounts at /", dot["after the unmount: mounts at /"])
        n.fact("mounts", dot["after the unmount: mounts"])
        n.fact("rootfs afterwards", " ".join(sorted(os.listdir(rootfs))))
    n.say(f"Both end the same: the rootfs is /, the host is gone. The blog's way needs a directory in\n"
          f"the image for a while ({PUT_OLD}): impossible in a read-only rootfs, and it must be removed\n"
          "again. pivot_root(\".\", \".\") needs none: the old root goes on top of the new one and is\n"
          "unmounted from its own side (runc does so since 2019).")
    n.done()
    return 0


def _limits(n: Narrator, rootfs) -> None:
    """The memory and pids limits, each shown with a command that runs into it."""
    hog = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'
    code, out = _run_captured(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", hog), limits=Limits(memory=32 << 20)))
    n.command(f"sh -c '{hog}'   # --memory 32m")
    n.fact("exit code (128 + SIGKILL from the OOM killer)", code)
    bomb = "for i in $(seq 50); do sleep 60 & done"
    code, out = _run_captured(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", bomb), limits=Limits(pids=10)))
    n.command(f"sh -c '{bomb}'   # --pids 10")
    n.output(out)
    n.fact("exit code", code)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m part6_runtime", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command")
    sub.add_parser("pivot", help="pivot_root two ways: the blog's put_old directory, and pivot_root(\".\", \".\")")
    r = sub.add_parser("run", help="run a container from a rootfs directory or an OCI bundle")
    r.add_argument("--bundle", metavar="DIR", help="an OCI runtime bundle (config.json + rootfs)")
    r.add_argument("--hostname", default="container")
    r.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("-w", "--workdir", default="/")
    r.add_argument("-u", "--user", default="0", metavar="USER[:GROUP]")
    r.add_argument("--network", choices=("none", "host", "private"), default="none")
    r.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 64m")
    r.add_argument("--pids", type=int, metavar="N", help="at most N processes")
    r.add_argument("--cpus", type=float, metavar="N", help="CPU time, in CPUs")
    r.add_argument("--read-only", action="store_true", help="mount the rootfs read-only")
    r.add_argument("--init", action="store_true", help="a reaper as PID 1 (like docker run --init)")
    r.add_argument("-t", "--tty", action="store_true", default=None, help="allocate a terminal (default: when stdin is one)")
    r.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]")
    r.add_argument("--tmpfs", action="append", default=[], metavar="DST")
    r.add_argument("rootfs", nargs="?")
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    return p


def _spec_from_args(a: argparse.Namespace) -> ContainerSpec:
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not a.rootfs or not cmd:
        raise ContainerError("usage: python -m part6_runtime run ROOTFS [options] -- CMD...")
    terminal = a.tty if a.tty is not None else sys.stdin.isatty()
    env = [f"HOSTNAME={a.hostname}"] + (["TERM=xterm"] if terminal else []) + a.env
    mounts = []
    for v in a.volume:
        parts = v.split(":")
        if len(parts) < 2:
            raise ContainerError(f"--volume {v}: expected SRC:DST[:ro]")
        mounts.append(Mount(parts[1], "bind", os.path.abspath(parts[0]), ("rbind",) + tuple(parts[2:])))
    mounts += [Mount(d, "tmpfs", "tmpfs", ("nosuid", "nodev")) for d in a.tmpfs]
    return ContainerSpec(
        rootfs=a.rootfs,
        args=tuple(cmd),
        env=tuple(env),
        cwd=a.workdir,
        user=a.user,
        hostname=a.hostname,
        mounts=tuple(mounts),
        network=a.network,
        limits=Limits(memory=parse_size(a.memory) if a.memory else None, pids=a.pids, cpus=a.cpus),
        readonly_rootfs=a.read_only,
        init=a.init,
        terminal=terminal,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    args = _parser().parse_args(argv)
    if args.command is None:
        return demo(Narrator())
    if args.command == "pivot":
        return pivot_demo(Narrator())
    err = Narrator(sys.stderr, plain=True)
    try:
        if args.bundle:
            spec, warnings = load_bundle(args.bundle)
            for w in warnings:
                err.warn(w)
            if spec.terminal and not sys.stdin.isatty():
                err.warn("process.terminal is true but stdin is not a terminal: running without one")
                spec = replace(spec, terminal=False)
        else:
            spec = _spec_from_args(args)
        userns = user_namespace()
        if userns is not None and not spec.uid_maps:
            if not userns.full:
                err.warn(f"part6_runtime: {userns.warning()}")
            spec = rootless(spec)
        problem = delegation_problem(spec.limits)
        if problem is not None:
            err.warn(f"part6_runtime: note: {problem}: running without --memory, --pids and --cpus")
            spec = replace(spec, limits=Limits(rlimits=spec.limits.rlimits))
        return run(spec)
    except RuntimeSetupError as e:
        err.warn(f"part6_runtime: {e}")
        return e.exit_code  # as docker run: 127 not found, 126 not executable, 125 setup
    except ContainerError as e:
        err.warn(f"part6_runtime: {e}")
        return 125


if __name__ == "__main__":
    sys.exit(run_cli(main))
