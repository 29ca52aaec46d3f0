"""ARG scoping and per-instruction expansion (BuildKit's rules)."""

from __future__ import annotations

import pytest

from capstone.dockerfile.args import (
    BuildArgError,
    BuildVariables,
    parse_build_args,
    platform_args,
    unused_build_args_warning,
)
from capstone.dockerfile.instructions import Arg, Copy, Env, From, Onbuild, Run
from capstone.dockerfile.parser import parse
from capstone.errors import ExpansionError
from part2_manual_oci import Platform, format_platform, host_platform, parse_platform

HOST = format_platform(host_platform())


def build(text, build_args=None, **kw):
    df = parse(text)
    return df, BuildVariables(df, build_args, **kw)


def run_stage(text, build_args=None, image_env=(), stage=-1, **kw):
    """Expand every stage up to ``stage``; return (expanded instructions, scope, build)."""
    df, bv = build(text, build_args, **kw)
    scopes = {}
    out = None
    for st in df.stages[: (stage % len(df.stages)) + 1]:
        fr = bv.expand_from(st)
        base = scopes.get(fr.image.lower())
        scope = bv.stage(image_env, base=base)
        out = [scope.apply(ins) for ins in st.instructions]
        if st.name:
            scopes[st.name] = scope
    return out, scope, bv


# -- global scope and FROM --------------------------------------------------------------------
FROM_CASES = [
    ("ARG BASE=alpine\nFROM $BASE\n", {}, "alpine"),
    ("ARG BASE=alpine\nFROM ${BASE}:3.19\n", {}, "alpine:3.19"),
    ("ARG BASE=alpine\nFROM $BASE\n", {"BASE": "debian"}, "debian"),
    ("ARG BASE\nFROM ${BASE:-busybox}\n", {}, "busybox"),
    ("ARG BASE\nFROM ${BASE:-busybox}\n", {"BASE": "ubuntu"}, "ubuntu"),
    ("FROM ${NOTDECLARED:-x}\n", {"NOTDECLARED": "y"}, "x"),
    ("ARG A=a\nARG B=$A-b\nFROM $B\n", {}, "a-b"),
    ("ARG A=a B=${A}b\nFROM $B\n", {}, "ab"),
    ("ARG A=a\nARG B=$A-b\nFROM $B\n", {"A": "z"}, "z-b"),
    ("ARG A=a\nARG A=${A}2\nFROM $A\n", {}, "a2"),
    ("FROM img:$TARGETARCH\n", {}, f"img:{host_platform().architecture}"),
    ("FROM img:$TARGETOS-$BUILDARCH\n", {}, f"img:linux-{host_platform().architecture}"),
    ("FROM img:${TARGETVARIANT:-none}\n", {}, "img:none"),
    ("FROM img:$TARGETARCH\n", {"TARGETARCH": "riscv64"}, "img:riscv64"),
    ("ARG V=1\nFROM a\nFROM img:$V\n", {}, "img:1"),
]


@pytest.mark.parametrize(("text", "args", "image"), FROM_CASES)
def test_from_lines_see_global_args(text, args, image):
    df, bv = build(text, args)
    assert bv.expand_from(df.stages[-1]).image == image


def test_from_platform_expands_and_validates():
    df, bv = build("FROM --platform=$BUILDPLATFORM golang AS b\n")
    fr = bv.expand_from(df.stages[0])
    assert fr.platform == HOST and fr.stage_name == "b"
    df, bv = build("FROM --platform=$TARGETPLATFORM golang\n", target=Platform("arm64", "linux"))
    assert bv.expand_from(df.stages[0]).platform == "linux/arm64"


def test_target_platform_sets_target_args():
    bv = BuildVariables(parse("FROM a\n"), target=parse_platform("linux/arm/v7"))
    env = bv.global_env
    assert (env["TARGETPLATFORM"], env["TARGETOS"], env["TARGETARCH"], env["TARGETVARIANT"]) == (
        "linux/arm/v7", "linux", "arm", "v7")
    assert env["BUILDPLATFORM"] == HOST


FROM_ERRORS = [
    ("FROM $NOPE\n", "base name ($NOPE) should not be blank"),
    ("ARG E=\nFROM ${E}\n", "base name (${E}) should not be blank"),
    ("FROM --platform=$NOPE a\n", "empty platform value from expression $NOPE"),
    ("FROM --platform=linux/nonsense a\n", "failed to parse platform linux/nonsense: 'linux/nonsense': unknown architecture"),
    ("FROM ${X:?need-X}\n", 'failed to process "${X:?need-X}": X: need-X'),
    ("FROM ${X\n", 'failed to process "${X": syntax error: missing \'}\''),
]


