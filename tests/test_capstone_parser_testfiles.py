"""BuildKit's parser test files, ported: Dockerfile text in, ``Node.Dump()`` text out.

The cases come from moby/buildkit ``frontend/dockerfile/parser/testfiles/*/{Dockerfile,result}``
(and the moby/moby copies they started from). Two adaptations, both following later BuildKit
changes: ENV/LABEL nodes carry a third separator argument (``"="``, or ``""`` for the legacy
``ENV k v`` form; buildkit#4923), and a comment line inside a continued instruction no longer
ends the instruction; an empty continuation line is skipped rather than ending it.
"""

from __future__ import annotations

import pytest

from capstone.dockerfile import dump, parse_syntax_tree

DOCKER_DOCKERFILE = """\
# This file describes the standard way to build Docker, using docker
#
# Usage:
#
# # Assemble the full dev environment. This is slow the first time.
# docker build -t docker .
#
# # Mount your source in an interactive container for quick testing:
# docker run -v `pwd`:/go/src/github.com/docker/docker --privileged -i -t docker bash
#
# # Run the test suite:
# docker run --privileged docker hack/make.sh test-unit test-integration test-docker-py
#
# Note: AppArmor used to mess with privileged mode, but this is no longer
# the case. Therefore, you don't have to disable it anymore.
#

FROM\tubuntu:14.04
LABEL\tmaintainer\tTianon Gravi <admwiggin@gmail.com> (@tianon)

# Packaged dependencies
RUN\tapt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -yq \\
\tapt-utils \\
\taufs-tools \\
\tautomake \\
\tbtrfs-tools \\
\tbuild-essential \\
\tcurl \\
\tdpkg-sig \\
\tgit \\
\tiptables \\
\tlibapparmor-dev \\
\tlibcap-dev \\
\tmercurial \\
\tpandoc \\
\tparallel \\
\treprepro \\
\truby1.9.1 \\
\truby1.9.1-dev \\
\ts3cmd=1.1.0* \\
\t--no-install-recommends

# Get lvm2 source for compiling statically
RUN\tgit clone --no-checkout https://sourceware.org/git/lvm2.git /usr/local/lvm2 && cd /usr/local/lvm2 && git checkout -q v2_02_103
# see https://git.fedorahosted.org/cgit/lvm2.git/refs/tags for release tags
# note: we don't use "git clone -b" above because it then spews big nasty warnings about 'detached HEAD' state that we can't silence as easily as we can silence them using "git checkout" directly

# Compile and install lvm2
RUN\tcd /usr/local/lvm2 && ./configure --enable-static_link && make device-mapper && make install_device-mapper
# see https://git.fedorahosted.org/cgit/lvm2.git/tree/INSTALL

# Install Go
RUN\tcurl -sSL https://golang.org/dl/go1.3.src.tar.gz | tar -v -C /usr/local -xz
ENV\tPATH\t/usr/local/go/bin:$PATH
ENV\tGOPATH\t/go:/go/src/github.com/docker/docker/vendor
RUN\tcd /usr/local/go/src && ./make.bash --no-clean 2>&1

# Compile Go for cross compilation
ENV\tDOCKER_CROSSPLATFORMS\t\\
\tlinux/386 linux/arm \\
\tdarwin/amd64 darwin/386 \\
\tfreebsd/amd64 freebsd/386 freebsd/arm
# (set an explicit GOARM of 5 for maximum compatibility)
ENV\tGOARM\t5
RUN\tcd /usr/local/go/src && bash -xc 'for platform in $DOCKER_CROSSPLATFORMS; do GOOS=${platform%/*} GOARCH=${platform##*/} ./make.bash --no-clean 2>&1; done'

# Grab Go's cover tool for dead-simple code coverage testing
RUN\tgo get golang.org/x/tools/cmd/cover

# TODO replace FPM with some very minimal debhelper stuff
RUN\tgem install --no-rdoc --no-ri fpm --version 1.0.2

# Get the "busybox" image source so we can build locally instead of pulling
RUN\tgit clone -b buildroot-2014.02 https://github.com/jpetazzo/docker-busybox.git /docker-busybox

# Setup s3cmd config
RUN\t/bin/echo -e '[default]\\naccess_key=$AWS_ACCESS_KEY\\nsecret_key=$AWS_SECRET_KEY' > /.s3cfg

# Set user.email so crosbymichael's in-container merge commits go smoothly
RUN\tgit config --global user.email 'docker-dummy@example.com'

# Add an unprivileged user to be used for tests which need it
RUN groupadd -r docker
RUN useradd --create-home --gid docker unprivilegeduser

VOLUME\t/var/lib/docker
WORKDIR\t/go/src/github.com/docker/docker
ENV\tDOCKER_BUILDTAGS\tapparmor selinux

# Wrap all commands in the "docker-in-docker" script to allow nested containers
ENTRYPOINT\t["hack/dind"]

# Upload docker source
COPY\t.\t/go/src/github.com/docker/docker
"""

