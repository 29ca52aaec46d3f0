"""BuildKit's parser test files: Dockerfile text in, ``Node.Dump()`` text out.

The cases are the ``testfiles/*/{Dockerfile,result}`` pairs of BuildKit's parser
(``frontend/dockerfile/parser/testfiles``: docker, health, influxdb) and of the moby/moby copy
they started from (``builder/dockerfile/parser/testfiles``: all the others), the Dockerfiles
exactly as published. The results are the published ones with the changes later BuildKit made
to its parser, each read in BuildKit's current source:

* ENV and LABEL nodes carry a third node per pair, the separator: ``"="`` for ``KEY=value``,
  ``""`` for the legacy ``KEY value`` form (``line_parsers.go``: ``newKeyValueNode(key, value,
  sep)``; ``Node.Dump`` prints every node of the ``Next`` chain);
* a comment line inside a continued instruction is skipped and the instruction goes on
  (``continueIndent``; ``Parse``: ``if isComment(...) { continue }``);
* an empty continuation line is skipped, with a warning, instead of ending the instruction
  (``empty-line-after-escape``; ``isEmptyContinuationLine``);
* the directive regexp takes the whole value, so ``# escape = ``````  is an invalid escape
  token (``escape-nonewline``; moby's old regexp read a single character);
* ``escape`` and ``escape-after-comment`` have no result file in the copy we could read; their
  expected dumps are written here from the rules they test.

Heredoc bodies never appear in a dump: ``Node.Dump`` prints ``Value``, ``Flags`` and the
``Next`` chain only, so ``RUN <<EOF`` dumps as ``(run "<<EOF")``. The ``ours-*`` cases are not
BuildKit files; they pin that down and other current-BuildKit behaviour.
"""

from __future__ import annotations

import pytest

from capstone.dockerfile import dump, parse_syntax_tree
from capstone.errors import ParseError

# -- docker, influxdb (BuildKit's own copies) --------------------------------------------------

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


# -- ADD-COPY-with-JSON ------------------------------------------------------------------------

ADD_COPY_WITH_JSON_DOCKERFILE = """\
FROM\tubuntu:14.04
LABEL\tmaintainer\tSeongyeol Lim <seongyeol37@gmail.com>

COPY\t.\t/go/src/github.com/docker/docker
ADD\t\t.\t/
ADD\t\tnull /
COPY\tnullfile /tmp
ADD\t\t[ "vimrc", "/tmp" ]
COPY\t[ "bashrc", "/tmp" ]
COPY\t[ "test file", "/tmp" ]
ADD\t\t[ "test file", "/tmp/test file" ]
"""
ADD_COPY_WITH_JSON_RESULT = """\
(from "ubuntu:14.04")
(label "maintainer" "Seongyeol Lim <seongyeol37@gmail.com>" "")
(copy "." "/go/src/github.com/docker/docker")
(add "." "/")
(add "null" "/")
(copy "nullfile" "/tmp")
(add "vimrc" "/tmp")
(copy "bashrc" "/tmp")
(copy "test file" "/tmp")
(add "test file" "/tmp/test file")
"""

# -- brimstone-consuldock ----------------------------------------------------------------------

BRIMSTONE_CONSULDOCK_DOCKERFILE = """\
#escape=\\
FROM brimstone/ubuntu:14.04

LABEL maintainer brimstone@the.narro.ws

# TORUN -v /var/run/docker.sock:/var/run/docker.sock

ENV GOPATH /go

# Set our command
ENTRYPOINT ["/usr/local/bin/consuldock"]

# Install the packages we need, clean up after them and us
RUN apt-get update \\
\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\
    && apt-get install -y --no-install-recommends git golang ca-certificates \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists \\

\t&& go get -v github.com/brimstone/consuldock \\
    && mv $GOPATH/bin/consuldock /usr/local/bin/consuldock \\

\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\
\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\
\t&& rm /tmp/dpkg.* \\
\t&& rm -rf $GOPATH
"""
BRIMSTONE_CONSULDOCK_RESULT = r"""(from "brimstone/ubuntu:14.04")
(label "maintainer" "brimstone@the.narro.ws" "")
(env "GOPATH" "/go" "")
(entrypoint "/usr/local/bin/consuldock")
(run "apt-get update \t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get install -y --no-install-recommends git golang ca-certificates     && apt-get clean     && rm -rf /var/lib/apt/lists \t&& go get -v github.com/brimstone/consuldock     && mv $GOPATH/bin/consuldock /usr/local/bin/consuldock \t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \t&& rm /tmp/dpkg.* \t&& rm -rf $GOPATH")
"""

# -- brimstone-docker-consul -------------------------------------------------------------------

