"""The shell-word lexer: quotes, escapes and ``$variable`` expansion, the way BuildKit does it.

BuildKit (``frontend/dockerfile/shell/lex.go``) does not run a shell to expand ``COPY $SRC
/dst``: it has its own small lexer, shared by buildah and kaniko. This module behaves the same,
case by case (its test tables are ported in ``tests/test_capstone_shell*.py``):

* ``$name`` and ``${name}``; a name is letters, digits and ``_``. ``$1``, ``$999``, ``$@``,
  ``$*``, ``$#``, ``$?``, ``$-``, ``$$``, ``$!`` and ``$0`` are looked up as variables of those
  names (so they are empty); a ``$`` before anything else stays a literal ``$``.
* ``${v:-w}`` ``${v-w}`` (default), ``${v:+w}`` ``${v+w}`` (alternative), ``${v:?msg}``
  ``${v?msg}`` (required); with ``:`` an empty value counts as unset.
* ``${v#p}`` ``${v##p}`` ``${v%p}`` ``${v%%p}`` (shortest/longest prefix/suffix removal) and
  ``${v/p/r}`` ``${v//p/r}`` (first/all replacement). Patterns know ``*`` and ``?``; ``\\*``,
  ``\\?`` and ``\\\\`` are literal, ``\\}`` and ``\\/`` protect the delimiters; any other escape
  in a pattern is an error. They are matched by :mod:`.shellpattern`, without backtracking.
* Single quotes keep everything literal; double quotes expand ``$`` and let the escape
  character protect ``"``, ``$`` and itself (elsewhere it stays); unquoted, the escape character
  protects any next character and is dropped.
* The escape character is ``\\`` or, with ``# escape=`````, the backtick.

``process_words`` also splits the result into words after expansion: quoted text and escaped
characters never split, expanded values do.

Everything else (``${v=w}``, ``${#v}``, ``${v:1:2}``, ``${}``, ``${v:#p}``...) is an
:class:`ExpansionError` whose message is BuildKit's: ``failed to process "<word>": <reason>``.

An expansion may not grow past :data:`MAX_EXPANSION` bytes (``ARG A=$A$A`` line after line
doubles a value: BuildKit would go on until memory runs out). The size is counted while the
result is made, at every level of nesting and inside ``${v//p/r}``, so the work stops there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from part1_overview import model

from ..errors import ExpansionError
from .dump import go_quote
from .shellpattern import ONE, STAR, ShellPattern

__all__ = ["MAX_EXPANSION", "ExpansionError", "Expansion", "Lexer", "env_from_list"]

#: the longest result one word may expand to (characters)
MAX_EXPANSION = 1 << 20


class _Failure(Exception):
    """Raised inside the lexer; wrapped into ExpansionError with the whole word once."""


#: characters Go's unicode.IsSpace accepts (Python's str.isspace adds \x1c-\x1f)
_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: POSIX special parameters (XCU 2.5.2): a name of one character after ``$``
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_REPLACEMENT_CHAR = "\ufffd"  # what Go prints for string(EOF)


@model(frozen=True)
class Expansion:
    """The result of expanding one word: the text, its words, and which variables it used."""

    result: str
    words: tuple[str, ...]
    matched: frozenset[str]  # variables looked up and found
    unmatched: frozenset[str]  # variables looked up and not set


def env_from_list(env: Iterable[str]) -> dict[str, str]:
    """``["K=V", "FLAG"]`` → ``{"K": "V", "FLAG": ""}``; a later entry replaces an earlier one."""
    # part 2 owns Env; imported on first use, so ``capstone parse`` never loads the image models
    from part2_manual_oci import env_to_dict

    return env_to_dict(env)




def _split_fields(text: str) -> list[str]:
    """Go's strings.FieldsFunc(text, unicode.IsSpace)."""
    out: list[str] = []
    start = None
    for i, ch in enumerate(text):
        if ch in _SPACE:
            if start is not None:
                out.append(text[start:i])
                start = None
        elif start is None:
            start = i
    if start is not None:
        out.append(text[start:])
    return out