@pytest.mark.parametrize(("text", "message"), FROM_ERRORS)
def test_from_errors(text, message):
    df, bv = build(text)
    with pytest.raises(ExpansionError) as info:
        bv.expand_from(df.stages[-1])
    assert info.value.message == message
    assert str(info.value).startswith(f"Dockerfile:{df.stages[-1].from_.line}: ")


def test_meta_arg_error_is_located():
    with pytest.raises(ExpansionError) as info:
        build("ARG OK=1\nARG BAD=${\nFROM a\n")
    assert str(info.value).startswith("Dockerfile:2: failed to process")


# -- stage scope ------------------------------------------------------------------------------
def env_after(text, build_args=None, image_env=(), **kw):
    _, scope, _ = run_stage(text, build_args, image_env, **kw)
    return scope.run_env(proxies=False)


def test_global_arg_is_invisible_in_a_stage_until_declared():
    text = "ARG V=1\nFROM a\nRUN x\n"
    assert "V" not in env_after(text)
    assert env_after("ARG V=1\nFROM a\nARG V\n")["V"] == "1"


def test_stage_arg_takes_build_arg_then_default_then_global():
    assert env_after("FROM a\nARG V=d\n")["V"] == "d"
    assert env_after("FROM a\nARG V=d\n", {"V": "cli"})["V"] == "cli"
    assert env_after("ARG V=g\nFROM a\nARG V\n")["V"] == "g"
    assert env_after("ARG V=g\nFROM a\nARG V\n", {"V": "cli"})["V"] == "cli"
    assert env_after("ARG V=g\nFROM a\nARG V=own\n")["V"] == "own"
    assert "V" not in env_after("FROM a\nARG V\n")


def test_declared_arg_without_value_is_declared_but_unset():
    _, scope, _ = run_stage("FROM a\nARG V\n")
    assert scope.declared == {"V": None}
    assert scope.declared_args() == {}


def test_env_after_arg_overrides_it():
    # the reference's example: ENV always wins over an ARG declared before it
    env = env_after("FROM a\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\n", {"CONT_IMG_VER": "v2.0.1"})
    assert env["CONT_IMG_VER"] == "v1.0.0"
    env = env_after("FROM a\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n", {"CONT_IMG_VER": "v2.0.1"})
    assert env["CONT_IMG_VER"] == "v2.0.1"
    env = env_after("FROM a\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n")
    assert env["CONT_IMG_VER"] == "v1.0.0"


def test_arg_with_value_after_env_wins_as_in_buildkit():
    assert env_after("FROM a\nENV X=env\nARG X=arg\n")["X"] == "arg"
    assert env_after("FROM a\nENV X=env\nARG X\n")["X"] == "env"
    # the base image's ENV too (moby/moby#34494)
    assert env_after("FROM a\nARG DEBIAN_FRONTEND=noninteractive\n", image_env=["DEBIAN_FRONTEND=teletype"])[
        "DEBIAN_FRONTEND"] == "noninteractive"


def test_env_instruction_reads_one_snapshot():
    out, scope, _ = run_stage("FROM a\nENV a=hi\nENV a=bye b=$a\n")
    assert [(p.key, p.value) for p in out[1].pairs] == [("a", "bye"), ("b", "hi")]
    assert scope.env["a"] == "bye" and scope.env["b"] == "hi"


def test_arg_defaults_see_earlier_args_on_the_same_line():
    out, scope, _ = run_stage("FROM a\nARG a=1 b=${a}2\n")
    assert scope.env["b"] == "12"
    assert [(d.name, d.default) for d in out[0].args] == [("a", "1"), ("b", "12")]


def test_arg_default_sees_env():
    assert env_after("FROM a\nENV P=/opt\nARG D=$P/bin\n")["D"] == "/opt/bin"


def test_build_arg_value_is_not_expanded():
    assert env_after("FROM a\nARG V\n", {"V": "$HOME"})["V"] == "$HOME"


def test_stage_inherits_env_and_args_of_its_base_stage():
    text = "FROM a AS base\nARG V=1\nENV E=e\nFROM base\nRUN x\n"
    env = env_after(text)
    assert env["V"] == "1" and env["E"] == "e"


