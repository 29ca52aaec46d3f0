"""The Dockerfile parser: line rules, directives, forms, heredocs, every instruction and flag."""

from __future__ import annotations

import pytest

from capstone.dockerfile import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    CommandLine,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceRange,
    Stopsignal,
    User,
    Volume,
    Workdir,
    dump,
    go_quote,
    parse,
    parse_instructions,
    parse_syntax_tree,
)
from capstone.dockerfile.directives import parse_check
from capstone.dockerfile.flags import FlagError, parse_go_duration
from capstone.dockerfile.mounts import (
    Mount,
    MountSyntaxError,
    mount_fields,
    mount_from,
    parse_mount,
    ram_in_bytes,
)
from capstone.dockerfile.nodes import extract_builder_flags, parse_words
from capstone.errors import DockerfileError, ParseError


def one(text: str):
    """The single instruction of a fragment."""
    (ins,) = parse_instructions(text)
    return ins


def dumped(text: str) -> str:
    return dump(parse_syntax_tree(text).nodes)


# -- line rules ----------------------------------------------------------------------------------


def test_keywords_are_case_insensitive_and_leading_whitespace_is_ignored():
    df = parse("   from alpine\n\tRuN echo hi\n  # a comment\n   cOpY a b\n")
    assert [type(i) for i in df] == [From, Run, Copy]
    assert dumped("   from alpine\n\tRuN echo hi\n") == '(from "alpine")\n(run "echo hi")\n'


def test_instruction_lines_are_one_based_and_cover_continuations_and_heredocs():
    df = parse("# c\n\nFROM a\nRUN x \\\n  y \\\n  z\nCOPY <<EOF /f\nbody\nEOF\nCMD z\n")
    assert [i.location for i in df] == [SourceRange(3, 3), SourceRange(4, 6),
                                       SourceRange(7, 9), SourceRange(10, 10)]
    assert str(df.instructions[1].location) == "4-6"


def test_whitespace_inside_arguments_is_preserved():
    assert one("RUN echo  'a   b'\t c").command.args == ("echo  'a   b'\t c",)


def test_hash_in_the_middle_of_a_line_is_not_a_comment():
    assert one("RUN echo hi # not a comment").command.args == ("echo hi # not a comment",)


def test_comment_lines_inside_a_continued_instruction_are_dropped():
    ins = one("RUN a \\\n# comment\n    # indented comment\n  b")
    assert ins.command.args == ("a   b",)
    assert ins.location == SourceRange(1, 4)


def test_comment_cannot_be_continued():
    df = parse_instructions("# comment \\\nRUN x")
    assert [i.keyword for i in df] == ["RUN"]


def test_escaped_escape_at_line_end_is_not_a_continuation():
    df = parse_instructions("RUN echo \\\\\nRUN b")
    assert [i.command.args for i in df] == [("echo \\\\",), ("b",)]


def test_blanks_after_the_continuation_character_are_allowed():
    assert one("RUN a \\  \t\n b").command.args == ("a  b",)


def test_continuation_at_end_of_file_ends_the_instruction():
    assert one("RUN a \\").command.args == ("a",)


def test_empty_continuation_lines_are_skipped_with_a_warning():
    df = parse("FROM a\nRUN a \\\n\n   \nb\n")
    assert df.instructions[1].command.args == ("a b",)
    assert df.instructions[1].location == SourceRange(2, 5)
    assert [(w.rule, w.line) for w in df.warnings] == [("NoEmptyContinuation", 5)]


def test_continuation_line_that_is_only_the_escape_character():
    assert one("RUN a \\\n\\\nb").command.args == ("a b",)


def test_byte_order_mark_is_dropped():
    assert dumped("\ufeffFROM a\n") == '(from "a")\n'
    assert dumped(b"\xef\xbb\xbf# escape=`\nFROM a `\n b\n") == '(from "a" "b")\n'


def test_only_newline_ends_a_line_and_cr_before_it_is_dropped():
    assert dumped("RUN a\rb\r\nRUN c\x0bd\n") == '(run "a\\rb")\n(run "c\\vd")\n'


def test_undecodable_bytes_survive_as_go_hex_escapes():
    assert dumped(b"RUN echo \xff\n") == '(run "echo \\xff")\n'


def test_line_longer_than_buildkit_limit_is_an_error():
    with pytest.raises(ParseError, match="line greater than max allowed size of 65535"):
        parse("FROM a\nLABEL x=" + "a" * 70000 + "\n")
    assert parse("FROM a\nLABEL x=" + "a" * 60000 + "\n")


# -- parser directives ----------------------------------------------------------------------------


def test_directives_at_the_top_are_read_case_insensitively():
    df = parse("# SYNTAX = docker/dockerfile:1.7 \n#escape=`\n# check=skip=all\nFROM a\n")
    assert [(d.name, d.value, d.line) for d in df.directives] == [
        ("syntax", "docker/dockerfile:1.7", 1), ("escape", "`", 2), ("check", "skip=all", 3)]
    assert df.syntax == "docker/dockerfile:1.7" and df.escape == "`"


@pytest.mark.parametrize("text", [
    "\n# escape=`\nFROM a `\n b\n",          # blank line first
    "# comment\n# escape=`\nFROM a `\n b\n",  # ordinary comment first
    "# unknown=x\n# escape=`\nFROM a `\n b\n",  # an unknown key ends the block
    "FROM a\n# escape=`\nRUN a `\n b\n",      # after an instruction
])
def test_directives_after_the_top_are_plain_comments(text):
    tree = parse_syntax_tree(text)
    assert tree.escape == "\\" and not [d for d in tree.directives if d.name == "escape"]
    # the backtick stayed a literal character: it did not continue the line
    assert any(n.original.endswith("`") for n in tree.nodes)


