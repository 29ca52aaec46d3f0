"""Benchmark: parse a 2,000-line Dockerfile (target: well under 100 ms).

Run: ``python tests/bench_capstone_parse.py [LINES]``. Not a test (timings never decide a
pass/fail); it prints the best of several runs for the syntax tree alone, the full parse
(typed instructions), the stage graph, and the dump.
"""

from __future__ import annotations

import sys
import time

from capstone.dockerfile import build_stage_graph, dump, parse, parse_syntax_tree

BLOCK = """\
# stage {i}: a typical build step mix
FROM --platform=$BUILDPLATFORM golang:1.22 AS build{i}
ARG VERSION=1.{i} TARGETOS TARGETARCH
ENV CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly" \\
    PATH=/go/bin:$PATH
WORKDIR /src/{i}
COPY --link --chown=1000:1000 go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \\
    --mount=type=cache,target=/root/.cache/go-build \\
    go mod download && \\
    go build -ldflags "-X main.version=$VERSION" -o /out/app ./cmd/app
COPY <<EOF /etc/app.conf
listen = ":80{i}"
workers = {i}
EOF
LABEL org.opencontainers.image.version=$VERSION maintainer="ops@example.com"
HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD ["/out/app", "-health"]
EXPOSE 80{i}/tcp
USER 1000:1000
CMD ["/out/app", "serve"]
FROM busybox AS final{i}
COPY --from=build{i} /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
"""


def make_dockerfile(lines: int) -> str:
    per_block = BLOCK.count("\n")
    return "".join(BLOCK.format(i=i) for i in range(lines // per_block + 1))


def best_ms(fn, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def main() -> None:
    target = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    text = make_dockerfile(target)
    nlines = text.count("\n")
    df = parse(text)
    tree = parse_syntax_tree(text)
    print(f"Dockerfile: {nlines} lines, {len(df.instructions)} instructions, {len(df.stages)} stages")
    print(f"syntax tree only : {best_ms(lambda: parse_syntax_tree(text)):7.1f} ms")
    print(f"full parse       : {best_ms(lambda: parse(text)):7.1f} ms")
    print(f"stage graph+plan : {best_ms(lambda: build_stage_graph(df).plan()):7.1f} ms")
    print(f"dump             : {best_ms(lambda: dump(tree.nodes)):7.1f} ms")


if __name__ == "__main__":
    main()