def test_stage_from_an_image_gets_image_env_and_a_default_path():
    env = env_after("FROM a\n", image_env=["HOME=/root"])
    assert env == {"HOME": "/root", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    assert env_after("FROM a\n", image_env=["PATH=/bin"])["PATH"] == "/bin"


def test_image_env_excludes_args():
    _, scope, _ = run_stage("FROM a\nARG V=1\nENV E=2\n")
    assert "V" not in scope.image_env and scope.image_env["E"] == "2"
    assert scope.env["V"] == "1"


def test_platform_args_need_declaring_in_a_stage():
    assert "TARGETARCH" not in env_after("FROM a\n")
    assert env_after("FROM a\nARG TARGETARCH\n")["TARGETARCH"] == host_platform().architecture
    assert env_after("FROM a\nARG TARGETPLATFORM BUILDPLATFORM\n", target=parse_platform("linux/arm64"))[
        "TARGETPLATFORM"] == "linux/arm64"


# -- which instructions expand, and which words ----------------------------------------------
def expanded(text, build_args=None, image_env=("U=app", "D=/srv", "M=0755", "S=builder")):
    out, _, _ = run_stage("FROM a\n" + text, build_args, image_env)
    return out[-1]


EXPANSION_CASES = [
    ("WORKDIR $D/app", "path", "/srv/app"),
    ("WORKDIR ${D:-/x}/$NOPE", "path", "/srv/"),
    ("USER $U:$U", "user", "app:app"),
    ("USER ${U}", "user", "app"),
    ("STOPSIGNAL ${SIG:-SIGTERM}", "signal", "SIGTERM"),
    ("VOLUME $D/data /v2", "volumes", ("/srv/data", "/v2")),
    ('VOLUME ["$D/data", "/v2"]', "volumes", ("/srv/data", "/v2")),
    ("COPY --chown=$U:$U a /b", "chown", "app:app"),
    ("COPY --chmod=$M a /b", "chmod", "0755"),
    ("COPY --from=$S a /b", "from_stage", "builder"),
    ("COPY --exclude=*.$X a /b", "exclude", ("*.",)),
    ("COPY $D/a ${D}/b /dst/", "sources", ("/srv/a", "/srv/b")),
    ("COPY a $D/", "dest", "/srv/"),
    ('COPY ["$D/a b", "/dst/"]', "sources", ("/srv/a b",)),
    ("ADD --chown=${U} a /b", "chown", "app"),
    ("ADD --checksum=sha256:${SUM:-0} http://x/y /b", "checksum", "sha256:0"),
    ("ADD $D/x.tar /", "sources", ("/srv/x.tar",)),
    ("LABEL owner=$U", "pairs", (("owner", "app"),)),
    ("LABEL $U=x \"k\"=\"v $U\"", "pairs", (("app", "x"), ("k", "v app"))),
    ("ENV P=$D/bin", "pairs", (("P", "/srv/bin"),)),
    ("ENV P $D bin", "pairs", (("P", "/srv bin"),)),
    ('ENV Q="a b" R=\'$U\'', "pairs", (("Q", "a b"), ("R", "$U"))),
    ("EXPOSE $P 80/tcp", "ports", ("1", "2", "80/tcp")),
    ("RUN --mount=type=cache,target=$D/cache,id=$U make", "mounts", ("type=cache,target=/srv/cache,id=app",)),
    ("RUN --mount=type=bind,from=b,source=$S,target=/y true", "mounts", ("type=bind,from=b,source=builder,target=/y",)),
]


@pytest.mark.parametrize(("line", "field", "value"), EXPANSION_CASES)
def test_instruction_expansion(line, field, value):
    ins = expanded(line + "\n", image_env=("U=app", "D=/srv", "M=0755", "S=builder", "P=1 2"))
    got = getattr(ins, field)
    if field == "pairs":
        got = tuple((p.key, p.value) for p in got)
    assert got == value


NOT_EXPANDED = [
    ("RUN echo $U", "command"),
    ("CMD echo $U", "command"),
    ('CMD ["echo", "$U"]', "command"),
    ("ENTRYPOINT echo $U", "command"),
    ('SHELL ["/bin/sh", "-c", "$U"]', "shell"),
    ("MAINTAINER $U", "maintainer"),
    ("HEALTHCHECK CMD echo $U", "test"),
    ("ONBUILD COPY $U /x", "expression"),
]


@pytest.mark.parametrize(("line", "field"), NOT_EXPANDED)
def test_instructions_left_to_the_shell_are_not_expanded(line, field):
    df = parse("FROM a\n" + line + "\n")
    original = df.stages[0].instructions[0]
    ins = expanded(line + "\n")
    assert getattr(ins, field) == getattr(original, field)
    assert "$U" in str(getattr(ins, field))


def test_onbuild_trigger_expands_when_applied_in_the_child():
    ins = expanded("ONBUILD COPY $D/a /b\n")
    assert isinstance(ins, Onbuild)
    _, scope, _ = run_stage("FROM a\n", image_env=("D=/child",))
    assert scope.apply(ins.trigger).sources == ("/child/a",)


def test_copy_heredoc_expands_unless_quoted():
    text = "FROM a\nENV N=world\nCOPY <<EOF /hello\nhi $N \"q\" \\$N\nEOF\nCOPY <<'EOF' /raw\nhi $N\nEOF\n"
    out, _, _ = run_stage(text)
    assert out[1].heredocs[0].content == 'hi world "q" $N\n'
    assert out[2].heredocs[0].content == "hi $N\n"


def test_run_heredoc_is_left_to_the_shell():
    out, _, _ = run_stage("FROM a\nENV N=x\nRUN <<EOF\necho $N\nEOF\n")
    assert out[1].heredocs[0].content == "echo $N\n"


def test_escape_directive_applies_to_expansion():
    out, _, _ = run_stage("# escape=`\nFROM a\nENV D=C:\\dir\nWORKDIR $D\\sub`$D\n")
    assert out[1].path == "C:\\dir\\sub$D"


def test_expansion_error_names_the_line():
    df, bv = build("FROM a\nENV X=1\nWORKDIR ${X:?}\nUSER ${U:?no user}\n")
    scope = bv.stage()
    ins = df.stages[0].instructions
    scope.apply(ins[0])
    assert scope.apply(ins[1]).path == "1"
    with pytest.raises(ExpansionError) as info:
        scope.apply(ins[2])
    assert str(info.value) == 'Dockerfile:4: failed to process "${U:?no user}": U: no user'


def test_multiline_instruction_error_spans_its_lines():
    df, bv = build("FROM a\nCOPY a \\\n  ${B \\\n  /c\n")
    with pytest.raises(ExpansionError) as info:
        bv.stage().apply(df.stages[0].instructions[0])
    assert (info.value.line, info.value.end_line) == (2, 4)


# -- RUN's environment -----------------------------------------------------------------------
def test_run_env_has_env_and_declared_args_in_order():
    _, scope, _ = run_stage("FROM a\nARG A=1\nENV B=2\nARG C\n", {"C": "3"}, image_env=["PATH=/bin"])
    assert scope.run_env_list() == ["PATH=/bin", "A=1", "B=2", "C=3"]


def test_proxy_args_reach_run_without_declaration_but_not_the_cache_key():
    _, scope, bv = run_stage("FROM a\n", {"http_proxy": "http://p:3128", "NO_PROXY": "localhost"})
    env = scope.run_env()
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://p:3128"
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost"
    assert "http_proxy" not in scope.run_env(proxies=False)
    assert bv.warning() is None


def test_declared_proxy_arg_is_in_the_cache_env():
    _, scope, _ = run_stage("FROM a\nARG HTTP_PROXY\n", {"HTTP_PROXY": "http://p"})
    assert scope.run_env(proxies=False)["HTTP_PROXY"] == "http://p"


def test_undeclared_build_arg_is_not_in_run_env():
    assert "FOO" not in env_after("FROM a\nRUN x\n", {"FOO": "bar"})


# -- unused build args ------------------------------------------------------------------------
UNUSED = [
    ("FROM a\n", {"FOO": "1"}, ["FOO"]),
    ("FROM a\nARG FOO\n", {"FOO": "1"}, []),
    ("ARG FOO\nFROM a\n", {"FOO": "1"}, ["FOO"]),
    ("ARG FOO\nFROM a:$FOO\n", {"FOO": "1"}, []),
    ("ARG FOO\nFROM --platform=$FOO a\n", {"FOO": "linux/amd64"}, []),
    ("ARG FOO\nFROM a\nARG FOO\n", {"FOO": "1"}, []),
    ("FROM a\n", {"B": "1", "A": "2", "HTTP_PROXY": "x", "TARGETARCH": "arm64", "BUILDKIT_INLINE_CACHE": "1"}, ["A", "B"]),
    ("FROM a\n", {"SOURCE_DATE_EPOCH": "0"}, []),
]


@pytest.mark.parametrize(("text", "args", "unused"), UNUSED)
def test_unused_build_args(text, args, unused):
    _, _, bv = run_stage(text, args)
    assert bv.unused_build_args() == unused


def test_unused_warning_text():
    assert unused_build_args_warning(["FOO"]) == "[Warning] One or more build-args [FOO] were not consumed"
    assert unused_build_args_warning(["b", "a"]) == "[Warning] One or more build-args [a b] were not consumed"
    assert unused_build_args_warning([]) is None


def test_args_of_stages_not_built_do_not_count():
    # only the stages the build runs (here: the first) declare their args
    _, _, bv = run_stage("FROM a AS one\nFROM a AS two\nARG FOO\n", {"FOO": "1"}, stage=0)
    assert bv.warning() == "[Warning] One or more build-args [FOO] were not consumed"


# -- the command line -------------------------------------------------------------------------
BUILD_ARGS = [
    (["K=V"], {}, {"K": "V"}),
    (["K=a=b"], {}, {"K": "a=b"}),
    (["K="], {}, {"K": ""}),
    (["K"], {"K": "from-env"}, {"K": "from-env"}),
    (["K"], {}, {}),
    (["K=1", "K=2"], {}, {"K": "2"}),
]


@pytest.mark.parametrize(("items", "environ", "expected"), BUILD_ARGS)
def test_parse_build_args(items, environ, expected):
    assert parse_build_args(items, environ) == expected


def test_build_arg_without_a_name_is_an_error():
    with pytest.raises(BuildArgError, match="the name is empty"):
        parse_build_args(["=v"], {})


def test_platform_args_default_to_the_host():
    args = platform_args()
    assert args["BUILDPLATFORM"] == args["TARGETPLATFORM"] == HOST
    assert args["BUILDOS"] == "linux"
    assert set(args) == {"TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
                         "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT"}


def test_expanded_instructions_keep_their_type_and_location():
    out, _, _ = run_stage("FROM a\nARG V=1\nCOPY $V /x\n")
    assert isinstance(out[0], Arg) and isinstance(out[1], Copy)
    assert out[1].location.start == 3 and out[1].sources == ("1",)
    assert isinstance(out[0].args[0].default, str)


def test_expand_from_keeps_stage_name_and_type():
    df, bv = build("ARG B=x\nFROM $B AS Build\n")
    fr = bv.expand_from(df.stages[0].from_)
    assert isinstance(fr, From) and fr.image == "x" and fr.stage_name == "build"


def test_env_keys_expand_too():
    out, scope, _ = run_stage("FROM a\nARG K=name\nENV $K=v\n")
    assert isinstance(out[1], Env) and out[1].pairs[0].key == "name"
    assert scope.env["name"] == "v"


def test_run_is_returned_with_expanded_mounts_only():
    out, _, _ = run_stage('FROM a\nENV T=/t\nRUN --mount=type=tmpfs,target=$T echo $T\n')
    assert isinstance(out[1], Run)
    assert out[1].mounts == ("type=tmpfs,target=/t",)
    assert out[1].command.args == ("echo $T",)


def test_mount_value_with_a_comma_stays_one_field():
    out, _, _ = run_stage('FROM a\nENV T="/a,b"\nRUN --mount=type=tmpfs,target=$T true\n')
    assert out[1].mounts == ('type=tmpfs,"target=/a,b"',)


def test_build_arg_for_an_arg_declared_after_env_overrides_run_env_but_not_the_image():
    # BuildKit's dispatchArg: an ARG that gets a value (here from --build-arg) calls
    # d.state.AddEnv(key, value), so RUN sees it; the image config keeps what ENV set
    _, scope, _ = run_stage("FROM a\nENV X=env\nARG X\n", {"X": "cli"})
    assert scope.env["X"] == "cli" and scope.image_env["X"] == "env"
    assert scope.run_env()["X"] == "cli"


def test_undeclared_proxy_args_stay_out_of_the_history_args():
    _, scope, _ = run_stage("FROM a\nARG V=1\n", {"HTTPS_PROXY": "http://p", "V": "2"})
    assert scope.declared_args() == {"V": "2"}
    assert scope.run_env()["https_proxy"] == "http://p"