def test_escape_backtick_changes_continuation_and_word_escapes():
    df = parse("# escape=`\nFROM a\nENV x=a` b y=c\nRUN dir c:\\ `\n  /w\n")
    assert df.instructions[1].pairs == (KeyValue("x", "a` b"), KeyValue("y", "c"))
    assert df.instructions[2].command.args == ("dir c:\\   /w",)


@pytest.mark.parametrize("text,line,message", [
    ("# escape=`\n# escape=\\\nFROM a\n", 2, "only one escape parser directive can be used"),
    ("# syntax=a\n# Syntax=b\nFROM a\n", 2, "only one syntax parser directive can be used"),
    ("# escape=x\nFROM a\n", 1, "invalid escape token 'x' does not match ` or \\"),
    ("# check=skip\nFROM a\n", 1, 'invalid check option "skip"'),
    ("# check=bogus=1\nFROM a\n", 1, 'invalid check option "bogus"'),
    ("# check=error=maybe\nFROM a\n", 1, 'failed to parse check option "error=maybe"'),
])
def test_directive_errors(text, line, message):
    with pytest.raises(ParseError) as e:
        parse(text)
    assert message in e.value.message and e.value.line == line


def test_check_directive_values():
    c = parse_check("skip=JSONArgsRecommended, StageNameCasing;error=true")
    assert c.skip == {"JSONArgsRecommended", "StageNameCasing"} and c.error
    assert not c.enabled("StageNameCasing") and c.enabled("NoEmptyContinuation")
    assert parse_check("skip=all").skip_all and not parse_check("").error


# -- exec and shell forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("text,args,shell_form", [
    ('RUN ["echo", "hi"]', ("echo", "hi"), False),
    ("RUN echo hi", ("echo hi",), True),
    ('RUN ["echo", "unterminated', ('["echo", "unterminated',), True),
    ("RUN ['single', 'quotes']", ("['single', 'quotes']",), True),
    ('RUN ["a"] trailing', ('["a"] trailing',), True),
    ('RUN ["a\\\\b", "\\u00e9"]', ("a\\b", "é"), False),
    ('CMD [ ]', (), False),
    ('CMD  ["x"]  ', ("x",), False),
    ('ENTRYPOINT ["top", "-b"]', ("top", "-b"), False),
    ("ENTRYPOINT exec top -b", ("exec top -b",), True),
    ('RUN [NaN]', ("[NaN]",), True),
])
def test_json_exec_form_and_fall_back_to_shell_form(text, args, shell_form):
    assert one(text).command == CommandLine(args, shell_form)


@pytest.mark.parametrize("text", ['RUN ["a", 1]', 'CMD [null]', 'ENTRYPOINT [["a"]]',
                                  'COPY ["a", true]', 'VOLUME [{}]', 'SHELL [1]'])
def test_json_array_with_non_strings_is_an_error(text):
    with pytest.raises(ParseError, match="arrays must be comprised of strings only"):
        parse_instructions(text)


# -- words (ENV, LABEL, ARG) ------------------------------------------------------------------------


@pytest.mark.parametrize("rest,words", [
    ("foo", ["foo"]),
    ("foo bar", ["foo", "bar"]),
    ("foo\\ bar", ["foo\\ bar"]),
    ("foo=bar", ["foo=bar"]),
    ("foo bar 'abc xyz'", ["foo", "bar", "'abc xyz'"]),
    ('foo bar "abc xyz"', ["foo", "bar", '"abc xyz"']),
    ("àöû", ["àöû"]),
    ('föo bàr "âbc xÿz"', ["föo", "bàr", '"âbc xÿz"']),
    ("a='' b", ["a=''", "b"]),
    ("'unterminated x", ["'unterminated x"]),
    ("x\\", ["x"]),
])
def test_parse_words_keeps_quotes_and_escapes(rest, words):
    assert parse_words(rest, "\\") == words


@pytest.mark.parametrize("line,rest,flags", [
    ("--a=1 --b x", "x", ("--a=1", "--b")),
    ("--a='x y' z", "z", ("--a=x y",)),
    ('--a="q\\"q" z', "z", ('--a=q"q',)),
    ("--a -- --b", " --b", ("--a",)),  # split_command trims the rest afterwards
    ("-- --b", " --b", ()),
    ("-a", "-a", ()),
    ("--a", "", ("--a",)),
    ("--a --", "", ("--a",)),
    ("  x --a", "x --a", ()),
])
def test_builder_flags_are_split_off_the_front(line, rest, flags):
    assert extract_builder_flags(line) == (rest, flags)


# -- every instruction --------------------------------------------------------------------------------


def test_from_forms():
    assert one("FROM alpine").image == "alpine"
    f = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build-1.x")
    assert (f.image, f.stage_name, f.platform) == ("golang:1.22", "build-1.x", "$BUILDPLATFORM")
    assert one("from scratch as s").stage_name == "s"


def test_run_flags():
    r = one("RUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=none "
            "--security=insecure make")
    assert r.mounts == ("type=cache,target=/c", "type=secret,id=s")
    assert (r.network, r.security, r.command.args) == ("none", "insecure", ("make",))
    assert one("RUN --network=host x").network == "host"
    assert one("RUN x").network is None