BRIMSTONE_DOCKER_CONSUL_DOCKERFILE = """\
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
\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\
    && apt-get install -y --no-install-recommends unzip wget \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists \\

    && cd /tmp \\
    && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip \\
       -O web_ui.zip \\
    && unzip web_ui.zip \\
    && mv dist /webui \\
    && rm web_ui.zip \\

\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\
\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\
\t&& rm /tmp/dpkg.*

ENV GOPATH /go

RUN apt-get update \\
\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\
    && apt-get install -y --no-install-recommends git golang ca-certificates build-essential \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists \\

\t&& go get -v github.com/hashicorp/consul \\
\t&& mv $GOPATH/bin/consul /usr/bin/consul \\

\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\
\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\
\t&& rm /tmp/dpkg.* \\
\t&& rm -rf $GOPATH
"""
BRIMSTONE_DOCKER_CONSUL_RESULT = r"""(from "brimstone/ubuntu:14.04")
(cmd)
(entrypoint "/usr/bin/consul" "agent" "-server" "-data-dir=/consul" "-client=0.0.0.0" "-ui-dir=/webui")
(expose "8500" "8600" "8400" "8301" "8302")
(run "apt-get update     && apt-get install -y unzip wget \t&& apt-get clean \t&& rm -rf /var/lib/apt/lists")
(run "cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip")
(run "apt-get update \t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get install -y --no-install-recommends unzip wget     && apt-get clean     && rm -rf /var/lib/apt/lists     && cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip \t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \t&& rm /tmp/dpkg.*")
(env "GOPATH" "/go" "")
(run "apt-get update \t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get install -y --no-install-recommends git golang ca-certificates build-essential     && apt-get clean     && rm -rf /var/lib/apt/lists \t&& go get -v github.com/hashicorp/consul \t&& mv $GOPATH/bin/consul /usr/bin/consul \t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \t&& rm /tmp/dpkg.* \t&& rm -rf $GOPATH")
"""

# -- continue-at-eof ---------------------------------------------------------------------------

CONTINUE_AT_EOF_DOCKERFILE = """\
FROM alpine:3.5

RUN something \\"""
CONTINUE_AT_EOF_RESULT = """\
(from "alpine:3.5")
(run "something")
"""

# -- continueIndent ----------------------------------------------------------------------------

CONTINUEINDENT_DOCKERFILE = r"""FROM ubuntu:14.04

RUN echo hello\
  world\
  goodnight  \
  moon\
  light\
ning
RUN echo hello  \
  world
RUN echo hello  \
world
RUN echo hello \
goodbye\
frog
RUN echo hi \
 \
 world \
\
 good\
\
night
RUN echo goodbye\
frog
RUN echo good\
bye\
frog

RUN echo hello \
# this is a comment that breaks escape continuation
RUN echo this is some more useful stuff
"""
CONTINUEINDENT_RESULT = """\
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

# -- cpuguy83-nagios ---------------------------------------------------------------------------

CPUGUY83_NAGIOS_DOCKERFILE = r"""FROM cpuguy83/ubuntu
ENV NAGIOS_HOME /opt/nagios
ENV NAGIOS_USER nagios
ENV NAGIOS_GROUP nagios
ENV NAGIOS_CMDUSER nagios
ENV NAGIOS_CMDGROUP nagios
ENV NAGIOSADMIN_USER nagiosadmin
ENV NAGIOSADMIN_PASS nagios
ENV APACHE_RUN_USER nagios
ENV APACHE_RUN_GROUP nagios
ENV NAGIOS_TIMEZONE UTC

RUN sed -i 's/universe/universe multiverse/' /etc/apt/sources.list
RUN apt-get update && apt-get install -y iputils-ping netcat build-essential snmp snmpd snmp-mibs-downloader php5-cli apache2 libapache2-mod-php5 runit bc postfix bsd-mailx
RUN ( egrep -i  "^${NAGIOS_GROUP}" /etc/group || groupadd $NAGIOS_GROUP ) && ( egrep -i "^${NAGIOS_CMDGROUP}" /etc/group || groupadd $NAGIOS_CMDGROUP )
RUN ( id -u $NAGIOS_USER || useradd --system $NAGIOS_USER -g $NAGIOS_GROUP -d $NAGIOS_HOME ) && ( id -u $NAGIOS_CMDUSER || useradd --system -d $NAGIOS_HOME -g $NAGIOS_CMDGROUP $NAGIOS_CMDUSER )

ADD http://downloads.sourceforge.net/project/nagios/nagios-3.x/nagios-3.5.1/nagios-3.5.1.tar.gz?r=http%3A%2F%2Fwww.nagios.org%2Fdownload%2Fcore%2Fthanks%2F%3Ft%3D1398863696&ts=1398863718&use_mirror=superb-dca3 /tmp/nagios.tar.gz
RUN cd /tmp && tar -zxvf nagios.tar.gz && cd nagios  && ./configure --prefix=${NAGIOS_HOME} --exec-prefix=${NAGIOS_HOME} --enable-event-broker --with-nagios-command-user=${NAGIOS_CMDUSER} --with-command-group=${NAGIOS_CMDGROUP} --with-nagios-user=${NAGIOS_USER} --with-nagios-group=${NAGIOS_GROUP} && make all && make install && make install-config && make install-commandmode && cp sample-config/httpd.conf /etc/apache2/conf.d/nagios.conf
ADD http://www.nagios-plugins.org/download/nagios-plugins-1.5.tar.gz /tmp/
RUN cd /tmp && tar -zxvf nagios-plugins-1.5.tar.gz && cd nagios-plugins-1.5 && ./configure --prefix=${NAGIOS_HOME} && make && make install

RUN sed -i.bak 's/.*\=www\-data//g' /etc/apache2/envvars
RUN export DOC_ROOT="DocumentRoot $(echo $NAGIOS_HOME/share)"; sed -i "s,DocumentRoot.*,$DOC_ROOT," /etc/apache2/sites-enabled/000-default

RUN ln -s ${NAGIOS_HOME}/bin/nagios /usr/local/bin/nagios && mkdir -p /usr/share/snmp/mibs && chmod 0755 /usr/share/snmp/mibs && touch /usr/share/snmp/mibs/.foo