class _Words:
    """Word splitting of ProcessWords: expanded text splits on white space, quoted text never."""

    __slots__ = ("buf", "words", "in_word")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _SPACE:
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        if s:
            self.buf.append(s)
        self.in_word = True

    def get(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class _Run:
    """One expansion of one word: the scanner position, the environment, the variables used."""

    __slots__ = ("lex", "src", "pos", "end", "env", "raw_escapes", "matched", "unmatched", "limit")

    def __init__(self, lex: "Lexer", word: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.src = word
        # Go's text/scanner skips a byte order mark at the very start
        self.pos = 1 if word.startswith("\ufeff") else 0
        self.end = len(word)
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.limit = lex.max_length

    def grown(self, size: int) -> int:
        """``size`` (of a result being made), refused past the limit."""
        if size > self.limit:
            raise _Failure(f"the expansion is longer than {self.limit} characters")
        return size

    # -- scanner ---------------------------------------------------------------------------
    def peek(self) -> str | None:
        return self.src[self.pos] if self.pos < self.end else None

    def next(self) -> str | None:
        if self.pos < self.end:
            ch = self.src[self.pos]
            self.pos += 1
            return ch
        return None

    def get_env(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        if value is None:
            self.unmatched.add(name)
            return "", False
        self.matched.add(name)
        return value, True

    # -- the grammar -----------------------------------------------------------------------
    def stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Read up to (and consume) ``stop``, or to the end of the word when ``stop`` is None."""
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop, raw_escapes)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        lex = self.lex
        escape = lex.escape
        quotes = not lex.skip_process_quotes
        result: list[str] = []
        words = _Words()
        size = 0  # of what expansions added (the word's own characters are bounded by it)
        while self.pos < self.end:
            ch = self.src[self.pos]
            if ch == stop:
                self.pos += 1
                return "".join(result), words.get()
            if ch == "$":
                value = self.dollar()
                size = self.grown(size + len(value))
                result.append(value)
                words.add_string(value)
            elif quotes and ch == "'":
                value = self.single_quote()
                result.append(value)
                words.add_raw_string(value)
            elif quotes and ch == '"':
                value = self.double_quote()
                size = self.grown(size + len(value))
                result.append(value)
                words.add_raw_string(value)
            else:
                self.pos += 1
                if ch == escape:
                    if raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    # the escape character protects the next one; at the end it just vanishes
                    nxt = self.next()
                    if nxt is None:
                        break
                    ch = nxt
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise _Failure(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def single_quote(self) -> str:
        # XCU 2.2.2: single quotes preserve every character; a single quote cannot be escaped
        raw = self.lex.raw_quotes
        result = []
        ch = self.next()
        if raw:
            result.append(ch)
        while True:
            ch = self.next()
            if ch is None:
                raise _Failure("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if raw:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def double_quote(self) -> str:
        # XCU 2.2.3: inside double quotes only $ is special, and the escape character protects
        # " $ and itself; before anything else it stays literal
        raw = self.lex.raw_quotes
        escape = self.lex.escape
        result = []
        size = 0
        ch = self.next()
        if raw:
            result.append(ch)
        while True:
            ch = self.peek()
            if ch is None:
                raise _Failure("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.pos += 1
                if raw:
                    result.append(ch)
                return "".join(result)
            if ch == "$":
                value = self.dollar()
                size = self.grown(size + len(value))
                result.append(value)
                continue
            self.pos += 1
            if ch == escape:
                if self.raw_escapes:
                    result.append(ch)
                nxt = self.peek()
                if nxt is None:
                    continue  # a trailing escape character is dropped
                if nxt in ('"', "$", escape):
                    self.pos += 1
                    ch = nxt
            result.append(ch)

    def name(self) -> str:
        chars: list[str] = []
        while self.pos < self.end:
            ch = self.src[self.pos]
            if not chars and ch.isdecimal():
                # positional parameter: all the digits
                start = self.pos
                while self.pos < self.end and self.src[self.pos].isdecimal():
                    self.pos += 1
                return self.src[start : self.pos]
            if not chars and ch in _SPECIAL_PARAMS:
                self.pos += 1
                return ch
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            self.pos += 1
            chars.append(ch)
        return "".join(chars)

    def dollar(self) -> str:
        skip_unset = self.lex.skip_unset_env
        self.pos += 1  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and skip_unset:
                return "$" + name
            return value

        self.pos += 1  # the {
        ch = self.peek()
        if ch is None:
            raise _Failure("syntax error: missing '}'")
        if ch in "{}:":
            raise _Failure("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch is None:
            # BuildKit reports "unsupported modifier (\ufffd)" here; the real problem is this
            raise _Failure("syntax error: missing '}'")
        modifier = ch

        if ch == "}":
            value, found = self.get_env(name)
            if not found and skip_unset:
                return "${" + name + "}"
            return value

        if ch == "/":
            return self.substitute(name)

        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            modifier += ch if ch is not None else _REPLACEMENT_CHAR
        if ch is not None and (null_is_unset or ch in "+-?#%"):
            pattern_word = ch in "#%"
            if null_is_unset and pattern_word:
                # ${v:#p} and ${v:%p} exist in no shell
                raise _Failure(f"unsupported modifier ({modifier}) in substitution")
            word = self.closing_word(pattern_word)
            value, found = self.get_env(name)
            if skip_unset and not found:
                return "${" + name + modifier + word + "}"
            empty = not found or (null_is_unset and value == "")
            if ch == "-":
                return word if empty else value
            if ch == "+":
                return "" if empty else word
            if ch == "?":
                if not found:
                    raise _Failure(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _Failure(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            if ch in "#%":
                greedy = word.startswith(ch)
                if greedy:
                    word = word[1:]
                if ch == "%":
                    return _trim_suffix(word, value, greedy)
                return _trim_prefix(word, value, greedy)
            raise _Failure(f"unsupported modifier ({modifier}) in substitution")
        if ch is None:
            raise _Failure("syntax error: missing '}'")
        raise _Failure(f"unsupported modifier ({modifier}) in substitution")

    def closing_word(self, raw_escapes: bool) -> str:
        try:
            word, _ = self.stop_on("}", raw_escapes)
        except _Failure:
            if self.peek() is None:
                raise _Failure("syntax error: missing '}'") from None
            raise
        return word

    def substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        try:
            pattern, _ = self.stop_on("/", True)
        except _Failure:
            if self.peek() is None:
                raise _Failure("syntax error: missing '/' in ${}") from None
            raise
        replacement = self.closing_word(True)
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        found = ShellPattern(_pattern_tokens(pattern))
        if replace_all:
            return _go_replace_all(found, value, replacement, self)
        m = found.search(value, 0)
        if m is None:
            return value
        return value[: m[0]] + replacement + value[m[1] :]


def _pattern_tokens(pattern: str) -> list:
    """A ``${v#pattern}`` pattern as :mod:`.shellpattern` tokens: ``*`` any run, ``?`` one
    character; ``\\*``, ``\\?`` and ``\\\\`` literal, ``\\}`` and ``\\/`` the delimiter itself."""
    out: list = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(STAR)
        elif ch == "?":
            out.append(ONE)
        elif ch == "\\":
            nxt = pattern[i] if i < n else None
            if nxt in ("}", "/"):
                continue  # the escape protected a delimiter of ${}; it is not part of the pattern
            i += 1
            if nxt not in ("*", "?", "\\"):
                shown = _REPLACEMENT_CHAR if nxt is None else nxt
                raise _Failure(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append(nxt)
        else:
            out.append(ch)
    return out


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    end = ShellPattern(_pattern_tokens(pattern)).prefix(value, longest=greedy)
    return value if end is None else value[end:]


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each escape in front of the character it protects."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i != n - 1:
            out.append("\\" + pattern[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # the shortest (longest) suffix is the shortest (longest) prefix of the reversed value,
    # for the pattern reversed (before it is read, as BuildKit: its errors show it reversed)
    end = ShellPattern(_pattern_tokens(_reverse_pattern(pattern))).prefix(value[::-1], longest=greedy)
    return value if end is None else value[: len(value) - end]


def _go_template(template: str, match: str) -> str:
    """Go's Regexp.Expand: ``$$`` is ``$``, ``$0``/``${0}`` the match, other names empty."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        brace = i < n and template[i] == "{"
        k = i + 1 if brace else i
        start = k
        while k < n and (template[k].isalpha() or template[k].isdecimal() or template[k] == "_"):
            k += 1
        name = template[start:k]
        if not name or (brace and (k >= n or template[k] != "}")):
            out.append("$")  # malformed: the $ is literal
            continue
        i = k + 1 if brace else k
        if name == "0":
            out.append(match)
        # the pattern has no groups: every other number or name expands to nothing
    return "".join(out)


def _go_replace_all(pattern: ShellPattern, value: str, template: str, run: _Run) -> str:
    """Regexp.ReplaceAllString: an empty match right after a match is not replaced again.
    (``run`` bounds the result: each character of ``value`` may become a whole template.)"""
    out: list[str] = []
    size = 0
    last_end = 0
    search = 0
    n = len(value)
    while search <= n:
        m = pattern.search(value, search)
        if m is None:
            break
        a0, a1 = m
        out.append(value[last_end:a0])
        size = run.grown(size + a0 - last_end)
        if a1 > last_end or a0 == 0:
            out.append(_go_template(template, value[a0:a1]))
            size = run.grown(size + len(out[-1]))
        last_end = a1
        if search + 1 > a1:
            search += 1
        else:
            search = a1
    out.append(value[last_end:])
    return "".join(out)


class Lexer:
    """BuildKit's shell-word lexer.

    ``escape`` is the Dockerfile's escape character (``\\`` or `````). The flags mirror
    BuildKit's: ``raw_quotes`` keeps quote characters in the result, ``raw_escapes`` keeps
    escape characters, ``skip_process_quotes`` treats quotes as ordinary characters and
    ``skip_unset_env`` leaves references to unset variables as they were written.
    ``max_length``: the longest result a word may expand to (an :class:`ExpansionError` past it).

    ``env`` is a mapping (or a list of ``"K=V"`` strings, the later winning). Names are
    case-sensitive, as on Linux.
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
        max_length: int = MAX_EXPANSION,
    ) -> None:
        if len(escape) != 1:
            raise ValueError(f"escape must be one character, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env
        self.max_length = max_length

    def __repr__(self) -> str:
        return f"Lexer(escape={self.escape!r})"

    def process_word_with_matches(self, word: str, env: Mapping[str, str] | Iterable[str]) -> Expansion:
        """Expand ``word``; also report which variables it used and which were unset."""
        if not isinstance(env, Mapping):
            env = env_from_list(env)
        if self._plain(word):
            # nothing to expand, quote or escape: the word is itself, split on white space
            return Expansion(word, tuple(_split_fields(word)), frozenset(), frozenset())
        run = _Run(self, word, env)
        try:
            result, words = run.stop_on(None, run.raw_escapes)
        except _Failure as e:
            raise ExpansionError(f"failed to process {go_quote(word)}: {e}") from None
        except RecursionError:
            raise ExpansionError(f"failed to process {go_quote(word)}: nested too deeply") from None
        return Expansion(result, tuple(words), frozenset(run.matched), frozenset(run.unmatched))

    def _plain(self, word: str) -> bool:
        if "$" in word or self.escape in word or word.startswith("\ufeff"):
            return False
        return self.skip_process_quotes or ("'" not in word and '"' not in word)

    def process_word(self, word: str, env: Mapping[str, str] | Iterable[str]) -> str:
        """Expand ``word`` into one string (white space kept)."""
        return self.process_word_with_matches(word, env).result

    def process_words(self, word: str, env: Mapping[str, str] | Iterable[str]) -> list[str]:
        """Expand ``word`` and split it into words the way a shell would, after expansion."""
        return list(self.process_word_with_matches(word, env).words)