def test_cmd_and_entrypoint():
    assert one("CMD echo hi") == Cmd(command=CommandLine(("echo hi",), True),
                                     location=SourceRange(1, 1), original="CMD echo hi")
    assert one("ENTRYPOINT []").command == CommandLine((), False)


def test_env_and_label_pairs():
    assert one('ENV a=1 b="x y" c=') .pairs == (KeyValue("a", "1"), KeyValue("b", '"x y"'),
                                                 KeyValue("c", ""))
    assert one("ENV ONE TWO= THREE=world").pairs == (KeyValue("ONE", "TWO= THREE=world", legacy=True),)
    assert one("ENV k   v  w").pairs == (KeyValue("k", "v  w", legacy=True),)
    assert one('LABEL "com.x"="1" v=$V').pairs == (KeyValue('"com.x"', '"1"'), KeyValue("v", "$V"))
    assert one("LABEL key value").pairs == (KeyValue("key", "value", legacy=True),)


def test_maintainer_stopsignal_user_workdir_keep_the_rest_of_the_line():
    assert one("MAINTAINER Jane Doe <j@d.e>").maintainer == "Jane Doe <j@d.e>"
    assert one("STOPSIGNAL SIGKILL").signal == "SIGKILL"
    assert one("STOPSIGNAL 9").signal == "9"
    assert one("USER app:staff").user == "app:staff"
    assert one("WORKDIR /my dir").path == "/my dir"


def test_expose_ports_are_raw_and_sorted():
    assert one("EXPOSE 8080/udp 80 $P 443/tcp").ports == ("$P", "443/tcp", "80", "8080/udp")


def test_volume_json_or_list():
    assert one('VOLUME ["/a", "/b c"]').volumes == ("/a", "/b c")
    assert one("VOLUME /a  /b").volumes == ("/a", "/b")


def test_arg_several_names_with_and_without_defaults():
    assert one('ARG A B=2 C="x y" D=').args == (ArgDecl("A"), ArgDecl("B", "2"),
                                                ArgDecl("C", '"x y"'), ArgDecl("D", ""))


def test_shell_json():
    assert one('SHELL ["powershell", "-command"]').shell == ("powershell", "-command")


def test_copy_all_flags():
    c = one("COPY --from=build --chown=app:app --chmod=755 --link --parents "
            "--exclude=*.md --exclude=.git a b/ /dst/")
    assert (c.from_stage, c.chown, c.chmod, c.link, c.parents) == ("build", "app:app", "755", True, True)
    assert c.exclude == ("*.md", ".git") and c.sources == ("a", "b/") and c.dest == "/dst/"
    d = one('COPY ["a b", "/c d/"]')
    assert (d.sources, d.dest, d.link, d.from_stage) == (("a b",), "/c d/", False, None)
    assert one("COPY --link=false a b").link is False


def test_add_all_flags():
    a = one("ADD --chown=1:2 --chmod=u+x --link --keep-git-dir --checksum=sha256:00 "
            "--unpack=true --exclude=x https://g/r.git#main /src")
    assert (a.chown, a.chmod, a.link, a.keep_git_dir, a.checksum, a.unpack) == (
        "1:2", "u+x", True, True, "sha256:00", True)
    assert a.exclude == ("x",) and a.sources == ("https://g/r.git#main",)
    assert one("ADD a b").unpack is None
    assert one("ADD --unpack=FALSE a b").unpack is False


def test_healthcheck_cmd_shell_exec_none_and_options():
    h = one("HEALTHCHECK --interval=1m30s --timeout=2.5s --start-period=1h --start-interval=500ms "
            "--retries=4 CMD curl -f http://localhost/")
    assert h.test == ("CMD-SHELL", "curl -f http://localhost/")
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (
        90_000_000_000, 2_500_000_000, 3_600_000_000_000, 500_000_000, 4)
    assert one('HEALTHCHECK CMD ["/bin/check", "-q"]').test == ("CMD", "/bin/check", "-q")
    assert one("healthcheck none").test == ("NONE",)
    assert one("HEALTHCHECK cmd true").interval is None


def test_onbuild_keeps_expression_and_parses_trigger():
    o = one("ONBUILD   RUN --mount=type=cache,target=/x make")
    assert o.expression == "RUN --mount=type=cache,target=/x make"
    assert isinstance(o.trigger, Run) and o.trigger.mounts == ("type=cache,target=/x",)
    h = one("ONBUILD COPY <<EOF /f\nhi\nEOF")
    assert h.expression == "COPY <<EOF /f\nhi\nEOF"
    assert h.trigger.heredocs == (Heredoc("EOF", "hi\n"),)


# -- heredocs -------------------------------------------------------------------------------------


def test_run_heredoc_body_and_script():
    r = one("RUN <<EOF\n#!/bin/sh\necho $HOME\nEOF")
    assert r.command == CommandLine(("<<EOF",), True)
    assert r.heredocs == (Heredoc("EOF", "#!/bin/sh\necho $HOME\n", expand=True),)


def test_quoted_delimiters_turn_off_expansion():
    assert one("RUN <<'EOF'\nx\nEOF").heredocs[0].expand is False
    assert one('RUN <<"EOF"\nx\nEOF').heredocs[0].expand is False
    assert one('RUN <<E"O"F\nx\nEOF').heredocs[0] == Heredoc("EOF", "x\n", expand=False)
    assert one("RUN <<EOF\nx\nEOF").heredocs[0].expand is True