RUN echo "use_timezone=$NAGIOS_TIMEZONE" >> ${NAGIOS_HOME}/etc/nagios.cfg && echo "SetEnv TZ \"${NAGIOS_TIMEZONE}\"" >> /etc/apache2/conf.d/nagios.conf

RUN mkdir -p ${NAGIOS_HOME}/etc/conf.d && mkdir -p ${NAGIOS_HOME}/etc/monitor && ln -s /usr/share/snmp/mibs ${NAGIOS_HOME}/libexec/mibs
RUN echo "cfg_dir=${NAGIOS_HOME}/etc/conf.d" >> ${NAGIOS_HOME}/etc/nagios.cfg
RUN echo "cfg_dir=${NAGIOS_HOME}/etc/monitor" >> ${NAGIOS_HOME}/etc/nagios.cfg
RUN download-mibs && echo "mibs +ALL" > /etc/snmp/snmp.conf

RUN sed -i 's,/bin/mail,/usr/bin/mail,' /opt/nagios/etc/objects/commands.cfg && \
  sed -i 's,/usr/usr,/usr,' /opt/nagios/etc/objects/commands.cfg
RUN cp /etc/services /var/spool/postfix/etc/

RUN mkdir -p /etc/sv/nagios && mkdir -p /etc/sv/apache && rm -rf /etc/sv/getty-5 && mkdir -p /etc/sv/postfix
ADD nagios.init /etc/sv/nagios/run
ADD apache.init /etc/sv/apache/run
ADD postfix.init /etc/sv/postfix/run
ADD postfix.stop /etc/sv/postfix/finish

ADD start.sh /usr/local/bin/start_nagios

ENV APACHE_LOCK_DIR /var/run
ENV APACHE_LOG_DIR /var/log/apache2

EXPOSE 80

VOLUME ["/opt/nagios/var", "/opt/nagios/etc", "/opt/nagios/libexec", "/var/log/apache2", "/usr/share/snmp/mibs"]

CMD ["/usr/local/bin/start_nagios"]
"""
CPUGUY83_NAGIOS_RESULT = r"""(from "cpuguy83/ubuntu")
(env "NAGIOS_HOME" "/opt/nagios" "")
(env "NAGIOS_USER" "nagios" "")
(env "NAGIOS_GROUP" "nagios" "")
(env "NAGIOS_CMDUSER" "nagios" "")
(env "NAGIOS_CMDGROUP" "nagios" "")
(env "NAGIOSADMIN_USER" "nagiosadmin" "")
(env "NAGIOSADMIN_PASS" "nagios" "")
(env "APACHE_RUN_USER" "nagios" "")
(env "APACHE_RUN_GROUP" "nagios" "")
(env "NAGIOS_TIMEZONE" "UTC" "")
(run "sed -i 's/universe/universe multiverse/' /etc/apt/sources.list")
(run "apt-get update && apt-get install -y iputils-ping netcat build-essential snmp snmpd snmp-mibs-downloader php5-cli apache2 libapache2-mod-php5 runit bc postfix bsd-mailx")
(run "( egrep -i  \"^${NAGIOS_GROUP}\" /etc/group || groupadd $NAGIOS_GROUP ) && ( egrep -i \"^${NAGIOS_CMDGROUP}\" /etc/group || groupadd $NAGIOS_CMDGROUP )")
(run "( id -u $NAGIOS_USER || useradd --system $NAGIOS_USER -g $NAGIOS_GROUP -d $NAGIOS_HOME ) && ( id -u $NAGIOS_CMDUSER || useradd --system -d $NAGIOS_HOME -g $NAGIOS_CMDGROUP $NAGIOS_CMDUSER )")
(add "http://downloads.sourceforge.net/project/nagios/nagios-3.x/nagios-3.5.1/nagios-3.5.1.tar.gz?r=http%3A%2F%2Fwww.nagios.org%2Fdownload%2Fcore%2Fthanks%2F%3Ft%3D1398863696&ts=1398863718&use_mirror=superb-dca3" "/tmp/nagios.tar.gz")
(run "cd /tmp && tar -zxvf nagios.tar.gz && cd nagios  && ./configure --prefix=${NAGIOS_HOME} --exec-prefix=${NAGIOS_HOME} --enable-event-broker --with-nagios-command-user=${NAGIOS_CMDUSER} --with-command-group=${NAGIOS_CMDGROUP} --with-nagios-user=${NAGIOS_USER} --with-nagios-group=${NAGIOS_GROUP} && make all && make install && make install-config && make install-commandmode && cp sample-config/httpd.conf /etc/apache2/conf.d/nagios.conf")
(add "http://www.nagios-plugins.org/download/nagios-plugins-1.5.tar.gz" "/tmp/")
(run "cd /tmp && tar -zxvf nagios-plugins-1.5.tar.gz && cd nagios-plugins-1.5 && ./configure --prefix=${NAGIOS_HOME} && make && make install")
(run "sed -i.bak 's/.*\\=www\\-data//g' /etc/apache2/envvars")
(run "export DOC_ROOT=\"DocumentRoot $(echo $NAGIOS_HOME/share)\"; sed -i \"s,DocumentRoot.*,$DOC_ROOT,\" /etc/apache2/sites-enabled/000-default")
(run "ln -s ${NAGIOS_HOME}/bin/nagios /usr/local/bin/nagios && mkdir -p /usr/share/snmp/mibs && chmod 0755 /usr/share/snmp/mibs && touch /usr/share/snmp/mibs/.foo")
(run "echo \"use_timezone=$NAGIOS_TIMEZONE\" >> ${NAGIOS_HOME}/etc/nagios.cfg && echo \"SetEnv TZ \\\"${NAGIOS_TIMEZONE}\\\"\" >> /etc/apache2/conf.d/nagios.conf")
(run "mkdir -p ${NAGIOS_HOME}/etc/conf.d && mkdir -p ${NAGIOS_HOME}/etc/monitor && ln -s /usr/share/snmp/mibs ${NAGIOS_HOME}/libexec/mibs")
(run "echo \"cfg_dir=${NAGIOS_HOME}/etc/conf.d\" >> ${NAGIOS_HOME}/etc/nagios.cfg")
(run "echo \"cfg_dir=${NAGIOS_HOME}/etc/monitor\" >> ${NAGIOS_HOME}/etc/nagios.cfg")
(run "download-mibs && echo \"mibs +ALL\" > /etc/snmp/snmp.conf")
(run "sed -i 's,/bin/mail,/usr/bin/mail,' /opt/nagios/etc/objects/commands.cfg &&   sed -i 's,/usr/usr,/usr,' /opt/nagios/etc/objects/commands.cfg")
(run "cp /etc/services /var/spool/postfix/etc/")
(run "mkdir -p /etc/sv/nagios && mkdir -p /etc/sv/apache && rm -rf /etc/sv/getty-5 && mkdir -p /etc/sv/postfix")
(add "nagios.init" "/etc/sv/nagios/run")
(add "apache.init" "/etc/sv/apache/run")
(add "postfix.init" "/etc/sv/postfix/run")
(add "postfix.stop" "/etc/sv/postfix/finish")
(add "start.sh" "/usr/local/bin/start_nagios")
(env "APACHE_LOCK_DIR" "/var/run" "")
(env "APACHE_LOG_DIR" "/var/log/apache2" "")
(expose "80")
(volume "/opt/nagios/var" "/opt/nagios/etc" "/opt/nagios/libexec" "/var/log/apache2" "/usr/share/snmp/mibs")
(cmd "/usr/local/bin/start_nagios")
"""

# -- empty-line-after-escape -------------------------------------------------------------------

EMPTY_LINE_AFTER_ESCAPE_DOCKERFILE = r"""FROM busybox

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
RUN foo \