DOCKER_RESULT = r"""(from "ubuntu:14.04")
(label "maintainer" "Tianon Gravi <admwiggin@gmail.com> (@tianon)" "")
(run "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -yq \tapt-utils \taufs-tools \tautomake \tbtrfs-tools \tbuild-essential \tcurl \tdpkg-sig \tgit \tiptables \tlibapparmor-dev \tlibcap-dev \tmercurial \tpandoc \tparallel \treprepro \truby1.9.1 \truby1.9.1-dev \ts3cmd=1.1.0* \t--no-install-recommends")
(run "git clone --no-checkout https://sourceware.org/git/lvm2.git /usr/local/lvm2 && cd /usr/local/lvm2 && git checkout -q v2_02_103")
(run "cd /usr/local/lvm2 && ./configure --enable-static_link && make device-mapper && make install_device-mapper")
(run "curl -sSL https://golang.org/dl/go1.3.src.tar.gz | tar -v -C /usr/local -xz")
(env "PATH" "/usr/local/go/bin:$PATH" "")
(env "GOPATH" "/go:/go/src/github.com/docker/docker/vendor" "")
(run "cd /usr/local/go/src && ./make.bash --no-clean 2>&1")
(env "DOCKER_CROSSPLATFORMS" "linux/386 linux/arm \tdarwin/amd64 darwin/386 \tfreebsd/amd64 freebsd/386 freebsd/arm" "")
(env "GOARM" "5" "")
(run "cd /usr/local/go/src && bash -xc 'for platform in $DOCKER_CROSSPLATFORMS; do GOOS=${platform%/*} GOARCH=${platform##*/} ./make.bash --no-clean 2>&1; done'")
(run "go get golang.org/x/tools/cmd/cover")
(run "gem install --no-rdoc --no-ri fpm --version 1.0.2")
(run "git clone -b buildroot-2014.02 https://github.com/jpetazzo/docker-busybox.git /docker-busybox")
(run "/bin/echo -e '[default]\\naccess_key=$AWS_ACCESS_KEY\\nsecret_key=$AWS_SECRET_KEY' > /.s3cfg")
(run "git config --global user.email 'docker-dummy@example.com'")
(run "groupadd -r docker")
(run "useradd --create-home --gid docker unprivilegeduser")
(volume "/var/lib/docker")
(workdir "/go/src/github.com/docker/docker")
(env "DOCKER_BUILDTAGS" "apparmor selinux" "")
(entrypoint "hack/dind")
(copy "." "/go/src/github.com/docker/docker")
"""

HEALTH_DOCKERFILE = """\
FROM debian
ADD check.sh main.sh /app/
CMD /app/main.sh
HEALTHCHECK
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \\
  CMD /app/check.sh --quiet
HEALTHCHECK CMD
HEALTHCHECK   CMD   a b
HEALTHCHECK --timeout=3s CMD ["foo"]
HEALTHCHECK CONNECT TCP 7000
HEALTHCHECK --start-period=0s --interval=5s --timeout=0s --retries=0 CMD ["foo"]
"""

HEALTH_RESULT = """\
(from "debian")
(add "check.sh" "main.sh" "/app/")
(cmd "/app/main.sh")
(healthcheck)
(healthcheck ["--interval=5s" "--timeout=3s" "--retries=3"] "CMD" "/app/check.sh --quiet")
(healthcheck "CMD")
(healthcheck "CMD" "a b")
(healthcheck ["--timeout=3s"] "CMD" "foo")
(healthcheck "CONNECT" "TCP 7000")
(healthcheck ["--start-period=0s" "--interval=5s" "--timeout=0s" "--retries=0"] "CMD" "foo")
"""

INFLUXDB_DOCKERFILE = """\
FROM ubuntu:14.04

RUN apt-get update && apt-get install --yes --force-yes apt-transport-https curl
RUN curl -sL https://repos.influxdata.com/influxdb.key | apt-key add -
RUN /bin/bash -c 'source /etc/lsb-release && echo "deb https://repos.influxdata.com/${DISTRIB_ID,,} ${DISTRIB_CODENAME} stable"' | tee "/etc/apt/sources.list.d/influxdb.list"
RUN apt-get update && sudo apt-get install influxdb

CMD service influxdb start

EXPOSE 8086
EXPOSE 8088
EXPOSE 8089/udp
"""