def test_chomp_heredoc_strips_leading_tabs_of_body_and_terminator():
    h = one("RUN <<-EOF\n\t\techo a\n\techo b\n\tEOF").heredocs[0]
    assert h.chomp and h.content == "\t\techo a\n\techo b\n" and h.body == "echo a\necho b\n"


def test_several_heredocs_on_one_line_and_fd_prefixes():
    r = one(["RUN 3<<A 4<<-B cat /dev/fd/3 /dev/fd/4\none\nA\n\ttwo\n\tB", ""][0])
    assert [(h.name, h.fd, h.content) for h in r.heredocs] == [("A", 3, "one\n"), ("B", 4, "\ttwo\n")]
    assert r.location == SourceRange(1, 5)


def test_copy_heredoc_sources_and_paths_mix():
    c = one("COPY <<one.txt ./two.txt <<'three' /dst/\n1\none.txt\n$3\nthree")
    assert c.sources == ("./two.txt",)
    assert c.heredocs == (Heredoc("one.txt", "1\n"), Heredoc("three", "$3\n", expand=False))


def test_heredoc_body_is_not_a_comment_or_continuation_and_crlf_terminator_matches():
    r = one("RUN <<EOF\r\n# not a comment \\\r\n\r\nEOF\r\n")
    assert r.heredocs[0].content == "# not a comment \\\r\n\r\n"


def test_heredocs_are_ignored_in_exec_form_and_other_instructions():
    assert one('RUN ["cat", "<<EOF"]').heredocs == ()
    df = parse_instructions("ENV a=<<EOF\nRUN x")
    assert [i.keyword for i in df] == ["ENV", "RUN"]


def test_heredoc_word_inside_quotes_is_not_a_heredoc():
    assert one("RUN echo '<<EOF'").heredocs == ()


# -- errors ---------------------------------------------------------------------------------------


