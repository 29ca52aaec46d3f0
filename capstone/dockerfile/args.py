"""Build arguments and per-instruction variable expansion, scoped the way BuildKit scopes them.

Scopes
  * **Global**: the predefined platform args (``BUILDPLATFORM`` ... ``TARGETVARIANT``) and the
    ARGs before the first FROM (*meta args*), evaluated in order: a ``--build-arg`` value wins,
    else the default, expanded with the global args declared so far. Only FROM lines see them.
  * **Stage**: a stage starts with the environment of its base: the image's ``Env`` (PATH is
    added when the image has none) or, for ``FROM <stage>``, everything that stage had, its
    ARGs included. ``ARG NAME`` makes NAME visible from that line on: with the ``--build-arg``
    value, else its default, else the global value of the same name. ``ENV`` and ``ARG`` write
    the same ordered environment, so the later one wins (``ENV`` after ``ARG`` overrides it, as
    the reference says; an ``ARG`` with a value after an ``ENV`` overrides that, as in BuildKit).
  * **Proxy args** (``HTTP_PROXY``, ``https_proxy``, ...) reach RUN without being declared,
    but stay out of the cache key unless declared.

Expansion
  ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR expand their words, as
  do the flag values ``--chown``, ``--chmod``, ``--from``, ``--exclude``, ``--checksum``,
  ``--platform`` and the values of ``RUN --mount``. RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK
  are the shell's business; ONBUILD is stored as written and expands when its trigger runs in
  a child build. All words of one instruction see one snapshot of the variables (``ENV a=bye
  b=$a`` reads the old ``a``), except ARG, whose defaults each see the ARGs before them on the
  line (BuildKit evaluates them one by one).

A build arg that no built stage declares (and that is not predefined) is reported:
``[Warning] One or more build-args [FOO] were not consumed``.

Sizes are bounded: one word expands to at most ``MAX_EXPANSION`` characters (the lexer's
limit) and the variables of one scope (a stage's, or the global ones) take at most
:data:`MAX_VARIABLES` bytes together, so ``ARG A$N=$A...`` line after line ends with an
:class:`ExpansionError` naming its line instead of exhausting memory. (A RUN step's whole
environment must fit in the kernel's 2 MiB for exec anyway.)
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping

from part1_overview import replace
from part2_manual_oci import Platform, PlatformError, format_platform, host_platform, normalize_platform, parse_platform

from ..errors import BuildArgError, DockerfileError, ExpansionError
from .instructions import (
    Add,
    Arg,
    Copy,
    Dockerfile,
    Env,
    Expose,
    From,
    Heredoc,
    Instruction,
    Label,
    Run,
    Stage,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from .shell import Lexer, env_from_list

__all__ = [
    "BUILTIN_ARGS",
    "MAX_VARIABLES",
    "PLATFORM_ARGS",
    "PROXY_ARGS",
    "BuildArgError",
    "BuildVariables",
    "StageVariables",
    "parse_build_args",
    "platform_args",
    "unused_build_args_warning",
]

PLATFORM_ARGS = (
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
)
PROXY_ARGS = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
)
#: BuildKit's own args: they configure the build, so passing them never warns
BUILTIN_ARGS = (
    "BUILDKIT_CACHE_MOUNT_NS", "BUILDKIT_CONTEXT_KEEP_GIT_DIR", "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_MULTI_PLATFORM", "BUILDKIT_SANDBOX_HOSTNAME", "BUILDKIT_SYNTAX",
    "BUILDKIT_BUILD_NAME", "SOURCE_DATE_EPOCH",
)
#: the most the variables of one scope may take together (names and values, in bytes)
MAX_VARIABLES = 4 << 20
#: what BuildKit puts in a stage's environment when the base image sets no PATH
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"




# -- platforms -------------------------------------------------------------------------------
# The platform model, its parser and this host's platform are part 2's (one of each in the
# project); here they only become the eight automatic args.


def platform_args(target: Platform | None = None, build: Platform | None = None) -> dict[str, str]:
    """The eight automatic platform args: BUILD* from the host, TARGET* from ``--platform``
    (normalised as BuildKit does: ``linux/arm64/v8`` is ``linux/arm64``, ``linux/arm`` is
    ``linux/arm/v7``)."""
    build = normalize_platform(build or host_platform())
    target = normalize_platform(target or build)
    return {
        "BUILDPLATFORM": format_platform(build),
        "BUILDOS": build.os,
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant or "",
        "TARGETPLATFORM": format_platform(target),
        "TARGETOS": target.os,
        "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant or "",
    }


# -- the command line ------------------------------------------------------------------------


def parse_build_args(items: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``--build-arg`` values: ``K=V`` sets K; a bare ``K`` takes K from ``environ``
    (``os.environ`` by default) and is dropped when the environment has no K, as docker does."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise BuildArgError(f"invalid build-arg {item!r}: the name is empty")
        if eq:
            out[key] = value
        elif key in environ:
            out[key] = environ[key]
    return out


def unused_build_args_warning(unused: Iterable[str]) -> str | None:
    """The warning for build args nothing consumed (None when there are none)."""
    names = sorted(unused)
    if not names:
        return None
    return f"[Warning] One or more build-args [{' '.join(names)}] were not consumed"


# -- expansion -------------------------------------------------------------------------------


def _located(err: DockerfileError, file: str, ins: Instruction) -> DockerfileError:
    return err.located(file, ins.location.start, ins.location.end)


def _entry_size(name: str, value: str | None) -> int:
    return 0 if value is None else len(name) + len(value) + 2


class _Scope:
    """Names -> values with a running total of their size, refused past :data:`MAX_VARIABLES`."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.size = sum(_entry_size(k, v) for k, v in env.items())

    def set(self, name: str, value: str) -> None:
        size = self.size + _entry_size(name, value) - _entry_size(name, self.env.get(name))
        if size > MAX_VARIABLES:
            raise ExpansionError(f"setting {name} would make the variables take more than {MAX_VARIABLES} bytes")
        self.size = size
        self.env[name] = value


