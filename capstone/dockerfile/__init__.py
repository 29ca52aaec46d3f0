"""The Dockerfile language, read exactly as BuildKit reads it.

``parse(text_or_bytes, file="Dockerfile") -> Dockerfile`` gives typed, frozen instructions
(:mod:`.instructions`) with their line ranges; words and flag values stay raw for the
expansion step. ``parse_syntax_tree`` stops one layer earlier at BuildKit's syntax tree, which
``dump`` prints in the S-expression format of BuildKit's parser test files.
``build_stage_graph(dockerfile, expand)`` finds which stage needs which and what a
``--target`` builds. Errors are :class:`~capstone.errors.ParseError` /
:class:`~capstone.errors.StageError` with ``Dockerfile:LINE``.

Modules: ``parser`` (lines, continuations, comments, heredoc bodies), ``directives``,
``nodes`` (line parsers: JSON/shell forms, words, ENV pairs), ``heredoc``, ``flags``,
``commands`` (per-instruction checks), ``instructions`` (the model), ``dump``, ``stages``,
``mounts`` (``--mount`` fields).
"""

from .args import BuildVariables, StageVariables, parse_build_args
from .dump import dump, go_quote
from .instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    CommandLine,
    Copy,
    Directive,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    ParseWarning,
    Run,
    Shell,
    SourceRange,
    Stage,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from .parser import parse, parse_file, parse_instructions, parse_syntax_tree
from .shell import Expansion, Lexer
from .stages import StageGraph, StagePlan, build_stage_graph

__all__ = [
    "parse", "parse_file", "parse_instructions", "parse_syntax_tree", "dump", "go_quote",
    "build_stage_graph", "StageGraph", "StagePlan",
    "Lexer", "Expansion", "BuildVariables", "StageVariables", "parse_build_args",
    "Dockerfile", "Stage", "Instruction", "SourceRange", "Directive", "ParseWarning",
    "CommandLine", "Heredoc", "KeyValue", "ArgDecl",
    "From", "Run", "Cmd", "Entrypoint", "Shell", "Env", "Label", "Maintainer", "Expose", "Copy",
    "Add", "Volume", "User", "Workdir", "Arg", "Stopsignal", "Healthcheck", "Onbuild",
]