ERRORS = [
    ("", None, "file with no instructions"),
    ("# only a comment\n\n", None, "file with no instructions"),
    ("FORM alpine", 1, "unknown instruction: FORM (did you mean FROM?)"),
    ("FROM a\nRUNN x", 2, "unknown instruction: RUNN (did you mean RUN?)"),
    ("FROM a\nXYZZY x", 2, "unknown instruction: XYZZY"),
    ("RUN x", 1, "no build stage in current context"),
    ("ARG A", None, "dockerfile contains no stages to build"),
    ("FROM", 1, "FROM requires either one or three arguments"),
    ("FROM a b", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1x", 1, 'invalid name for build stage: "1x", name can\'t start with a number'),
    ("FROM a AS $N", 1, 'invalid name for build stage: "$N"'),
    ("FROM --platform a", 1, "missing a value on flag: --platform"),
    ("FROM --plaform=x a", 1, "unknown flag: --plaform (did you mean platform?)"),
    ("FROM a\nENV", 2, "ENV requires at least one argument"),
    ("FROM a\nENV x", 2, "ENV must have two arguments"),
    ("FROM a\nENV a=1 b", 2, 'Syntax error - can\'t find = in "b". Must be of the form: name=value'),
    ("FROM a\nENV =x", 2, "ENV names can not be blank"),
    ("FROM a\nLABEL", 2, "LABEL requires at least one argument"),
    ("FROM a\nLABEL x", 2, "LABEL must have two arguments"),
    ("FROM a\nLABEL =x", 2, "LABEL names can not be blank"),
    ("FROM a\nMAINTAINER", 2, "MAINTAINER requires exactly one argument"),
    ("FROM a\nCOPY a", 2, "COPY requires at least two arguments, but only one was provided"),
    ("FROM a\nADD", 2, "ADD requires at least two arguments"),
    ("FROM a\nCOPY a <<EOF\nx\nEOF", 2, "COPY cannot accept a heredoc as a destination"),
    ("FROM a\nADD a <<EOF\nx\nEOF", 2, "ADD cannot accept a heredoc as a destination"),
    ("FROM a\nCOPY --chown a b", 2, "missing a value on flag: --chown"),
    ("FROM a\nCOPY --fro=x a b", 2, "unknown flag: --fro (did you mean from?)"),
    ("FROM a\nCOPY --from=x --from=y a b", 2, "duplicate flag specified: --from"),
    ("FROM a\nCOPY --link=maybe a b", 2, "expecting boolean value for flag --link, not: maybe"),
    ("FROM a\nCOPY --link= a b", 2, "missing a value on flag: --link"),
    ("FROM a\nCOPY --keep-git-dir a b", 2, "unknown flag: --keep-git-dir"),
    ("FROM a\nCOPY --checksum=x a b", 2, "unknown flag: --checksum"),
    ("FROM a\nADD --from=x a b", 2, "unknown flag: --from"),
    ("FROM a\nADD --parents a b", 2, "unknown flag: --parents"),
    ("FROM a\nADD --exclude a b", 2, "missing a value on flag: --exclude"),
    ("FROM a\nRUN --mount x", 2, "missing a value on flag: --mount"),
    ("FROM a\nRUN --network=bridge x", 2, 'invalid network mode "bridge"'),
    ("FROM a\nRUN --security=root x", 2, 'security "root" is not valid'),
    ("FROM a\nRUN --device=x y", 2, "unknown flag: --device"),
    ("FROM a\nRUN --network=none", 2, "RUN requires at least one argument"),
    ("FROM a\nCMD --x [\"a\"]", 2, "unknown flag: --x"),
    ("FROM a\nENTRYPOINT --x a", 2, "unknown flag: --x"),
    ("FROM a\nENV --x=1 a=b", 2, "unknown flag: --x"),
    ("FROM a\nWORKDIR", 2, "WORKDIR requires exactly one argument"),
    ("FROM a\nUSER", 2, "USER requires exactly one argument"),
    ("FROM a\nSTOPSIGNAL", 2, "STOPSIGNAL requires exactly one argument"),
    ("FROM a\nEXPOSE", 2, "EXPOSE requires at least one argument"),
    ("FROM a\nVOLUME", 2, "VOLUME requires at least one argument"),
    ('FROM a\nVOLUME [""]', 2, "VOLUME specified can not be an empty string"),
    ("FROM a\nARG", 2, "ARG requires at least one argument"),
    ("FROM a\nARG =x", 2, "ARG names can not be blank"),
    ("FROM a\nSHELL", 2, "SHELL requires at least one argument"),
    ("FROM a\nSHELL []", 2, "SHELL requires at least one argument"),
    ("FROM a\nSHELL /bin/sh -c", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM a\nHEALTHCHECK", 2, "HEALTHCHECK requires at least one argument"),
    ("FROM a\nHEALTHCHECK NONE x", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM a\nHEALTHCHECK CMD", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM a\nHEALTHCHECK CONNECT TCP 7000", 2, 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
    ("FROM a\nHEALTHCHECK --interval=5 CMD x", 2, 'time: missing unit in duration "5"'),
    ("FROM a\nHEALTHCHECK --timeout=5d CMD x", 2, 'time: unknown unit "d" in duration "5d"'),
    ("FROM a\nHEALTHCHECK --timeout=x CMD x", 2, 'time: invalid duration "x"'),
    ("FROM a\nHEALTHCHECK --timeout=999us CMD x", 2, 'Interval "timeout" cannot be less than 1ms'),
    ("FROM a\nHEALTHCHECK --start-period=10us CMD x", 2, 'Interval "start-period" cannot be less than 1ms'),
    ("FROM a\nHEALTHCHECK --retries=-1 CMD x", 2, "--retries cannot be negative (-1)"),
    ("FROM a\nHEALTHCHECK --retries=x CMD x", 2, 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("FROM a\nHEALTHCHECK --retries=9999999999 CMD x", 2, "value out of range"),
    ("FROM a\nHEALTHCHECK --interval=1s --interval=2s CMD x", 2, "duplicate flag specified: --interval"),
    ("FROM a\nHEALTHCHECK --intervall=1s CMD x", 2, "unknown flag: --intervall (did you mean interval?)"),
    ("FROM a\nONBUILD", 2, "ONBUILD requires at least one argument"),
    ("FROM a\nONBUILD ONBUILD RUN x", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM a\nONBUILD FROM b", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD maintainer me", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD FOO x", 2, "unknown instruction: FOO"),
    ("FROM a\nRUN <<EOF\nno end", 2, "unterminated heredoc"),
    ("FROM a\nCOPY <<A <<B /d\na\nA\nb", 2, "unterminated heredoc"),
    ('FROM a\nCMD ["a", 1]', 2, "arrays must be comprised of strings only"),
    ("FROM a\nSTOPSIGNAL --x 9", 2, "unknown flag: --x"),
    ("FROM a\nARG --x=1 A", 2, "unknown flag: --x"),
]


@pytest.mark.parametrize("text,line,message", ERRORS)
def test_error_messages_name_the_line(text, line, message):
    with pytest.raises(ParseError) as e:
        parse(text, file="ci/Dockerfile.dev")
    err = e.value
    assert message in err.message
    assert err.line == line
    prefix = "ci/Dockerfile.dev" + (f":{line}" if line else "") + ": "
    assert str(err).startswith(prefix) and "\n" not in str(err)
    assert isinstance(err, DockerfileError)


def test_error_on_multiline_instruction_reports_its_first_line_and_range():
    with pytest.raises(ParseError) as e:
        parse("FROM a\nCOPY \\\n  --chown \\\n  a b\n")
    assert (e.value.line, e.value.end_line) == (2, 4)


# -- helpers: quoting, durations, mounts ---------------------------------------------------------


@pytest.mark.parametrize("s,quoted", [
    ("abc", '"abc"'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
    ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
    ("é♥☃", '"é♥☃"'),
    ("\u00a0\u200b\u2028", '"\\u00a0\\u200b\\u2028"'),
    ("\U000e0001", '"\\U000e0001"'),
    ("\U0001f600", '"\U0001f600"'),
    ("\udcff", '"\\xff"'),
])
def test_go_quote_matches_strconv_quote(s, quoted):
    assert go_quote(s) == quoted


@pytest.mark.parametrize("text,ns", [
    ("0", 0), ("1s", 10**9), ("1.5s", 1_500_000_000), ("1h2m3s", 3723 * 10**9),
    ("100ms", 10**8), ("3us", 3000), ("3µs", 3000), ("7ns", 7), (".5m", 30 * 10**9),
    ("-1s", -(10**9)), ("+2m", 120 * 10**9), ("1.s", 10**9),
])
def test_go_durations(text, ns):
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "s", ".s", "1", "1x", "--1s", "1s2", "1e3s"])
def test_bad_go_durations(text):
    with pytest.raises(FlagError, match="^time: "):
        parse_go_duration(text)


def test_mount_fields_use_csv_rules():
    assert mount_fields("type=cache,target=/root/.cache,ro") == (
        ("type", "cache"), ("target", "/root/.cache"), ("ro", None))
    assert mount_fields('"source=a,b",FROM=build') == (("source", "a,b"), ("from", "build"))
    assert mount_from("type=bind,from=builder,source=/out") == "builder"
    assert mount_from("type=tmpfs,target=/t") is None


def test_instructions_are_frozen_and_know_their_keyword():
    ins = one("USER app")
    with pytest.raises(AttributeError):
        ins.user = "root"
    assert ins.keyword == "USER" and ins.line == 1 and ins.expands_variables
    assert not Run.expands_variables and Workdir.keyword == "WORKDIR"
    keywords = {cls.keyword for cls in (Add, Arg, Cmd, Entrypoint, Env, Expose, Label, Maintainer,
                                        Onbuild, Shell, Stopsignal, User, Volume, Healthcheck)}
    assert len(keywords) == 14


# -- audit additions: directives as BuildKit's DetectSyntax / ParseDirective read them ----------


def test_syntax_and_check_may_follow_a_shebang_but_escape_may_not():
    df = parse("#!/usr/bin/env buildctl\n# syntax=docker/dockerfile:1\n# check=skip=all\n"
               "# escape=`\nFROM a\nRUN x `\n")
    assert [(d.name, d.value, d.line) for d in df.directives] == [
        ("syntax", "docker/dockerfile:1", 2), ("check", "skip=all", 3)]
    assert df.escape == "\\" and df.instructions[1].command.args == ("x `",)


def test_indented_directive_sets_escape_but_is_not_a_syntax_or_check_directive():
    df = parse("  # escape=`\n  # syntax=x\nFROM a `\n  AS b\n")
    assert df.escape == "`" and df.instructions[0].stage_name == "b"
    assert df.syntax is None and [d.name for d in df.directives] == ["escape"]


def test_syntax_may_come_after_escape_and_check_and_values_keep_their_case():
    df = parse("# escape=\\\n# CHECK = skip=StageNameCasing ; error=True\n# Syntax=Docker/X\nFROM a\n")
    assert [(d.name, d.value) for d in df.directives] == [
        ("escape", "\\"), ("check", "skip=StageNameCasing ; error=True"), ("syntax", "Docker/X")]


def test_directive_block_ends_at_the_first_other_line_even_a_bom_line_is_fine():
    df = parse("\ufeff# syntax=a\n#check=error=false\n\n# escape=`\nFROM a\n")
    assert [d.name for d in df.directives] == ["syntax", "check"] and df.escape == "\\"


@pytest.mark.parametrize("text,line,message", [
    ("# check=skip=all\n# check=error=true\nFROM a\n", 2, "only one check parser directive can be used"),
    ("# escape=``\nFROM a\n", 1, "invalid escape token '``' does not match ` or \\"),
    ("#!/bin/sh\n# check=error=nope\nFROM a\n", 2, 'failed to parse check option "error=nope"'),
])
def test_more_directive_errors(text, line, message):
    with pytest.raises(ParseError) as e:
        parse(text)
    assert e.value.message.startswith(message) and e.value.line == line


def test_invalid_check_value_after_an_indent_is_not_read_at_all():
    assert parse("  # check=bogus\nFROM a\n").directive("check") is None


# -- audit additions: flags accepted exactly where BuildKit accepts them -------------------------

FLAG_SAMPLES = {
    "platform": "--platform=linux/amd64", "mount": "--mount=type=tmpfs,target=/t",
    "network": "--network=none", "security": "--security=insecure", "from": "--from=x",
    "chown": "--chown=1:1", "chmod": "--chmod=644", "link": "--link", "parents": "--parents",
    "exclude": "--exclude=*.md", "keep-git-dir": "--keep-git-dir",
    "checksum": "--checksum=sha256:abc", "unpack": "--unpack=false", "interval": "--interval=5s",
    "timeout": "--timeout=3s", "start-period": "--start-period=1s",
    "start-interval": "--start-interval=1s", "retries": "--retries=3",
}
LINES = {
    "FROM": "FROM {} a", "RUN": "RUN {} true", "COPY": "COPY {} a /b", "ADD": "ADD {} a /b",
    "HEALTHCHECK": "HEALTHCHECK {} CMD true", "CMD": "CMD {} x", "ENTRYPOINT": "ENTRYPOINT {} x",
    "ENV": "ENV {} a=b", "LABEL": "LABEL {} a=b", "EXPOSE": "EXPOSE {} 80", "VOLUME": "VOLUME {} /v",
    "USER": "USER {} u", "WORKDIR": "WORKDIR {} /w", "ARG": "ARG {} A", "STOPSIGNAL": "STOPSIGNAL {} 9",
    "SHELL": 'SHELL {} ["sh"]', "MAINTAINER": "MAINTAINER {} me", "ONBUILD": "ONBUILD {} RUN x",
}
ACCEPTS = {
    "FROM": {"platform"}, "RUN": {"mount", "network", "security"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "keep-git-dir", "checksum", "unpack", "exclude"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}


@pytest.mark.parametrize("keyword", sorted(LINES))
@pytest.mark.parametrize("flag", sorted(FLAG_SAMPLES))
def test_every_flag_is_accepted_only_where_buildkit_accepts_it(keyword, flag):
    text = LINES[keyword].format(FLAG_SAMPLES[flag])
    if flag in ACCEPTS.get(keyword, ()):
        assert one(text).flags == (FLAG_SAMPLES[flag],)
    else:
        with pytest.raises(ParseError) as e:
            parse_instructions(text)
        assert e.value.message.startswith(f"unknown flag: --{flag}")


@pytest.mark.parametrize("text,message", [
    ("COPY --form=x a b", "unknown flag: --form (did you mean from?)"),
    ("COPY --FROM=x a b", "unknown flag: --FROM"),  # flag names are case-sensitive ...
    ("COPY --lnk a b", "unknown flag: --lnk (did you mean link?)"),
    ("ADD --keep-git=true a b", "unknown flag: --keep-git"),  # distance 4: no suggestion
    ("RUN --mounts=type=bind x", "unknown flag: --mounts (did you mean mount?)"),
    ("HEALTHCHECK --start_period=1s CMD x", "unknown flag: --start_period (did you mean start-period?)"),
])
def test_unknown_flag_suggestions_use_edit_distance_below_three(text, message):
    with pytest.raises(ParseError) as e:
        parse_instructions(text)
    assert e.value.message == message


@pytest.mark.parametrize("text,message", [
    ("FORM a", "unknown instruction: FORM (did you mean FROM?)"),
    ("form a", "unknown instruction: form (did you mean from?)"),
    ("Form a", "unknown instruction: Form (did you mean from?)"),
    ("CPY a b", "unknown instruction: CPY (did you mean COPY?)"),  # distance 1 beats CMD's 2
    ("ENTRYPONT x", "unknown instruction: ENTRYPONT (did you mean ENTRYPOINT?)"),
    ("HELLO x", "unknown instruction: HELLO (did you mean SHELL?)"),
    ("HELLOWORLD x", "unknown instruction: HELLOWORLD"),
])
def test_misspelled_instruction_suggestion_matches_the_case_written(text, message):
    with pytest.raises(ParseError) as e:
        parse_instructions(text)
    assert e.value.message == message


def test_healthcheck_zero_durations_and_zero_retries_mean_the_defaults():
    h = one("HEALTHCHECK --interval=0s --timeout=0 --start-period=0ms --start-interval=0s "
            "--retries=0 CMD true")
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("flag,message", [
    ("--interval=1ns", 'Interval "interval" cannot be less than 1ms'),
    ("--start-interval=999us", 'Interval "start-interval" cannot be less than 1ms'),
    ("--timeout=-1s", 'Interval "timeout" cannot be less than 1ms'),
    ("--interval=1.5.5s", 'time: missing unit in duration "1.5.5s"'),  # as Go says it
    ("--retries=1.0", 'strconv.ParseInt: parsing "1.0": invalid syntax'),
    ("--retries=-3", "--retries cannot be negative (-3)"),
    ("--retries=2147483648", 'strconv.ParseInt: parsing "2147483648": value out of range'),
])
def test_healthcheck_option_values(flag, message):
    with pytest.raises(ParseError) as e:
        parse_instructions(f"HEALTHCHECK {flag} CMD true")
    assert e.value.message == message


def test_healthcheck_retries_allow_leading_zeros_and_a_sign():
    assert one("HEALTHCHECK --retries=+07 CMD true").retries == 7


# -- audit additions: RUN --mount fields -----------------------------------------------------


@pytest.mark.parametrize("value,expected", [
    ("target=/x", Mount(target="/x")),
    ("type=bind,source=/a,target=/b,rw", Mount(source="/a", target="/b", read_only=False)),
    ("type=BIND,src=a,dst=b,from=build,readwrite=true",
     Mount(source="a", target="b", from_="build", read_only=False)),
    ("type=cache,target=/c,id=go,sharing=LOCKED,mode=0700,uid=1000,gid=1000",
     Mount(type="cache", target="/c", id="go", sharing="locked", mode=0o700, uid=1000, gid=1000,
           read_only=False)),
    ("type=cache,target=/c,ro", Mount(type="cache", target="/c", read_only=True)),
    ("type=tmpfs,destination=/t,size=64m", Mount(type="tmpfs", target="/t", size_limit=64 << 20,
                                                 read_only=False)),
    ("type=secret,id=tok,env=TOKEN,required", Mount(type="secret", id="tok", env="TOKEN",
                                                    required=True)),
    ("type=secret,source=/run/s,target=/s,required=false,mode=0400",
     Mount(type="secret", source="/run/s", target="/s", mode=0o400)),
    ("type=ssh,id=default,required=true,uid=1", Mount(type="ssh", id="default", required=True,
                                                      uid=1)),
    ("type=ssh", Mount(type="ssh")),
    ("TYPE=tmpfs,Target=/t", Mount(type="tmpfs", target="/t", read_only=False)),
])
def test_mount_values_as_buildkit_reads_them(value, expected):
    assert parse_mount(value) == expected
    assert one(f"RUN --mount={value} true").mounts == (value,)


@pytest.mark.parametrize("value,message", [
    ("type=volume,target=/x", 'unsupported mount type "volume"'),
    ("type=cach,target=/x", 'unsupported mount type "cach" (did you mean cache?)'),
    ("type=cache,sharing=public,target=/x", 'unsupported sharing value "public"'),
    ("type=cache,sharing=lock,target=/x", 'unsupported sharing value "lock" (did you mean locked?)'),
    ("type=bind,sharing=shared,target=/x", "invalid cache sharing set for bind mount"),
    ("type=bind,target=/x,mode=0755", 'mode not allowed for "bind" type mounts'),
    ("type=tmpfs,target=/x,uid=1", 'uid not allowed for "tmpfs" type mounts'),
    ("target=/x,gid=0", 'gid not allowed for "bind" type mounts'),
    ("type=cache,target=/x,mode=999", "invalid value 999 for mode"),
    ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
    ("type=cache,target=/x,gid=4294967296", "invalid value 4294967296 for gid"),
    ("type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=bind,target=/x,readwrite=yes", "invalid value for readwrite: yes"),
    ("type=cache,target=/x,size=1g", "unexpected key 'size' for mount type 'cache'"),
    ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
    ("required,type=secret,id=x", "unexpected key 'required' for mount type 'bind'"),
    ("type=cache,target=/x,required=true", "unexpected key 'required' for mount type 'cache'"),
    ("type=bind,target", "invalid field 'target' must be a key=value pair"),
    ("type=bind,tagret=/x", "unexpected key 'tagret' in 'tagret=/x' (did you mean target?)"),
    ("type=bind,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=secret,id=a,from=b", "secret mount should not have a from"),
    ("type=secret,id=a,sharing=shared", "secret mount should not define sharing"),
    ("from=$STAGE,target=/x", "'from' doesn't support variable expansion, define alias stage instead"),
    ('"target=/x,a\\"b"', 'failed to parse csv mounts: parse error on line 1, column 12: '
                          'bare " in non-quoted-field'),
])
def test_mount_errors_name_the_line(value, message):
    with pytest.raises(ParseError) as e:
        parse(f"FROM a\nRUN --mount={value} true\n")
    assert e.value.message == message and e.value.line == 2


def test_mount_values_with_variables_are_checked_after_expansion():
    # BuildKit defers everything but the from= rule to the expanded value
    assert one("RUN --mount=type=$T,target=/x true").mounts == ("type=$T,target=/x",)
    assert parse_mount("type=$T,target=$D", {"$T": "cache", "$D": "/c"}.get) == Mount(
        type="cache", target="/c", read_only=False)
    with pytest.raises(MountSyntaxError, match='unsupported mount type "nope"'):
        parse_mount("type=$T,target=/x", lambda v: "nope" if v == "$T" else v)


def test_from_may_end_with_a_dollar():
    assert parse_mount("from=a$,target=/x").from_ == "a$"


@pytest.mark.parametrize("text,size", [("64m", 64 << 20), ("1GiB", 1 << 30), ("1.5k", 1536),
                                       ("100", 100), ("2 MB", 2 << 20)])
def test_tmpfs_sizes_are_binary_units(text, size):
    assert ram_in_bytes(text) == size


# -- audit additions: heredocs ------------------------------------------------------------------


def test_run_heredoc_alone_is_a_script_for_the_default_shell():
    r = one("RUN <<EOF\n#!/usr/bin/env python3\nprint('hi')\nEOF")
    assert r.command.args == ("<<EOF",) and r.command.shell_form
    assert r.heredocs[0].content.startswith("#!/usr/bin/env python3\n")


def test_onbuild_heredoc_bodies_are_read_and_kept_in_the_expression():
    o = one("ONBUILD RUN <<-EOT bash\n\techo one\n\tEOT")
    assert o.trigger.heredocs == (Heredoc("EOT", "\techo one\n", chomp=True),)
    assert o.expression == "RUN <<-EOT bash\n\techo one\nEOT"
    assert o.location == SourceRange(1, 3)


def test_chomp_strips_tabs_only_not_spaces():
    h = one("RUN <<-EOF\n\t  x\n  \ty\nEOF").heredocs[0]
    assert h.body == "  x\n  \ty\n"
    with pytest.raises(ParseError, match="unterminated heredoc"):
        parse_instructions("RUN <<EOF\n\tEOF\n")  # without "-" a tabbed terminator is a body line


def test_quoted_delimiter_variants_and_escaped_heredoc_words():
    assert one("RUN <<'E O'\nx\nE O").heredocs[0] == Heredoc("E O", "x\n", expand=False)
    assert one('RUN <<\\EOF\nx\nEOF').heredocs[0] == Heredoc("EOF", "x\n", expand=True)
    assert one("RUN echo \\<<EOF").heredocs == ()
    with pytest.raises(ParseError, match="unterminated heredoc"):
        parse_instructions("RUN cat <<EOF>out\nx\nEOF")  # the word's name is "EOF>out"
    assert one("RUN cat <<EOF >out\nx\nEOF").heredocs[0].name == "EOF"


def test_several_heredocs_read_in_order_and_an_unterminated_second_one_names_the_line():
    c = one("COPY <<A <<B <<C /d/\n1\nA\n2\nB\n3\nC")
    assert [(h.name, h.content) for h in c.heredocs] == [("A", "1\n"), ("B", "2\n"), ("C", "3\n")]
    with pytest.raises(ParseError) as e:
        parse("FROM a\nRUN true\nCOPY <<A <<B /d/\n1\nA\n2\n")
    assert e.value.line == 3 and e.value.end_line == 6 and e.value.message == "unterminated heredoc"


def test_fd_prefixes_are_numbers_and_a_heredoc_needs_a_name():
    r = one("RUN 0<<A 12<<-B x\nA\nB")
    assert [(h.name, h.fd, h.chomp) for h in r.heredocs] == [("A", 0, False), ("B", 12, True)]
    assert one("RUN echo << x").heredocs == ()  # "<<" alone is not a heredoc word