INFLUXDB_RESULT = r"""(from "ubuntu:14.04")
(run "apt-get update && apt-get install --yes --force-yes apt-transport-https curl")
(run "curl -sL https://repos.influxdata.com/influxdb.key | apt-key add -")
(run "/bin/bash -c 'source /etc/lsb-release && echo \"deb https://repos.influxdata.com/${DISTRIB_ID,,} ${DISTRIB_CODENAME} stable\"' | tee \"/etc/apt/sources.list.d/influxdb.list\"")
(run "apt-get update && sudo apt-get install influxdb")
(cmd "service influxdb start")
(expose "8086")
(expose "8088")
(expose "8089/udp")
"""

ADD_COPY_JSON_DOCKERFILE = """\
FROM\tubuntu:14.04
MAINTAINER\tSeongyeol Lim <seongyeol37@gmail.com>

COPY\t.\t/go/src/github.com/docker/docker
ADD\t\t.\t/
ADD\t\tnull /
COPY\tnullfile /tmp
ADD\t\t[ "vimrc", "/tmp" ]
COPY\t[ "bashrc", "/tmp" ]
COPY\t[ "test file", "/tmp" ]
ADD\t\t[ "test file", "/tmp/test file" ]
"""

ADD_COPY_JSON_RESULT = """\
(from "ubuntu:14.04")
(maintainer "Seongyeol Lim <seongyeol37@gmail.com>")
(copy "." "/go/src/github.com/docker/docker")
(add "." "/")
(add "null" "/")
(copy "nullfile" "/tmp")
(add "vimrc" "/tmp")
(copy "bashrc" "/tmp")
(copy "test file" "/tmp")
(add "test file" "/tmp/test file")
"""

CONTINUE_INDENT_DOCKERFILE = """\
FROM ubuntu:14.04

RUN echo hello\\
  world\\
  goodnight  \\
  moon\\
  light\\
ning
RUN echo hello  \\
  world
RUN echo hello  \\
world
RUN echo hello \\
goodbye\\
frog
RUN echo hi \\
 \\
 world \\
\\
 good\\
\\
night
RUN echo goodbye\\
frog
RUN echo good\\
bye\\
frog

RUN echo hello \\
# this is a comment that breaks escape continuation
RUN echo this is some more useful stuff
"""

# The last instruction: modern BuildKit drops the comment line and keeps continuing.
CONTINUE_INDENT_RESULT = """\
(from "ubuntu:14.04")
(run "echo hello  world  goodnight    moon  lightning")
(run "echo hello    world")
(run "echo hello  world")
(run "echo hello goodbyefrog")
(run "echo hi   world  goodnight")
(run "echo goodbyefrog")
(run "echo goodbyefrog")
(run "echo hello RUN echo this is some more useful stuff")
"""

EMPTY_LINE_AFTER_ESCAPE_DOCKERFILE = """\
FROM busybox

# The following will create two instructions
# `Run foo`
# `bar`
# because empty line will break the escape.
# The parser will generate the following:
# (from "busybox")
# (run "foo")
# (bar "")
# And `bar` will return an error instruction later
# Note: Parse() will not immediately error out.
RUN foo \\

bar
"""

# BuildKit now skips the empty continuation line (with a NoEmptyContinuation warning).
EMPTY_LINE_AFTER_ESCAPE_RESULT = """\
(from "busybox")
(run "foo bar")
"""

ESCAPE_BACKTICK_DOCKERFILE = """\
# escape = `

FROM image
MAINTAINER foo@bar.com
ENV GOPATH `
\\go
# Comment with backslash \\
ENV BAR baz
COPY foo.sh `
  bar.sh `
  /
RUN Get-Item c:\\windows\\system32
"""

ESCAPE_BACKTICK_RESULT = r"""(from "image")
(maintainer "foo@bar.com")
(env "GOPATH" "\\go" "")
(env "BAR" "baz" "")
(copy "foo.sh" "bar.sh" "/")
(run "Get-Item c:\\windows\\system32")
"""