bar
"""
EMPTY_LINE_AFTER_ESCAPE_RESULT = """\
(from "busybox")
(run "foo bar")
"""

# -- env ---------------------------------------------------------------------------------------

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

# -- escape ------------------------------------------------------------------------------------

ESCAPE_DOCKERFILE = r"""#escape = `

FROM image
LABEL maintainer foo@bar.com
ENV GOPATH `
\go"""

# -- escape-after-comment ----------------------------------------------------------------------

ESCAPE_AFTER_COMMENT_DOCKERFILE = r"""# Comment here. Should not be looking for the following parser directive.
# Hence the following line will be ignored, and the subsequent backslash
# continuation will be the default.
# escape = `

FROM image
LABEL maintainer foo@bar.com
ENV GOPATH \
\go"""

# -- escape-nonewline --------------------------------------------------------------------------

ESCAPE_NONEWLINE_DOCKERFILE = r"""# escape = ``
# There is no white space line after the directives. This still succeeds, but goes
# against best practices.
FROM image
LABEL maintainer foo@bar.com
ENV GOPATH `
\go"""

# -- escapes -----------------------------------------------------------------------------------

ESCAPES_DOCKERFILE = r"""FROM ubuntu:14.04
LABEL maintainer Erik \\Hollensbe <erik@hollensbe.org>\"

RUN apt-get \update && \
  apt-get \"install znc -y
ADD \conf\\" /.znc

RUN foo \

bar \

baz

CMD [ "\/usr\\\"/bin/znc", "-f", "-r" ]
"""
ESCAPES_RESULT = r"""(from "ubuntu:14.04")
(label "maintainer" "Erik \\\\Hollensbe <erik@hollensbe.org>\\\"" "")
(run "apt-get \\update &&   apt-get \\\"install znc -y")
(add "\\conf\\\\\"" "/.znc")
(run "foo bar baz")
(cmd "/usr\\\"/bin/znc" "-f" "-r")
"""

# -- flags -------------------------------------------------------------------------------------

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

# -- health ------------------------------------------------------------------------------------

HEALTH_DOCKERFILE = r"""FROM debian
ADD check.sh main.sh /app/
CMD /app/main.sh
HEALTHCHECK
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
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

# -- jeztah-invalid-json-json-inside-string ----------------------------------------------------

JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_DOCKERFILE = """\
CMD '["echo", "Well, JSON in a string is JSON too?"]'
"""
JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_RESULT = r"""(cmd "'[\"echo\", \"Well, JSON in a string is JSON too?\"]'")
"""

# -- jeztah-invalid-json-json-inside-string-double ---------------------------------------------

JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_DOUBLE_DOCKERFILE = r"""CMD "[\"echo\", \"Phew, I just managed to escaped those double quotes\"]"
"""
JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_DOUBLE_RESULT = r"""(cmd "\"[\\\"echo\\\", \\\"Phew, I just managed to escaped those double quotes\\\"]\"")
"""

# -- jeztah-invalid-json-single-quotes ---------------------------------------------------------

JEZTAH_INVALID_JSON_SINGLE_QUOTES_DOCKERFILE = """\
CMD ['echo','single quotes are invalid JSON']
"""
JEZTAH_INVALID_JSON_SINGLE_QUOTES_RESULT = """\
(cmd "['echo','single quotes are invalid JSON']")
"""

# -- jeztah-invalid-json-unterminated-bracket --------------------------------------------------

JEZTAH_INVALID_JSON_UNTERMINATED_BRACKET_DOCKERFILE = """\
CMD ["echo", "Please, close the brackets when you're done"
"""
JEZTAH_INVALID_JSON_UNTERMINATED_BRACKET_RESULT = r"""(cmd "[\"echo\", \"Please, close the brackets when you're done\"")
"""

# -- jeztah-invalid-json-unterminated-string ---------------------------------------------------

JEZTAH_INVALID_JSON_UNTERMINATED_STRING_DOCKERFILE = """\
CMD ["echo", "look ma, no quote!]
"""
JEZTAH_INVALID_JSON_UNTERMINATED_STRING_RESULT = r"""(cmd "[\"echo\", \"look ma, no quote!]")
"""

# -- json --------------------------------------------------------------------------------------

JSON_DOCKERFILE = """\
CMD []
CMD [""]
CMD ["a"]
CMD ["a","b"]
CMD [ "a", "b" ]
CMD [\t"a",\t"b"\t]
CMD\t[\t"a",\t"b"\t]\t
CMD ["abc 123", "♥", "☃", "\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000"]
"""
JSON_RESULT = r"""(cmd)
(cmd "")
(cmd "a")
(cmd "a" "b")
(cmd "a" "b")
(cmd "a" "b")
(cmd "a" "b")
(cmd "abc 123" "♥" "☃" "\" \\ / \b \f \n \r \t \x00")
"""

# -- kartar-entrypoint-oddities ----------------------------------------------------------------

KARTAR_ENTRYPOINT_ODDITIES_DOCKERFILE = """\
FROM ubuntu:14.04
LABEL maintainer James Turnbull "james@example.com"
ENV REFRESHED_AT 2014-06-01
RUN apt-get update
RUN apt-get -y install redis-server redis-tools
EXPOSE 6379
ENTRYPOINT [ "/usr/bin/redis-server" ]
"""
KARTAR_ENTRYPOINT_ODDITIES_RESULT = r"""(from "ubuntu:14.04")
(label "maintainer" "James Turnbull \"james@example.com\"" "")
(env "REFRESHED_AT" "2014-06-01" "")
(run "apt-get update")
(run "apt-get -y install redis-server redis-tools")
(expose "6379")
(entrypoint "/usr/bin/redis-server")
"""

# -- lk4d4-the-edge-case-generator -------------------------------------------------------------

LK4D4_THE_EDGE_CASE_GENERATOR_DOCKERFILE = r"""FROM busybox:buildroot-2014.02

LABEL maintainer docker <docker@docker.io>

ONBUILD RUN ["echo", "test"]
ONBUILD RUN echo test
ONBUILD COPY . /


# RUN Commands \
# linebreak in comment \
RUN ["ls", "-la"]
RUN ["echo", "'1234'"]
RUN echo "1234"
RUN echo 1234
RUN echo '1234' && \
    echo "456" && \
    echo 789
RUN    sh -c 'echo root:testpass \
        > /tmp/passwd'
RUN mkdir -p /test /test2 /test3/test

# ENV \
ENV SCUBA 1 DUBA 3
ENV SCUBA "1 DUBA 3"

# CMD \
CMD ["echo", "test"]
CMD echo test
CMD echo "test"
CMD echo 'test'
CMD echo 'test' | wc -

#EXPOSE\
EXPOSE 3000
EXPOSE 9000 5000 6000

USER docker
USER docker:root

VOLUME ["/test"]
VOLUME ["/test", "/test2"]
VOLUME /test3

WORKDIR /test

ADD . /
COPY . copy
"""
LK4D4_THE_EDGE_CASE_GENERATOR_RESULT = r"""(from "busybox:buildroot-2014.02")
(label "maintainer" "docker <docker@docker.io>" "")
(onbuild (run "echo" "test"))
(onbuild (run "echo test"))
(onbuild (copy "." "/"))
(run "ls" "-la")
(run "echo" "'1234'")
(run "echo \"1234\"")
(run "echo 1234")
(run "echo '1234' &&     echo \"456\" &&     echo 789")
(run "sh -c 'echo root:testpass         > /tmp/passwd'")
(run "mkdir -p /test /test2 /test3/test")
(env "SCUBA" "1 DUBA 3" "")
(env "SCUBA" "\"1 DUBA 3\"" "")
(cmd "echo" "test")
(cmd "echo test")
(cmd "echo \"test\"")
(cmd "echo 'test'")
(cmd "echo 'test' | wc -")
(expose "3000")
(expose "9000" "5000" "6000")
(user "docker")
(user "docker:root")
(volume "/test")
(volume "/test" "/test2")
(volume "/test3")
(workdir "/test")
(add "." "/")
(copy "." "copy")
"""

# -- mail --------------------------------------------------------------------------------------

MAIL_DOCKERFILE = """\
FROM ubuntu:14.04

RUN apt-get update -qy && apt-get install mutt offlineimap vim-nox abook elinks curl tmux cron zsh -y
ADD .muttrc /
ADD .offlineimaprc /
ADD .tmux.conf /
ADD mutt /.mutt
ADD vim /.vim
ADD vimrc /.vimrc
ADD crontab /etc/crontab
RUN chmod 644 /etc/crontab
RUN mkdir /Mail
RUN mkdir /.offlineimap
RUN echo "export TERM=screen-256color" >/.zshenv

CMD setsid cron; tmux -2
"""
MAIL_RESULT = r"""(from "ubuntu:14.04")
(run "apt-get update -qy && apt-get install mutt offlineimap vim-nox abook elinks curl tmux cron zsh -y")
(add ".muttrc" "/")
(add ".offlineimaprc" "/")
(add ".tmux.conf" "/")
(add "mutt" "/.mutt")
(add "vim" "/.vim")
(add "vimrc" "/.vimrc")
(add "crontab" "/etc/crontab")
(run "chmod 644 /etc/crontab")
(run "mkdir /Mail")
(run "mkdir /.offlineimap")
(run "echo \"export TERM=screen-256color\" >/.zshenv")
(cmd "setsid cron; tmux -2")
"""

# -- multiple-volumes --------------------------------------------------------------------------

MULTIPLE_VOLUMES_DOCKERFILE = """\
FROM foo

VOLUME /opt/nagios/var /opt/nagios/etc /opt/nagios/libexec /var/log/apache2 /usr/share/snmp/mibs
"""
MULTIPLE_VOLUMES_RESULT = """\
(from "foo")
(volume "/opt/nagios/var" "/opt/nagios/etc" "/opt/nagios/libexec" "/var/log/apache2" "/usr/share/snmp/mibs")
"""

# -- mumble ------------------------------------------------------------------------------------

MUMBLE_DOCKERFILE = """\
FROM ubuntu:14.04

RUN apt-get update && apt-get install libcap2-bin mumble-server -y

ADD ./mumble-server.ini /etc/mumble-server.ini

CMD /usr/sbin/murmurd
"""
MUMBLE_RESULT = """\
(from "ubuntu:14.04")
(run "apt-get update && apt-get install libcap2-bin mumble-server -y")
(add "./mumble-server.ini" "/etc/mumble-server.ini")
(cmd "/usr/sbin/murmurd")
"""

# -- nginx -------------------------------------------------------------------------------------

NGINX_DOCKERFILE = """\
FROM ubuntu:14.04
LABEL maintainer Erik Hollensbe <erik@hollensbe.org>

RUN apt-get update && apt-get install nginx-full -y
RUN rm -rf /etc/nginx
ADD etc /etc/nginx
RUN chown -R root:root /etc/nginx
RUN /usr/sbin/nginx -qt
RUN mkdir /www

CMD ["/usr/sbin/nginx"]

VOLUME /www
EXPOSE 80
"""
NGINX_RESULT = """\
(from "ubuntu:14.04")
(label "maintainer" "Erik Hollensbe <erik@hollensbe.org>" "")
(run "apt-get update && apt-get install nginx-full -y")
(run "rm -rf /etc/nginx")
(add "etc" "/etc/nginx")
(run "chown -R root:root /etc/nginx")
(run "/usr/sbin/nginx -qt")
(run "mkdir /www")
(cmd "/usr/sbin/nginx")
(volume "/www")
(expose "80")
"""

# -- tf2 ---------------------------------------------------------------------------------------

TF2_DOCKERFILE = """\
FROM ubuntu:12.04

EXPOSE 27015
EXPOSE 27005
EXPOSE 26901
EXPOSE 27020

RUN apt-get update && apt-get install libc6-dev-i386 curl unzip -y
RUN mkdir -p /steam
RUN curl http://media.steampowered.com/client/steamcmd_linux.tar.gz | tar vxz -C /steam
ADD ./script /steam/script
RUN /steam/steamcmd.sh +runscript /steam/script
RUN curl http://mirror.pointysoftware.net/alliedmodders/mmsource-1.10.0-linux.tar.gz | tar vxz -C /steam/tf2/tf
RUN curl http://mirror.pointysoftware.net/alliedmodders/sourcemod-1.5.3-linux.tar.gz | tar vxz -C /steam/tf2/tf
ADD ./server.cfg /steam/tf2/tf/cfg/server.cfg
ADD ./ctf_2fort.cfg /steam/tf2/tf/cfg/ctf_2fort.cfg
ADD ./sourcemod.cfg /steam/tf2/tf/cfg/sourcemod/sourcemod.cfg
RUN rm -r /steam/tf2/tf/addons/sourcemod/configs
ADD ./configs /steam/tf2/tf/addons/sourcemod/configs
RUN mkdir -p /steam/tf2/tf/addons/sourcemod/translations/en
RUN cp /steam/tf2/tf/addons/sourcemod/translations/*.txt /steam/tf2/tf/addons/sourcemod/translations/en

CMD cd /steam/tf2 && ./srcds_run -port 27015 +ip 0.0.0.0 +map ctf_2fort -autoupdate -steam_dir /steam -steamcmd_script /steam/script +tf_bot_quota 12 +tf_bot_quota_mode fill
"""
TF2_RESULT = """\
(from "ubuntu:12.04")
(expose "27015")
(expose "27005")
(expose "26901")
(expose "27020")
(run "apt-get update && apt-get install libc6-dev-i386 curl unzip -y")
(run "mkdir -p /steam")
(run "curl http://media.steampowered.com/client/steamcmd_linux.tar.gz | tar vxz -C /steam")
(add "./script" "/steam/script")
(run "/steam/steamcmd.sh +runscript /steam/script")
(run "curl http://mirror.pointysoftware.net/alliedmodders/mmsource-1.10.0-linux.tar.gz | tar vxz -C /steam/tf2/tf")
(run "curl http://mirror.pointysoftware.net/alliedmodders/sourcemod-1.5.3-linux.tar.gz | tar vxz -C /steam/tf2/tf")
(add "./server.cfg" "/steam/tf2/tf/cfg/server.cfg")
(add "./ctf_2fort.cfg" "/steam/tf2/tf/cfg/ctf_2fort.cfg")
(add "./sourcemod.cfg" "/steam/tf2/tf/cfg/sourcemod/sourcemod.cfg")
(run "rm -r /steam/tf2/tf/addons/sourcemod/configs")
(add "./configs" "/steam/tf2/tf/addons/sourcemod/configs")
(run "mkdir -p /steam/tf2/tf/addons/sourcemod/translations/en")
(run "cp /steam/tf2/tf/addons/sourcemod/translations/*.txt /steam/tf2/tf/addons/sourcemod/translations/en")
(cmd "cd /steam/tf2 && ./srcds_run -port 27015 +ip 0.0.0.0 +map ctf_2fort -autoupdate -steam_dir /steam -steamcmd_script /steam/script +tf_bot_quota 12 +tf_bot_quota_mode fill")
"""

# -- weechat -----------------------------------------------------------------------------------

WEECHAT_DOCKERFILE = """\
FROM ubuntu:14.04

RUN apt-get update -qy && apt-get install tmux zsh weechat-curses -y

ADD .weechat /.weechat
ADD .tmux.conf /
RUN echo "export TERM=screen-256color" >/.zshenv

CMD zsh -c weechat
"""
WEECHAT_RESULT = r"""(from "ubuntu:14.04")
(run "apt-get update -qy && apt-get install tmux zsh weechat-curses -y")
(add ".weechat" "/.weechat")
(add ".tmux.conf" "/")
(run "echo \"export TERM=screen-256color\" >/.zshenv")
(cmd "zsh -c weechat")
"""

# -- znc ---------------------------------------------------------------------------------------

ZNC_DOCKERFILE = """\
FROM ubuntu:14.04
LABEL maintainer Erik Hollensbe <erik@hollensbe.org>

RUN apt-get update && apt-get install znc -y
ADD conf /.znc

CMD [ "/usr/bin/znc", "-f", "-r" ]
"""
ZNC_RESULT = """\
(from "ubuntu:14.04")
(label "maintainer" "Erik Hollensbe <erik@hollensbe.org>" "")
(run "apt-get update && apt-get install znc -y")
(add "conf" "/.znc")
(cmd "/usr/bin/znc" "-f" "-r")
"""


# -- escape, escape-after-comment: expected dumps written from the rules ------------------------

ESCAPE_RESULT = r"""(from "image")
(label "maintainer" "foo@bar.com" "")
(env "GOPATH" "\\go" "")
"""

ESCAPE_AFTER_COMMENT_RESULT = ESCAPE_RESULT

# -- ours: current BuildKit behaviour the published files do not show --------------------------

OURS_HEREDOC_DOCKERFILE = """\
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
ONBUILD ADD <<EOF /etc/x
body
EOF
"""

OURS_HEREDOC_RESULT = r"""(from "busybox")
(run "<<EOF")
(run "3<<EOF cat <&3")
(copy "<<a.txt" "<<-\"b.txt\"" "/dest/")
(run "<<EOF")
(onbuild (add "<<EOF" "/etc/x"))
"""

OURS_ONBUILD_DOCKERFILE = """\
FROM busybox
ONBUILD RUN echo hi
ONBUILD COPY --from=base a b
onbuild run ["echo", "x"]
"""

OURS_ONBUILD_RESULT = """\
(from "busybox")
(onbuild (run "echo hi"))
(onbuild (copy ["--from=base"] "a" "b"))
(onbuild (run "echo" "x"))
"""

# json.Unmarshal, not a streaming decoder: text after the array makes it shell form; an
# unknown instruction dumps with one empty argument (parseIgnore returns an empty node)
OURS_JSON_TRAILING_DOCKERFILE = """\
CMD [ "echo" ] && echo trailing text is not JSON
CMD {"echo": "hi"}
CMD [ "echo", "[\\"foo\\"]" ]
FOO bar
"""

OURS_JSON_TRAILING_RESULT = r"""(cmd "[ \"echo\" ] && echo trailing text is not JSON")
(cmd "{\"echo\": \"hi\"}")
(cmd "echo" "[\"foo\"]")
(foo "")
"""

CASES = {
    "docker": (DOCKER_DOCKERFILE, DOCKER_RESULT),
    "influxdb": (INFLUXDB_DOCKERFILE, INFLUXDB_RESULT),
    "health": (HEALTH_DOCKERFILE, HEALTH_RESULT),
    "ADD-COPY-with-JSON": (ADD_COPY_WITH_JSON_DOCKERFILE, ADD_COPY_WITH_JSON_RESULT),
    "brimstone-consuldock": (BRIMSTONE_CONSULDOCK_DOCKERFILE, BRIMSTONE_CONSULDOCK_RESULT),
    "brimstone-docker-consul": (BRIMSTONE_DOCKER_CONSUL_DOCKERFILE, BRIMSTONE_DOCKER_CONSUL_RESULT),
    "continue-at-eof": (CONTINUE_AT_EOF_DOCKERFILE, CONTINUE_AT_EOF_RESULT),
    "continueIndent": (CONTINUEINDENT_DOCKERFILE, CONTINUEINDENT_RESULT),
    "cpuguy83-nagios": (CPUGUY83_NAGIOS_DOCKERFILE, CPUGUY83_NAGIOS_RESULT),
    "empty-line-after-escape": (EMPTY_LINE_AFTER_ESCAPE_DOCKERFILE, EMPTY_LINE_AFTER_ESCAPE_RESULT),
    "env": (ENV_DOCKERFILE, ENV_RESULT),
    "escape": (ESCAPE_DOCKERFILE, ESCAPE_RESULT),
    "escape-after-comment": (ESCAPE_AFTER_COMMENT_DOCKERFILE, ESCAPE_AFTER_COMMENT_RESULT),
    "escapes": (ESCAPES_DOCKERFILE, ESCAPES_RESULT),
    "flags": (FLAGS_DOCKERFILE, FLAGS_RESULT),
    "jeztah-invalid-json-json-inside-string": (
        JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_DOCKERFILE,
        JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_RESULT),
    "jeztah-invalid-json-json-inside-string-double": (
        JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_DOUBLE_DOCKERFILE,
        JEZTAH_INVALID_JSON_JSON_INSIDE_STRING_DOUBLE_RESULT),
    "jeztah-invalid-json-single-quotes": (
        JEZTAH_INVALID_JSON_SINGLE_QUOTES_DOCKERFILE, JEZTAH_INVALID_JSON_SINGLE_QUOTES_RESULT),
    "jeztah-invalid-json-unterminated-bracket": (
        JEZTAH_INVALID_JSON_UNTERMINATED_BRACKET_DOCKERFILE,
        JEZTAH_INVALID_JSON_UNTERMINATED_BRACKET_RESULT),
    "jeztah-invalid-json-unterminated-string": (
        JEZTAH_INVALID_JSON_UNTERMINATED_STRING_DOCKERFILE,
        JEZTAH_INVALID_JSON_UNTERMINATED_STRING_RESULT),
    "json": (JSON_DOCKERFILE, JSON_RESULT),
    "kartar-entrypoint-oddities": (
        KARTAR_ENTRYPOINT_ODDITIES_DOCKERFILE, KARTAR_ENTRYPOINT_ODDITIES_RESULT),
    "lk4d4-the-edge-case-generator": (
        LK4D4_THE_EDGE_CASE_GENERATOR_DOCKERFILE, LK4D4_THE_EDGE_CASE_GENERATOR_RESULT),
    "mail": (MAIL_DOCKERFILE, MAIL_RESULT),
    "multiple-volumes": (MULTIPLE_VOLUMES_DOCKERFILE, MULTIPLE_VOLUMES_RESULT),
    "mumble": (MUMBLE_DOCKERFILE, MUMBLE_RESULT),
    "nginx": (NGINX_DOCKERFILE, NGINX_RESULT),
    "tf2": (TF2_DOCKERFILE, TF2_RESULT),
    "weechat": (WEECHAT_DOCKERFILE, WEECHAT_RESULT),
    "znc": (ZNC_DOCKERFILE, ZNC_RESULT),
    "ours-heredoc": (OURS_HEREDOC_DOCKERFILE, OURS_HEREDOC_RESULT),
    "ours-onbuild": (OURS_ONBUILD_DOCKERFILE, OURS_ONBUILD_RESULT),
    "ours-json-trailing": (OURS_JSON_TRAILING_DOCKERFILE, OURS_JSON_TRAILING_RESULT),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_buildkit_testfile_dump_matches_result(name):
    dockerfile, result = CASES[name]
    assert dump(parse_syntax_tree(dockerfile).nodes) == result


def test_escape_nonewline_is_an_invalid_escape_token_for_the_current_regexp():
    with pytest.raises(ParseError) as e:
        parse_syntax_tree(ESCAPE_NONEWLINE_DOCKERFILE)
    assert e.value.message == "invalid escape token '``' does not match ` or \\"
    assert e.value.line == 1


@pytest.mark.parametrize("text", [
    "FROM busybox\n\nENV PATH\n",             # testfiles-negative/env_no_value
    'CMD [ "echo", [ "nested json" ] ]\n',    # testfiles-negative/shykes-nested-json
])
def test_moby_negative_testfiles_are_errors(text):
    with pytest.raises(ParseError):
        parse_syntax_tree(text)


def test_dump_is_the_same_from_bytes_and_crlf_line_endings():
    text = DOCKER_DOCKERFILE.replace("\n", "\r\n").encode()
    assert dump(parse_syntax_tree(text).nodes) == DOCKER_RESULT


def test_empty_continuation_line_gives_a_warning_with_the_joined_line():
    tree = parse_syntax_tree(EMPTY_LINE_AFTER_ESCAPE_DOCKERFILE)
    assert [w.rule for w in tree.warnings] == ["NoEmptyContinuation"]
    assert "RUN foo bar" in tree.warnings[0].message
