"""The typed instruction model: one frozen model (part 1's ``@model``) per Dockerfile instruction.

The parser (``parser.py``) turns text into these values; nothing here parses or expands.
Every value keeps what BuildKit's ``instructions`` package keeps, *raw*: words, flag values,
ENV/LABEL values and heredoc bodies are exactly as written (quotes and ``$vars`` included).
Expansion happens later with the shell-word lexer (``shell.py``), in the build step that needs
it, with the variables in scope at that point (``args.py``).

Every instruction carries

* ``location``: the :class:`SourceRange` of lines it spans (1-based, inclusive; a heredoc body
  belongs to its instruction),
* ``original``: the logical line as the parser saw it (continuations joined, comment lines
  dropped, the leading keyword included), used in messages and history ``created_by``,
* ``flags``: the raw ``--name=value`` words in order, exactly as BuildKit's AST keeps them.

Instructions are grouped into stages by :class:`Dockerfile`: ARGs before the first FROM are the
*meta* (global) args, every FROM opens a :class:`Stage`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from part1_overview import field, model


@model(frozen=True)
class SourceRange:
    """Lines ``start``..``end`` (1-based, inclusive) of the Dockerfile."""

    start: int
    end: int

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


@model(frozen=True)
class Heredoc:
    """A here-document attached to RUN, COPY or ADD (``<<EOF`` ... ``EOF``).

    ``content`` is the body exactly as read: every line with its newline, the terminator line
    excluded, leading tabs kept even for ``<<-`` (BuildKit strips them when it uses the body);
    :attr:`body` gives the text with the ``<<-`` rule applied. ``expand`` is False when any part
    of the delimiter was quoted (``<<"EOF"``, ``<<'EOF'``): then ``$vars`` in the body stay as
    they are. ``fd`` is the file-descriptor prefix (``3<<EOF`` -> 3), 0 when absent.
    """

    name: str
    content: str
    expand: bool = True
    chomp: bool = False
    fd: int = 0

    @property
    def body(self) -> str:
        """The content with leading tabs removed from every line when ``chomp`` (``<<-``)."""
        if not self.chomp:
            return self.content
        return "".join(line.lstrip("\t") for line in self.content.splitlines(keepends=True))


@model(frozen=True)
class KeyValue:
    """One ``key=value`` of ENV or LABEL, raw. ``legacy`` marks the old ``ENV key value`` form."""

    key: str
    value: str
    legacy: bool = False


@model(frozen=True)
class ArgDecl:
    """One name of an ARG instruction: ``NAME`` (``default`` None) or ``NAME=default`` (raw)."""

    name: str
    default: str | None = None


@model(frozen=True)
class CommandLine:
    """The command of RUN, CMD or ENTRYPOINT (and HEALTHCHECK CMD).

    Exec form (a JSON array): ``args`` is the argv and ``shell_form`` is False.
    Shell form: ``args`` is one string, the command text as written, and ``shell_form`` is True:
    the builder prepends the stage's SHELL (default ``["/bin/sh", "-c"]``).
    """

    args: tuple[str, ...]
    shell_form: bool


@model(frozen=True, kw_only=True)
class Instruction:
    """What every instruction has. ``keyword`` is the upper-case instruction name."""

    keyword: ClassVar[str] = ""
    #: the instructions whose arguments the builder expands with the shell-word lexer
    #: (BuildKit's list; RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK are left to the shell)
    expands_variables: ClassVar[bool] = False

    location: SourceRange
    original: str
    flags: tuple[str, ...] = ()

    @property
    def line(self) -> int:
        """The first line of the instruction (the one errors point at)."""
        return self.location.start


# -- stages --------------------------------------------------------------------------------


@model(frozen=True, kw_only=True)
class From(Instruction):
    """``FROM [--platform=P] image [AS name]``: starts a stage.

    ``image`` is raw (may hold ``$ARG``s, which expand with the meta args only). ``stage_name``
    is lower-cased (stage names are case-insensitive) or None. ``platform`` is the raw
    ``--platform`` value or None.
    """

    keyword: ClassVar[str] = "FROM"
    expands_variables: ClassVar[bool] = True

    image: str
    stage_name: str | None = None
    platform: str | None = None


# -- commands ------------------------------------------------------------------------------


@model(frozen=True, kw_only=True)
class Run(Instruction):
    """``RUN [--mount=...]... [--network=N] [--security=S] command``.

    ``mounts`` are the raw ``--mount`` values (CSV: ``type=cache,target=/root/.cache``);
    ``heredocs`` the here-documents of the line, in order (``RUN <<EOF`` runs the first body as
    a script).
    """

    keyword: ClassVar[str] = "RUN"

    command: CommandLine
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[str, ...] = ()
    network: str | None = None
    security: str | None = None


@model(frozen=True, kw_only=True)
class Cmd(Instruction):
    """``CMD ["exe", "arg"]`` / ``CMD command``: the default command of the image."""

    keyword: ClassVar[str] = "CMD"

    command: CommandLine


@model(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    """``ENTRYPOINT ["exe"]`` / ``ENTRYPOINT command``. ``command.args`` is empty for
    ``ENTRYPOINT []`` (which clears the entrypoint)."""

    keyword: ClassVar[str] = "ENTRYPOINT"

    command: CommandLine


@model(frozen=True, kw_only=True)
class Shell(Instruction):
    """``SHELL ["executable", "param"]`` (JSON only): the shell for shell-form commands."""

    keyword: ClassVar[str] = "SHELL"

    shell: tuple[str, ...]


@model(frozen=True, kw_only=True)
class Env(Instruction):
    """``ENV k=v ...`` or legacy ``ENV k v`` (the rest of the line is the value)."""

    keyword: ClassVar[str] = "ENV"
    expands_variables: ClassVar[bool] = True

    pairs: tuple[KeyValue, ...]


@model(frozen=True, kw_only=True)
class Label(Instruction):
    """``LABEL k=v ...`` (same word rules as ENV)."""

    keyword: ClassVar[str] = "LABEL"
    expands_variables: ClassVar[bool] = True

    pairs: tuple[KeyValue, ...]


@model(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """``MAINTAINER name`` (deprecated; sets the image's ``author``)."""

    keyword: ClassVar[str] = "MAINTAINER"

    maintainer: str


@model(frozen=True, kw_only=True)
class Expose(Instruction):
    """``EXPOSE port[/proto] ...`` (raw words, sorted as BuildKit sorts them)."""

    keyword: ClassVar[str] = "EXPOSE"
    expands_variables: ClassVar[bool] = True

    ports: tuple[str, ...]


@model(frozen=True, kw_only=True)
class Copy(Instruction):
    """``COPY [--from=S] [--chown=U:G] [--chmod=M] [--link] [--parents] [--exclude=P]... src... dest``.

    ``sources`` are the path sources (raw words, or the JSON-form strings); ``heredocs`` are the
    here-document sources (``COPY <<EOF /dest``), each written as a file named ``name``.
    ``from_stage`` is the raw ``--from`` value (stage name, stage index, image or context name).
    """

    keyword: ClassVar[str] = "COPY"
    expands_variables: ClassVar[bool] = True

    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[Heredoc, ...] = ()
    from_stage: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    exclude: tuple[str, ...] = ()


@model(frozen=True, kw_only=True)
class Add(Instruction):
    """``ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum=D] [--unpack[=B]]
    [--exclude=P]... src... dest``. ``unpack`` is None when not given (the default depends on
    the source: local archives unpack, URLs do not)."""

    keyword: ClassVar[str] = "ADD"
    expands_variables: ClassVar[bool] = True

    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[Heredoc, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    keep_git_dir: bool = False
    checksum: str | None = None
    unpack: bool | None = None
    exclude: tuple[str, ...] = ()


@model(frozen=True, kw_only=True)
class Volume(Instruction):
    """``VOLUME ["/a", "/b"]`` or ``VOLUME /a /b``."""

    keyword: ClassVar[str] = "VOLUME"
    expands_variables: ClassVar[bool] = True

    volumes: tuple[str, ...]


@model(frozen=True, kw_only=True)
class User(Instruction):
    """``USER user[:group]``."""

    keyword: ClassVar[str] = "USER"
    expands_variables: ClassVar[bool] = True

    user: str


@model(frozen=True, kw_only=True)
class Workdir(Instruction):
    """``WORKDIR path``."""

    keyword: ClassVar[str] = "WORKDIR"
    expands_variables: ClassVar[bool] = True

    path: str


@model(frozen=True, kw_only=True)
class Arg(Instruction):
    """``ARG NAME[=default] ...``: declares build arguments (several per line)."""

    keyword: ClassVar[str] = "ARG"

    args: tuple[ArgDecl, ...]


@model(frozen=True, kw_only=True)
class Stopsignal(Instruction):
    """``STOPSIGNAL signal`` (name like ``SIGTERM`` or a number; raw)."""

    keyword: ClassVar[str] = "STOPSIGNAL"
    expands_variables: ClassVar[bool] = True

    signal: str


@model(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """``HEALTHCHECK NONE`` or ``HEALTHCHECK [opts] CMD command``.

    ``test`` is Docker's config form: ``("NONE",)``, ``("CMD", argv...)`` for exec form or
    ``("CMD-SHELL", "command")`` for shell form. Durations are in nanoseconds (Docker's config
    unit), None when not given; ``retries`` None when not given.
    """

    keyword: ClassVar[str] = "HEALTHCHECK"

    test: tuple[str, ...]
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None


@model(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """``ONBUILD <instruction>``: a trigger stored in the image, run by child builds.

    ``expression`` is the trigger's text as stored in the image config (``OnBuild``), heredoc
    bodies appended as BuildKit does; ``trigger`` is the same text parsed.
    """

    keyword: ClassVar[str] = "ONBUILD"
    expands_variables: ClassVar[bool] = True

    expression: str
    trigger: Instruction


#: keyword (upper case) -> instruction class, for every instruction of the language
INSTRUCTION_TYPES: dict[str, type[Instruction]] = {
    cls.keyword: cls
    for cls in (From, Run, Cmd, Entrypoint, Shell, Env, Label, Maintainer, Expose, Copy, Add,
                Volume, User, Workdir, Arg, Stopsignal, Healthcheck, Onbuild)
}


# -- the whole file --------------------------------------------------------------------------


@model(frozen=True)
class Directive:
    """A parser directive from the top of the file (``# syntax=...``, ``# escape=``,
    ``# check=...``); ``name`` lower case, ``value`` as written."""

    name: str
    value: str
    line: int


@model(frozen=True)
class ParseWarning:
    """Something legal but suspicious (BuildKit's lint names, e.g. ``NoEmptyContinuation``)."""

    rule: str
    message: str
    line: int


@model(frozen=True)
class Stage:
    """One build stage: its FROM and the instructions up to the next FROM.

    ``index`` is the 0-based position among the stages; ``name`` the lower-cased ``AS`` name
    or None.
    """

    index: int
    from_: From
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        return self.from_.stage_name

    @property
    def location(self) -> SourceRange:
        last = self.instructions[-1].location if self.instructions else self.from_.location
        return SourceRange(self.from_.location.start, last.end)


@model(frozen=True)
class Dockerfile:
    """A parsed Dockerfile.

    ``instructions`` are in file order; ``meta_args`` are the ARGs before the first FROM;
    ``stages`` the FROM-delimited stages. ``escape`` is the escape character in effect (from the
    ``escape`` directive, default backslash). ``ast`` is the low-level node tree the dump is made
    from (:mod:`capstone.dockerfile.nodes`).
    """

    file: str
    instructions: tuple[Instruction, ...]
    directives: tuple[Directive, ...] = ()
    escape: str = "\\"
    warnings: tuple[ParseWarning, ...] = ()
    ast: tuple = field(default=(), repr=False, compare=False)

    def directive(self, name: str) -> str | None:
        """The value of a parser directive (``syntax``, ``escape``, ``check``) or None."""
        for d in self.directives:
            if d.name == name.lower():
                return d.value
        return None

    @property
    def syntax(self) -> str | None:
        return self.directive("syntax")

    @property
    def meta_args(self) -> tuple[Arg, ...]:
        """ARG instructions before the first FROM (global scope, usable in FROM lines)."""
        out = []
        for ins in self.instructions:
            if isinstance(ins, From):
                break
            if isinstance(ins, Arg):
                out.append(ins)
        return tuple(out)

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages in file order (the parser guarantees the first non-ARG is a FROM)."""
        stages: list[Stage] = []
        current: From | None = None
        body: list[Instruction] = []
        for ins in self.instructions:
            if isinstance(ins, From):
                if current is not None:
                    stages.append(Stage(len(stages), current, tuple(body)))
                current, body = ins, []
            elif current is not None:
                body.append(ins)
        if current is not None:
            stages.append(Stage(len(stages), current, tuple(body)))
        return tuple(stages)

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)