BRIMSTONE_LIKE_DOCKERFILE = """\
FROM brimstone/ubuntu:14.04

CMD []

ENTRYPOINT ["/usr/bin/consul", "agent", "-server", "-data-dir=/consul", "-client=0.0.0.0", "-ui-dir=/webui"]

EXPOSE 8500 8600 8400 8301 8302

RUN apt-get update \\
    && apt-get install -y unzip wget \\
\t&& apt-get clean \\
\t&& rm -rf /var/lib/apt/lists

RUN cd /tmp \\
    && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip \\
       -O web_ui.zip \\
    && unzip web_ui.zip \\
    && mv dist /webui \\
    && rm web_ui.zip

RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends unzip wget \\
    && cd /tmp \\
    && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip \\
       -O web_ui.zip \\
    && unzip web_ui.zip \\
    && mv dist /webui \\
    && rm web_ui.zip \\
\t&& apt-get purge -y --auto-remove unzip wget \\
\t&& rm -rf /var/lib/apt/lists/*
"""

BRIMSTONE_LIKE_RESULT = """\
(from "brimstone/ubuntu:14.04")
(cmd)
(entrypoint "/usr/bin/consul" "agent" "-server" "-data-dir=/consul" "-client=0.0.0.0" "-ui-dir=/webui")
(expose "8500" "8600" "8400" "8301" "8302")
(run "apt-get update     && apt-get install -y unzip wget \\t&& apt-get clean \\t&& rm -rf /var/lib/apt/lists")
(run "cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip")
(run "apt-get update     && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends unzip wget     && cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip \\t&& apt-get purge -y --auto-remove unzip wget \\t&& rm -rf /var/lib/apt/lists/*")
"""

ENV_DOCKERFILE = """\
FROM ubuntu
ENV name value
ENV name=value
ENV name=value name2=value2
ENV name="value value1"
ENV name=value\\ value2
ENV name="value'quote space'value2"
ENV name='value"double quote"value2'
ENV name=value\\ value2 name2=value2\\ value3
ENV name="a\\"b"
ENV name="a\\'b"
ENV name='a\\'b'
ENV name='a\\'b''
ENV name='a\\"b'
ENV name="''"
# don't put anything after the next line - it must be the last line of the
# Dockerfile and it must end with \\
ENV name=value \\
    name1=value1 \\
    name2="value2a \\
           value2b" \\
    name3="value3a\\n\\"value3b\\"" \\
\tname4="value4a\\\\nvalue4b" \\
"""

ENV_RESULT = r"""(from "ubuntu")
(env "name" "value" "")
(env "name" "value" "=")
(env "name" "value" "=" "name2" "value2" "=")
(env "name" "\"value value1\"" "=")
(env "name" "value\\ value2" "=")
(env "name" "\"value'quote space'value2\"" "=")
(env "name" "'value\"double quote\"value2'" "=")
(env "name" "value\\ value2" "=" "name2" "value2\\ value3" "=")
(env "name" "\"a\\\"b\"" "=")
(env "name" "\"a\\'b\"" "=")
(env "name" "'a\\'b'" "=")
(env "name" "'a\\'b''" "=")
(env "name" "'a\\\"b'" "=")
(env "name" "\"''\"" "=")
(env "name" "value" "=" "name1" "value1" "=" "name2" "\"value2a            value2b\"" "=" "name3" "\"value3a\\n\\\"value3b\\\"\"" "=" "name4" "\"value4a\\\\nvalue4b\"" "=")
"""

FLAGS_DOCKERFILE = """\
FROM scratch
COPY foo /tmp/
COPY --user=me foo /tmp/
COPY --doit=true foo /tmp/
COPY --user=me --doit=true foo /tmp/
COPY --doit=true -- foo /tmp/
COPY -- foo /tmp/
CMD --doit [ "a", "b" ]
CMD --doit=true -- [ "a", "b" ]
CMD --doit -- [ ]
"""

FLAGS_RESULT = """\
(from "scratch")
(copy "foo" "/tmp/")
(copy ["--user=me"] "foo" "/tmp/")
(copy ["--doit=true"] "foo" "/tmp/")
(copy ["--user=me" "--doit=true"] "foo" "/tmp/")
(copy ["--doit=true"] "foo" "/tmp/")
(copy "foo" "/tmp/")
(cmd ["--doit"] "a" "b")
(cmd ["--doit=true"] "a" "b")
(cmd ["--doit"])
"""

JSON_DOCKERFILE = """\
CMD []
CMD [""]
CMD ["a"]
CMD ["a","b"]
CMD [ "a", "b" ]
CMD [\t"a", "b" ]
CMD [ "a", "b"\t]
CMD [ "a",\t"b"\t]
CMD [ "a", "b" ] 
CMD ["abc 123", "♥", "☃", "\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000"]
"""