def _split_csv(text: str) -> list[str]:
    import csv  # RUN --mount only

    return next(csv.reader([text]), []) if text else []


def _join_csv(fields: list[str]) -> str:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


class StageVariables:
    """The variables of one stage, instruction by instruction.

    ``env`` is the stage's environment as RUN and expansion see it (image Env, ENV and declared
    ARGs, in order of first definition); ``image_env`` only what ENV set (what the image config
    keeps); ``declared`` the ARGs declared so far with their values (None: declared, no value).
    Call :meth:`apply` with each instruction in order: it returns the instruction with its
    words expanded and updates the scope for ENV and ARG.
    """

    def __init__(self, build: "BuildVariables", image_env: Iterable[str] | Mapping[str, str] = (),
                 base: "StageVariables | None" = None) -> None:
        self.build = build
        self.lexer = build.lexer
        self.file = build.file
        if base is not None:
            self.env: dict[str, str] = dict(base.env)
            self.image_env: dict[str, str] = dict(base.image_env)
            self.declared: dict[str, str | None] = dict(base.declared)
        else:
            env = dict(image_env) if isinstance(image_env, Mapping) else env_from_list(image_env)
            if "PATH" not in env:
                env["PATH"] = DEFAULT_PATH
            self.env = dict(env)
            self.image_env = dict(env)
            self.declared = {}
        self._scope = _Scope(self.env)

    # -- words ---------------------------------------------------------------------------
    def expand(self, word: str, env: Mapping[str, str] | None = None) -> str:
        """One word, expanded with the stage's current variables (or ``env``)."""
        return self.lexer.process_word(word, self.env if env is None else env)

    # -- instructions ----------------------------------------------------------------------
    def apply(self, ins: Instruction) -> Instruction:
        """``ins`` with its words expanded; ENV and ARG also update the scope."""
        try:
            return self._apply(ins)
        except DockerfileError as e:
            raise _located(e, self.file, ins) from None

    def _apply(self, ins: Instruction) -> Instruction:
        # every word of one instruction sees the same variables (ARG excepted, see _arg): ENV
        # expands all its pairs before it sets any, so no copy of the environment is needed
        # (a copy per instruction would make a stage of N ENV lines cost N²)
        snap = self.env

        def w(word: str | None) -> str | None:
            return None if word is None else self.lexer.process_word(word, snap)

        if isinstance(ins, Arg):
            return self._arg(ins)
        if isinstance(ins, Env):
            pairs = tuple(replace(p, key=w(p.key), value=w(p.value)) for p in ins.pairs)
            for p in pairs:
                self._scope.set(p.key, p.value)
                self.image_env[p.key] = p.value
            return replace(ins, pairs=pairs)
        if isinstance(ins, Label):
            return replace(ins, pairs=tuple(replace(p, key=w(p.key), value=w(p.value)) for p in ins.pairs))
        if isinstance(ins, (Copy, Add)):
            changes = dict(
                sources=tuple(w(s) for s in ins.sources),
                dest=w(ins.dest),
                chown=w(ins.chown),
                chmod=w(ins.chmod),
                exclude=tuple(w(e) for e in ins.exclude),
                heredocs=tuple(self._heredoc(h, snap) for h in ins.heredocs),
            )
            if isinstance(ins, Copy):
                changes["from_stage"] = w(ins.from_stage)
            else:
                changes["checksum"] = w(ins.checksum)
            return replace(ins, **changes)
        if isinstance(ins, Expose):
            ports: list[str] = []
            for word in ins.ports:
                ports.extend(self.lexer.process_words(word, snap))
            return replace(ins, ports=tuple(ports))
        if isinstance(ins, Volume):
            return replace(ins, volumes=tuple(w(v) for v in ins.volumes))
        if isinstance(ins, User):
            return replace(ins, user=w(ins.user))
        if isinstance(ins, Workdir):
            return replace(ins, path=w(ins.path))
        if isinstance(ins, Stopsignal):
            return replace(ins, signal=w(ins.signal))
        if isinstance(ins, Run):
            return replace(ins, mounts=tuple(self._mount(m, snap) for m in ins.mounts))
        # CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER: as written. ONBUILD: stored as
        # written; the builder applies its trigger in the child stage.
        return ins

    def _heredoc(self, doc: Heredoc, env: Mapping[str, str]) -> Heredoc:
        if not doc.expand:
            return doc
        # BuildKit expands a COPY/ADD heredoc with a lexer that treats quotes as text and the
        # backslash as the escape, whatever the escape directive says
        lex = Lexer("\\", skip_process_quotes=True)
        return replace(doc, content=lex.process_word(doc.body, env), chomp=False, expand=False)

    def _mount(self, spec: str, env: Mapping[str, str]) -> str:
        fields = []
        for field in _split_csv(spec):
            key, eq, value = field.partition("=")
            fields.append(key + eq + self.lexer.process_word(value, env) if eq else field)
        return _join_csv(fields)

    def _arg(self, ins: Arg) -> Arg:
        build_args = self.build.build_args
        decls = []
        for decl in ins.args:
            name = decl.name
            value: str | None
            if name in build_args:
                value = build_args[name]
            elif decl.default is not None:
                # each default sees the ARGs before it, on this line too
                value = self.lexer.process_word(decl.default, self.env)
            else:
                value = self.build.global_env.get(name)
            if value is not None:
                self._scope.set(name, value)
            self.declared[name] = value
            self.build.consumed.add(name)
            decls.append(replace(decl, default=value))
        return replace(ins, args=tuple(decls))

    # -- RUN -------------------------------------------------------------------------------
    def run_env(self, proxies: bool = True) -> dict[str, str]:
        """The environment of a RUN step: the stage's ENV and declared ARGs, plus (unless
        ``proxies`` is False, e.g. for a cache key) the proxy build args, in both cases of name,
        that the stage does not set itself."""
        env = dict(self.env)
        if proxies:
            for key, value in self.build.proxy_env().items():
                env.setdefault(key, value)
        return env

    def run_env_list(self, proxies: bool = True) -> list[str]:
        """:meth:`run_env` as ``K=V`` strings (an OCI process's ``env``)."""
        return [f"{k}={v}" for k, v in self.run_env(proxies).items()]

    def declared_args(self) -> dict[str, str]:
        """The declared ARGs that have a value (BuildKit prefixes RUN's history with them)."""
        return {k: v for k, v in self.declared.items() if v is not None}



