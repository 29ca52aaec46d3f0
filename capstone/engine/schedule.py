"""Stages that do not need each other are built at the same time, as BuildKit builds them.

::

    FROM alpine AS deps      FROM alpine AS assets        deps and assets: independent,
    RUN fetch ...            RUN build-css ...            built at the same time
    FROM alpine
    COPY --from=deps ...     COPY --from=assets ...       waits for both

A stage may start once every stage it needs (its ``FROM``, ``COPY --from``, ``RUN --mount
from=``: the stage graph's edges) is built. When several can run, the builder forks a child process
for each (up to one stage per core, at least two) and watches them: a stage's RUN steps hold
signal handlers, mounts and a container of their own, which want a process, not a thread. A
stage that is the only one able to run (the last stage, waiting for all the others) is built
by the builder itself, since nothing could run beside it. A child builds its stage exactly as the builder would, in a
scratch directory of its own, and leaves the stage's image in the store (its layers, its
cache entries); it hands back the image's manifest digest, the stage's key and variables,
its step results, the file digests it computed and what it took from and gave to the shared
build cache (``--cache-from`` hits, ``--cache-to`` entries), through a file the parent reads
once the child has exited. The first failure ends the build: the other stages are stopped (SIGTERM:
each stops its RUN and cleans up) and the failure is raised as if its stage had been built
here. A child dies with the builder (``PR_SET_PDEATHSIG``).

Their output is kept apart: while stages run at the same time every progress line and every
line a RUN step prints starts with its stage (``[2/3]``, as BuildKit's plain progress prefixes
each line with its step). A build whose stages form one chain runs as before, in this process,
with the RUN output as it comes.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import CapstoneError, DockerfileError
from .errors import BuildError
from .plan import BuildPlan, PlannedStage

#: prctl(2): the signal this process gets when its parent dies
PR_SET_PDEATHSIG = 1


def needs(plan: BuildPlan) -> dict[int, frozenset[int]]:
    """For each planned stage (by index), the planned stages it needs, directly or not."""
    planned = {s.index for s in plan.stages}
    direct = {s.index: frozenset(plan.graph.nodes[s.index].dependencies) & planned for s in plan.stages}
    closure: dict[int, frozenset[int]] = {}
    for s in plan.stages:  # dependencies first: each closure is made from finished ones
        found = set(direct[s.index])
        for d in direct[s.index]:
            found |= closure.get(d, frozenset())
        closure[s.index] = frozenset(found)
    return closure


def concurrent(plan: BuildPlan) -> bool:
    """Whether two planned stages need neither each other: then stages run at the same time."""
    closure = needs(plan)
    indexes = [s.index for s in plan.stages]
    return any(b not in closure[a] and a not in closure[b]
               for i, a in enumerate(indexes) for b in indexes[i + 1:])


def build_stages(builder, build_stage: Callable[[int, PlannedStage], None]) -> None:
    """Build every planned stage of ``builder`` (an executor ``Builder``) with
    ``build_stage(position, planned)``: one after the other when they form a chain, else as
    many at once as the graph and the cores allow."""
    plan = builder.plan
    positions = {s.index: pos for pos, s in enumerate(plan.stages, 1)}
    if not concurrent(plan):
        for s in plan.stages:
            build_stage(positions[s.index], s)
        return
    _Scheduler(builder, build_stage, positions).run()


class _Child:
    def __init__(self, pid: int, planned: PlannedStage, result: Path, lines: int) -> None:
        self.pid = pid
        self.planned = planned
        self.result = result
        # a descriptor that becomes readable when the child ends: waiting for any of the
        # stage children must not reap the builder's other children (its snapshot copies)
        self.pidfd = os.pidfd_open(pid)
        #: the child's progress lines (JSON strings, one a line), for the builder's log
        self.lines = lines
        self.pending = b""


class _Scheduler:
    def __init__(self, builder, build_stage, positions: dict[int, int]) -> None:
        self.builder = builder
        self.build_stage = build_stage
        self.positions = positions
        self.closure = {i: frozenset(builder.plan.graph.nodes[i].dependencies) & set(positions)
                        for i in positions}
        self.pending = list(builder.plan.stages)
        self.done: set[int] = set()
        self.children: dict[int, _Child] = {}
        self.limit = max(2, os.cpu_count() or 1)
        builder.progress.parallel = True

    def run(self) -> None:
        try:
            while self.pending or self.children:
                ready = [s for s in self.pending if self.closure[s.index] <= self.done]
                if len(ready) == 1 and not self.children:
                    # alone: every other stage waits for this one, so nothing could run beside it
                    mine = ready[0]
                    self.pending.remove(mine)
                    with _Prefixed(self.builder, self.positions[mine.index]):
                        self.build_stage(self.positions[mine.index], mine)
                    self.done.add(mine.index)
                    continue
                for s in ready[:max(0, self.limit - len(self.children))]:
                    self._fork(s)
                self._collect(block=True)  # this process only watches: the first failure ends the build at once
        except BaseException:
            self._stop_all()
            raise
        finally:
            self.builder.progress.parallel = False
        self.builder.steps.sort(key=lambda s: s.number)

    # -- children ------------------------------------------------------------------------------
    def _fork(self, planned: PlannedStage) -> None:
        b = self.builder
        scratch = b.scratch / f"stage-{planned.index}"
        result = b.scratch / f"stage-{planned.index}.result"
        # the snapshots this process is making are its children, which a stage child could not
        # wait for: they are finished (and adopted) first, as the stage would need them anyway
        b._reap_snapshots()
        for stream in (b.run_output, sys.stdout, sys.stderr):  # buffered output would be written twice
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()
        lines_r, lines_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: build the stage, leave the result, never return
            code = 1
            try:
                os.close(lines_r)
                if b.progress.log is not None:  # the builder's log may be any callable: send it the lines
                    b.progress.log = functools.partial(_send_line, lines_w)
                _child_setup(parent)
                scratch.mkdir()
                b.scratch = scratch
                b._counter = 0
                first = len(b.steps)
                b.digests.spill_dir, b.digests.runs = scratch, []  # the file digests this stage computes
                shared_before = b.shared.forked()
                pos = self.positions[planned.index]
                with _Prefixed(b, pos):
                    self.build_stage(pos, planned)
                stage = b.stages[planned.index]
                done = stage.current.committed  # a cache hit's image is stored as it is
                desc = done if done is not None else b.store.commit(stage.image, [])  # for the parent to load
                b._reap_snapshots()
                b.digests.spill()  # the builder merges the runs into the table it leaves
                outcome = {"digest": desc.digest, "key": stage.key, "variables": stage.variables,
                           "label": stage.base_label, "steps": b.steps[first:],
                           "digests": [str(p) for p in b.digests.runs], "shared": b.shared.since(shared_before)}
                code = 0
            except BaseException as e:  # noqa: BLE001 - every failure goes to the parent
                outcome = {"error": _portable(e)}
            try:
                import pickle  # only when stages run at once: a chain of stages never loads it

                tmp = result.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(outcome))
                os.rename(tmp, result)
            finally:
                os._exit(code)
        os.close(lines_w)
        self.pending.remove(planned)
        self.children[pid] = _Child(pid, planned, result, lines_r)

    def _collect(self, *, block: bool) -> None:
        """Take in the children that have ended (``block``: wait for one at least)."""
        import select

        while self.children:
            poll = select.poll()
            for child in self.children.values():
                poll.register(child.pidfd, select.POLLIN)
                poll.register(child.lines, select.POLLIN)
            ready = {fd for fd, _ in poll.poll(None if block else 0)}
            if not ready:
                return
            for child in list(self.children.values()):
                if child.lines in ready:
                    self._relay_lines(child)
                if child.pidfd in ready:
                    _, status = os.waitpid(child.pid, 0)
                    while self._relay_lines(child):
                        pass
                    os.close(child.pidfd)
                    os.close(child.lines)
                    del self.children[child.pid]
                    self._adopt(child, status)
                    block = False  # a stage ended: the caller may start others

    def _relay_lines(self, child: _Child) -> bool:
        """Pass the child's progress lines that have come to the builder's log (whether any came)."""
        import json

        data = os.read(child.lines, 65536)
        if not data:
            return False
        *whole, child.pending = (child.pending + data).split(b"\n")
        log = self.builder.progress.log
        for line in whole:
            if log is not None:
                log(json.loads(line))
        return True

    def _adopt(self, child: _Child, status: int) -> None:
        import pickle

        from .executor import _Stage
        from .stepimage import StoredImage

        b = self.builder
        try:
            outcome = pickle.loads(child.result.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError):
            outcome = {"error": ("BuildError", f"stage {child.planned.name}: the process building it ended "
                                 f"({_status_text(status)}) without a result", None)}
        if "error" in outcome:
            raise _restore(outcome["error"])
        if b.shared.sources:  # a --cache-from hit's layers may be still to come (SharedCache.complete)
            image = b.store.load_manifest(outcome["digest"], whole=False)
        else:
            image = StoredImage.open(b.store, outcome["digest"], b._layers_seen)
        stage = _Stage(child.planned, image, outcome["variables"], outcome["key"], outcome["label"])
        stage.digest = outcome["digest"]
        b.stages[child.planned.index] = stage
        b.steps.extend(outcome["steps"])
        b.digests.merge(outcome["digests"])
        b.shared.merge(outcome["shared"])
        self.done.add(child.planned.index)

    def _stop_all(self) -> None:
        import signal

        for child in self.children.values():
            signal.pidfd_send_signal(child.pidfd, signal.SIGTERM)
        for child in self.children.values():
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            os.close(child.pidfd)
        self.children.clear()


def _send_line(fd: int, line: str) -> None:
    import json

    _write_all(fd, json.dumps(line).encode() + b"\n")


def die_with_parent(parent: int) -> bool:
    """In a child the builder forked: SIGTERM when ``parent`` dies, however it dies (a child
    left running would hold the build's scratch lease); whether the parent is alive still."""
    import ctypes  # in the child only
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == parent


def _child_setup(parent: int) -> None:
    """A stage child ends with the builder, and stops cleanly on SIGTERM (as on ^C)."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if not die_with_parent(parent):
        raise KeyboardInterrupt  # the builder died before the line above


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _portable(e: BaseException) -> tuple:
    """An exception as plain values (custom exception classes do not all unpickle)."""
    if isinstance(e, DockerfileError):
        return ("DockerfileError", e.message, (type(e).__module__, type(e).__qualname__, e.file, e.line, e.end_line))
    if isinstance(e, KeyboardInterrupt):
        return ("KeyboardInterrupt", "", None)
    if isinstance(e, CapstoneError):
        return ("CapstoneError", str(e), (type(e).__module__, type(e).__qualname__))
    return ("BuildError", f"{type(e).__name__}: {e}", None)


def _restore(data: tuple) -> BaseException:
    kind, message, extra = data
    if kind == "KeyboardInterrupt":
        return KeyboardInterrupt()
    if kind == "DockerfileError":
        module, name, file, line, end_line = extra
        cls = _find_class(module, name, DockerfileError)
        try:
            return cls(message, file=file, line=line, end_line=end_line)
        except TypeError:
            return DockerfileError(message, file=file, line=line, end_line=end_line)
    if kind == "CapstoneError":
        cls = _find_class(*extra, CapstoneError)
        try:
            return cls(message)
        except TypeError:
            return BuildError(message)
    return BuildError(message)


def _find_class(module: str, name: str, base: type) -> type:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, base) else base


class _Prefixed:
    """While a stage runs alongside others: its progress lines and the output of its RUN
    steps start with ``[POS/N] `` (a pipe, and a thread that prefixes each line)."""

    def __init__(self, builder, pos: int) -> None:
        self.builder = builder
        self.pos = pos

    def __enter__(self) -> "_Prefixed":
        b = self.builder
        self.saved = (b.run_output, b.progress.stage_pos)
        b.progress.stage_pos = self.pos
        target = b.run_output
        self.out_fd = target if isinstance(target, int) else target.fileno() if target is not None else 2
        self.prefix = f"[{self.pos}/{b.progress.stages}] ".encode()
        self.read_fd, self.write_fd = os.pipe()
        os.set_inheritable(self.write_fd, False)
        import threading  # stages at the same time only

        self.thread = threading.Thread(target=self._relay, name=f"stage-{self.pos}-output", daemon=True)
        self.thread.start()
        b.run_output = self.write_fd
        return self

    def _relay(self) -> None:
        pending = b""
        while True:
            try:
                data = os.read(self.read_fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            if lines:
                _write_all(self.out_fd, b"".join(self.prefix + line + b"\n" for line in lines))
        if pending:
            _write_all(self.out_fd, self.prefix + pending + b"\n")
        os.close(self.read_fd)

    def __exit__(self, *exc) -> None:
        b = self.builder
        b.run_output, b.progress.stage_pos = self.saved
        os.close(self.write_fd)
        self.thread.join()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError:
            return  # the reader went away: the build goes on without its output
        view = view[n:]


__all__ = ["build_stages", "concurrent", "die_with_parent", "needs"]