JSON_RESULT = r"""(cmd)
(cmd "")
(cmd "a")
(cmd "a" "b")
(cmd "a" "b")
(cmd "a" "b")
(cmd "a" "b")
(cmd "a" "b")
(cmd "a" "b")
(cmd "abc 123" "♥" "☃" "\" \\ / \b \f \n \r \t \x00")
"""

INVALID_JSON_DOCKERFILE = """\
CMD [ "echo", "look ma, no ending bracket"
CMD [ "echo", "look ma, no ending quote ]
CMD [ "echo", 'single quotes are invalid JSON' ]
CMD [ "echo", "[foo" ]
CMD [ "echo", "[\\"foo\\"]" ]
CMD [ "echo" ] && echo trailing text is not JSON
CMD {"echo": "hi"}
"""

INVALID_JSON_RESULT = r"""(cmd "[ \"echo\", \"look ma, no ending bracket\"")
(cmd "[ \"echo\", \"look ma, no ending quote ]")
(cmd "[ \"echo\", 'single quotes are invalid JSON' ]")
(cmd "echo" "[foo")
(cmd "echo" "[\"foo\"]")
(cmd "[ \"echo\" ] && echo trailing text is not JSON")
(cmd "{\"echo\": \"hi\"}")
"""

ONBUILD_DOCKERFILE = """\
FROM busybox
ONBUILD RUN echo hi
ONBUILD COPY --from=base a b
onbuild run ["echo", "x"]
ONBUILD ADD <<EOF /etc/x
body
EOF
"""

ONBUILD_RESULT = """\
(from "busybox")
(onbuild (run "echo hi"))
(onbuild (copy ["--from=base"] "a" "b"))
(onbuild (run "echo" "x"))
(onbuild (add "<<EOF" "/etc/x"))
"""

HEREDOC_DOCKERFILE = """\
FROM busybox
RUN <<EOF
echo hello
EOF
RUN 3<<EOF cat <&3
fd three
EOF
COPY <<a.txt <<-"b.txt" /dest/
A
a.txt
\tB
\tb.txt
RUN ["<<EOF"]
"""

HEREDOC_RESULT = """\
(from "busybox")
(run "<<EOF")
(run "3<<EOF cat <&3")
(copy "<<a.txt" "<<-\\"b.txt\\"" "/dest/")
(run "<<EOF")
"""

CASES = {
    "docker": (DOCKER_DOCKERFILE, DOCKER_RESULT),
    "health": (HEALTH_DOCKERFILE, HEALTH_RESULT),
    "influxdb": (INFLUXDB_DOCKERFILE, INFLUXDB_RESULT),
    "ADD-COPY-with-JSON": (ADD_COPY_JSON_DOCKERFILE, ADD_COPY_JSON_RESULT),
    "continueIndent": (CONTINUE_INDENT_DOCKERFILE, CONTINUE_INDENT_RESULT),
    "empty-line-after-escape": (EMPTY_LINE_AFTER_ESCAPE_DOCKERFILE, EMPTY_LINE_AFTER_ESCAPE_RESULT),
    "escape-backtick": (ESCAPE_BACKTICK_DOCKERFILE, ESCAPE_BACKTICK_RESULT),
    "brimstone-consuldock": (BRIMSTONE_LIKE_DOCKERFILE, BRIMSTONE_LIKE_RESULT),
    "env": (ENV_DOCKERFILE, ENV_RESULT),
    "flags": (FLAGS_DOCKERFILE, FLAGS_RESULT),
    "json": (JSON_DOCKERFILE, JSON_RESULT),
    "jeztah-invalid-json": (INVALID_JSON_DOCKERFILE, INVALID_JSON_RESULT),
    "onbuild": (ONBUILD_DOCKERFILE, ONBUILD_RESULT),
    "heredoc": (HEREDOC_DOCKERFILE, HEREDOC_RESULT),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_buildkit_testfile_dump_matches_result(name):
    dockerfile, result = CASES[name]
    assert dump(parse_syntax_tree(dockerfile).nodes) == result


def test_dump_is_the_same_from_bytes_and_crlf_line_endings():
    text = DOCKER_DOCKERFILE.replace("\n", "\r\n").encode()
    assert dump(parse_syntax_tree(text).nodes) == DOCKER_RESULT


def test_empty_continuation_line_gives_a_warning_with_the_joined_line():
    tree = parse_syntax_tree(EMPTY_LINE_AFTER_ESCAPE_DOCKERFILE)
    assert [w.rule for w in tree.warnings] == ["NoEmptyContinuation"]
    assert "RUN foo bar" in tree.warnings[0].message