class BuildVariables:
    """The variables of one build: global scope, FROM expansion, and the stages' scopes.

    ``build_args`` are the ``--build-arg`` values (see :func:`parse_build_args`); ``target`` /
    ``build_platform`` set the platform args (default: this host).
    """

    def __init__(self, dockerfile: Dockerfile, build_args: Mapping[str, str] | None = None, *,
                 target: Platform | None = None, build_platform: Platform | None = None) -> None:
        self.dockerfile = dockerfile
        self.file = dockerfile.file
        self.lexer = Lexer(dockerfile.escape)
        self.build_args: dict[str, str] = dict(build_args or {})
        #: names a build arg counts as used by: declared by an ARG, or read by a FROM line
        self.consumed: set[str] = set()
        env = platform_args(target, build_platform)
        for key in env:
            if key in self.build_args:
                env[key] = self.build_args[key]
        scope = _Scope(env)
        for ins in dockerfile.meta_args:
            try:
                for decl in ins.args:
                    if decl.name in self.build_args:
                        value: str | None = self.build_args[decl.name]
                    elif decl.default is not None:
                        value = self.lexer.process_word(decl.default, env)
                    else:
                        value = None
                    if value is not None:
                        scope.set(decl.name, value)
            except DockerfileError as e:
                raise _located(e, self.file, ins) from None
        self.global_env: dict[str, str] = env

    def expand_from(self, ins: From | Stage) -> From:
        """The FROM line with ``image`` and ``--platform`` expanded by the global args."""
        if isinstance(ins, Stage):
            ins = ins.from_
        try:
            found = self.lexer.process_word_with_matches(ins.image, self.global_env)
            self.consumed.update(found.matched)
            if not found.result:
                raise ExpansionError(f"base name ({ins.image}) should not be blank")
            platform = ins.platform
            if platform is not None:
                pfound = self.lexer.process_word_with_matches(platform, self.global_env)
                self.consumed.update(pfound.matched)
                if not pfound.result:
                    raise ExpansionError(f"empty platform value from expression {platform}")
                try:
                    parse_platform(pfound.result)
                except PlatformError as e:
                    raise ExpansionError(f"failed to parse platform {platform}: {e}") from None
                platform = pfound.result
        except DockerfileError as e:
            raise _located(e, self.file, ins) from None
        return replace(ins, image=found.result, platform=platform)

    def stage(self, image_env: Iterable[str] | Mapping[str, str] = (),
              base: StageVariables | None = None) -> StageVariables:
        """A new stage scope: from an image's ``Env`` list, or from the stage it is based on."""
        return StageVariables(self, image_env, base)

    def proxy_env(self) -> dict[str, str]:
        """Proxy settings passed as build args, under both spellings (``HTTP_PROXY`` and
        ``http_proxy``), as BuildKit hands them to RUN."""
        out: dict[str, str] = {}
        for key, value in self.build_args.items():
            if key.lower() in ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"):
                out[key.upper()] = value
                out[key.lower()] = value
        return out

    def unused_build_args(self) -> list[str]:
        """Build args that no built stage's ARG declared and no FROM line read, sorted."""
        predefined = set(PLATFORM_ARGS) | set(PROXY_ARGS) | set(BUILTIN_ARGS)
        return sorted(k for k in self.build_args if k not in self.consumed and k not in predefined)

    def warning(self) -> str | None:
        """``[Warning] One or more build-args [...] were not consumed``, or None."""
        return unused_build_args_warning(self.unused_build_args())
