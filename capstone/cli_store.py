"""The command line of the local store: images, inspect, history, tag, rmi, prune, import, save, load.

Output follows docker's: ``images`` prints REPOSITORY TAG IMAGE ID CREATED SIZE (``-q`` only
ids, ``--format json`` one JSON object per line, ``--format TEMPLATE`` a Go template per row),
filtered by ``--filter`` (reference, before, since, dangling, label) and a REPOSITORY[:TAG]
pattern; ``inspect`` a JSON array, or with ``--format`` a Go template of the same document
(``capstone.gotemplate``); ``history`` the image's steps newest first. Sizes are the stored
(compressed) bytes of config and layers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .errors import CapstoneError

if TYPE_CHECKING:
    import datetime as _dt

    from part1_overview import Narrator
    from part2_manual_oci import Platform

    from .store import Store

# The store and the parts below (and datetime, json) are imported by the commands that use them
# (lazily): building the command line for ``capstone build`` or ``--help`` must not pay for them.


def _store(args: argparse.Namespace) -> Store:
    from .store import Store

    return Store.open(args.store, snapshotter=args.snapshotter)


def human_size(size: int) -> str:
    """Docker's sizes: decimal units, three significant digits (``1.03MB``, ``405B``)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    if unit == "B":
        return f"{int(value)}B"
    return f"{value:.3g}{unit}"


def _parse_time(text: str | None) -> _dt.datetime | None:
    import datetime as _dt

    if not text:
        return None
    t = text.rstrip("Z")
    if "." in t:
        head, frac = t.split(".", 1)
        frac = "".join(c for c in frac if c.isdigit())[:6]
        t = f"{head}.{frac}" if frac else head
    try:
        parsed = _dt.datetime.fromisoformat(t)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)


def human_since(text: str | None, now: _dt.datetime | None = None) -> str:
    """``2 hours ago``, as docker prints CREATED."""
    import datetime as _dt

    when = _parse_time(text)
    if when is None:
        return "N/A"
    seconds = max(0, ((now or _dt.datetime.now(_dt.UTC)) - when).total_seconds())
    for limit, unit, div in ((60, "second", 1), (3600, "minute", 60), (86400, "hour", 3600),
                             (86400 * 14, "day", 86400), (86400 * 60, "week", 86400 * 7),
                             (86400 * 365 * 2, "month", 86400 * 30)):
        if seconds < limit:
            n = int(seconds // div)
            if unit == "second" and n < 1:
                return "Less than a second ago"
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return f"{int(seconds // (86400 * 365))} years ago"


def _write_table(out, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [list(map(str, r)) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [list(headers)] + rows:
        out.write("   ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n")


def _short_id(digest: str, no_trunc: bool) -> str:
    from part2_manual_oci import digest_hex

    return digest if no_trunc else digest_hex(digest)[:12]


# -- images ---------------------------------------------------------------------------------------


def configure_images(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]",
                   help="only the images of this repository (a pattern, as --filter reference=)")
    p.add_argument("-a", "--all", action="store_true", help="also untagged images (build steps kept by the cache)")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("--no-trunc", action="store_true", help="full image ids")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="reference=PATTERN, before=IMAGE, since=IMAGE, dangling=true|false, label=KEY[=VALUE] "
                        "(repeatable: the same key is any of its values, labels are all of theirs)")
    p.add_argument("--format", default="table", metavar="table|json|TEMPLATE",
                   help="table (default), json lines, or a Go template ({{.Repository}}:{{.Tag}} {{.ID}})")


#: ``images --filter`` keys (podman's and docker's)
IMAGE_FILTERS = ("reference", "before", "since", "dangling", "label")


def parse_image_filters(items: Sequence[str], repository: str | None = None) -> dict[str, list[str]]:
    """``--filter KEY=VALUE`` values by key (``REPOSITORY`` is a ``reference``); one line for
    a key or a value that is not one."""
    from .errors import CapstoneError

    filters: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in IMAGE_FILTERS:
            raise CapstoneError(f"images --filter {item!r}: expected KEY=VALUE with KEY one of {', '.join(IMAGE_FILTERS)}")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise CapstoneError(f"images --filter {item!r}: dangling is true or false")
        if not value and key != "label":
            raise CapstoneError(f"images --filter {item!r}: {key} needs a value")
        filters.setdefault(key, []).append(value)
    if repository:
        filters.setdefault("reference", []).append(repository)
    return filters


def _reference_matches(patterns: Sequence[str], ref) -> bool:
    """docker's reference filter: a pattern (filepath.Match) against the familiar and the full
    name, with and without the tag."""
    from .context import PathPattern, PatternSyntaxError
    from .errors import CapstoneError

    names = {ref.short, ref.familiar_repo, ref.name, ref.repo}
    for pattern in patterns:
        try:
            compiled = PathPattern(pattern)
        except PatternSyntaxError as e:
            raise CapstoneError(f"images --filter reference={pattern}: {e}") from None
        if any(compiled.match(name) for name in names):
            return True
    return False


def filter_images(store: Store, entries, filters: dict[str, list[str]]):
    """The entries (ImageEntry) and names that pass ``filters`` (see :func:`parse_image_filters`):
    (entry, [names kept]) pairs; a reference filter keeps only the names it matches."""
    from .errors import CapstoneError
    from .refs import parse_name

    bounds = {}
    for key in ("before", "since"):
        for value in filters.get(key, []):
            desc = store.resolve(value)
            if desc is None:
                raise CapstoneError(f"images --filter {key}={value}: no such image")
            bounds.setdefault(key, []).append(_parse_time(store.config(desc).created))
    dangling = [v.lower() in ("true", "1") for v in filters.get("dangling", [])]
    labels = filters.get("label", [])
    out = []
    for entry in entries:
        if dangling and not any(d == (not entry.names) for d in dangling):
            continue
        created = _parse_time(entry.created)
        if "before" in bounds and not any(created and b and created < b for b in bounds["before"]):
            continue
        if "since" in bounds and not any(created and b and created > b for b in bounds["since"]):
            continue
        if labels:
            have = store.config(entry.descriptor).config.labels or {}
            wanted = [label.partition("=") for label in labels]
            if not all(k in have and (not eq or have[k] == v) for k, eq, v in wanted):
                continue
        names = entry.names
        if "reference" in filters:
            names = [name for name in names if _reference_matches(filters["reference"], parse_name(name))]
            if not names:
                continue
        out.append((entry, names))
    return out


def run_images(args: argparse.Namespace, n: Narrator) -> int:
    import json

    from .refs import parse_name

    filters = parse_image_filters(args.filter, args.repository)
    template = _template(args.format, "images") if args.format not in ("table", "json") else None
    store = _store(args)
    rows = []
    listed = store.images(all=args.all or "dangling" in filters)
    for entry, names in filter_images(store, listed, filters):
        image_id = store.image_id(entry.descriptor)
        refs = [parse_name(name) for name in names] or [None]
        for ref in refs:
            rows.append({
                "Repository": ref.familiar_repo if ref else "<none>",
                "Tag": (ref.tag or "<none>") if ref else "<none>",
                "ID": image_id,
                "Digest": entry.descriptor.digest,
                "CreatedAt": entry.created or "",
                "CreatedSince": human_since(entry.created),
                "Size": human_size(entry.size),
                "SizeBytes": entry.size,
            })
    out = n.out
    if args.quiet:
        seen = []
        for r in rows:
            ident = _short_id(r["ID"], args.no_trunc)
            if ident not in seen:
                seen.append(ident)
        out.write("".join(f"{i}\n" for i in seen))
    elif args.format == "json":
        for r in rows:
            out.write(json.dumps({**r, "ID": _short_id(r["ID"], args.no_trunc)}) + "\n")
    elif template is not None:
        for r in rows:
            out.write(_render(template, {**r, "ID": _short_id(r["ID"], args.no_trunc)}, "images") + "\n")
    else:
        _write_table(out, ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"),
                     ((r["Repository"], r["Tag"], _short_id(r["ID"], args.no_trunc), r["CreatedSince"], r["Size"])
                      for r in rows))
    out.flush()
    return 0


# -- inspect --------------------------------------------------------------------------------------


#: the fields of docker's and podman's inspect Config, with their empty values (an image
#: config leaves out what it does not set; a template still finds them)
DOCKER_CONFIG_FIELDS = {"User": "", "ExposedPorts": None, "Env": [], "Entrypoint": None, "Cmd": None,
                        "Volumes": None, "WorkingDir": "", "Labels": None, "StopSignal": ""}


def inspect_image(store: Store, name: str) -> dict:
    """``docker inspect``'s document for one image."""
    from .refs import parse_name
    from .store import StoreError

    desc = store.resolve(name)
    if desc is None:
        raise StoreError(f"no such image: {name}")
    manifest = store.manifest(desc)
    config = store.read_config(manifest)
    names = store.names_of(desc)
    image_config = {**DOCKER_CONFIG_FIELDS, **config.config.to_json()}
    doc = {
        "Id": manifest.config.digest,
        "Digest": desc.digest,
        "RepoTags": [parse_name(x).short for x in names],
        "RepoDigests": sorted({f"{parse_name(x).familiar_repo}@{desc.digest}" for x in names}),
        "Parent": "",
        "Comment": (config.history[-1].comment or "") if config.history else "",
        "Created": config.created or "",
        "Author": config.author or "",
        "Architecture": config.architecture,
        "Os": config.os,
        "Config": image_config,
        "Labels": image_config.get("Labels"),
        "RootFS": {"Type": "layers", "Layers": list(config.rootfs_diff_ids)},
        "Size": manifest.config.size + sum(layer.size for layer in manifest.layers),
        "Manifest": {"Digest": desc.digest, "MediaType": desc.media_type, "Size": desc.size},
    }
    if config.variant:
        doc["Variant"] = config.variant
    return doc


def configure_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="name, image id (prefix) or digest")
    p.add_argument("-f", "--format", metavar="TEMPLATE",
                   help="a Go template of the document's fields, one line per image: {{.Id}}, {{.Config.Env}}, "
                        "{{json .Config}}, {{index .Config.Labels \"k\"}}, {{range .RepoTags}}...{{end}}")


def _template(text: str, command: str):
    from .errors import CapstoneError
    from .gotemplate import Template, TemplateError

    try:
        return Template(text)
    except TemplateError as e:
        raise CapstoneError(f"{command} --format: {e}") from None


def _render(template, doc: dict, command: str) -> str:
    from .errors import CapstoneError
    from .gotemplate import TemplateError

    try:
        return template.render(doc)
    except TemplateError as e:
        raise CapstoneError(f"{command} --format {template.text!r}: {e}") from None


def run_inspect(args: argparse.Namespace, n: Narrator) -> int:
    import json

    template = _template(args.format, "inspect") if args.format else None
    store = _store(args)
    docs = [inspect_image(store, name) for name in args.images]
    if template is None:
        n.out.write(json.dumps(docs, indent=4) + "\n")
    else:
        for doc in docs:
            text = _render(template, doc, "inspect")
            n.out.write(text if text.endswith("\n") else text + "\n")
    n.out.flush()
    return 0


# -- history --------------------------------------------------------------------------------------


def configure_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-trunc", action="store_true", help="do not shorten ids and commands")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run_history(args: argparse.Namespace, n: Narrator) -> int:
    import json

    from .store import StoreError

    store = _store(args)
    desc = store.resolve(args.image)
    if desc is None:
        raise StoreError(f"no such image: {args.image}")
    manifest = store.manifest(desc)
    config = store.read_config(manifest)
    layers = list(manifest.layers)
    rows = []
    for h in config.history:
        size = 0
        if not h.empty_layer and layers:
            size = layers.pop(0).size
        rows.append({"ID": "<missing>", "CreatedAt": h.created or "", "CreatedSince": human_since(h.created),
                     "CreatedBy": h.created_by or "", "Size": human_size(size), "SizeBytes": size,
                     "Comment": h.comment or ""})
    rows.reverse()
    if rows:
        rows[0]["ID"] = manifest.config.digest
    out = n.out
    if args.quiet:
        out.write("".join(_short_id(r["ID"], args.no_trunc) + "\n" if r["ID"] != "<missing>" else "<missing>\n"
                          for r in rows))
    elif args.format == "json":
        for r in rows:
            out.write(json.dumps(r) + "\n")
    else:
        def created_by(text: str) -> str:
            text = " ".join(text.split())
            return text if args.no_trunc or len(text) <= 45 else text[:44] + "…"

        _write_table(out, ("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"),
                     ((_short_id(r["ID"], args.no_trunc) if r["ID"] != "<missing>" else r["ID"], r["CreatedSince"],
                       created_by(r["CreatedBy"]), r["Size"], r["Comment"]) for r in rows))
    out.flush()
    return 0


# -- tag, rmi, prune ------------------------------------------------------------------------------


def configure_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE", help="name, image id (prefix) or digest")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def run_tag(args: argparse.Namespace, n: Narrator) -> int:
    from .store import StoreError

    store = _store(args)
    desc = store.resolve(args.source)
    if desc is None:
        raise StoreError(f"no such image: {args.source}")
    store.tag(args.target, desc)
    return 0


def configure_rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="remove every name of an image id")


def run_rmi(args: argparse.Namespace, n: Narrator) -> int:
    from .refs import InvalidName
    from .store import StoreError

    store = _store(args)
    failed = None
    for name in args.images:
        try:
            lines = store.remove(name, force=args.force)
        except (StoreError, InvalidName) as e:
            failed = e
            continue
        for action, value in lines:
            n.out.write(f"{action}: {value}\n")
    n.out.flush()
    if failed is not None:
        raise failed
    return 0


def configure_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="also empty the build cache (and so the untagged images it keeps)")


def run_prune(args: argparse.Namespace, n: Narrator) -> int:
    removed, freed = _store(args).prune(all=args.all)
    n.out.write(f"Deleted blobs: {removed}\nTotal reclaimed space: {human_size(freed)}\n")
    n.out.flush()
    return 0


# -- import, save ---------------------------------------------------------------------------------


def configure_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="ROOTFS_DIR_OR_TAR", help="a root filesystem directory or a tar file")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("--platform", metavar="P", help="the image's platform (os/arch[/variant]; default: this host's)")


def run_import(args: argparse.Namespace, n: Narrator) -> int:
    from .engine.plan import parse_source_date_epoch

    if args.platform and "," in args.platform:
        raise CapstoneError(f"--platform: {args.platform!r}: import makes one image: name one platform")
    platform = platform_flag(args.platform)
    # as build: SOURCE_DATE_EPOCH dates the image and clamps its files' times (reproducible)
    epoch = parse_source_date_epoch(os.environ.get("SOURCE_DATE_EPOCH"))
    store = _store(args)
    desc = store.import_rootfs(args.source, args.name, platform=platform, source_date_epoch=epoch)
    n.out.write(store.image_id(desc) + "\n")
    n.out.flush()
    return 0


def configure_save(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("dest", metavar="DEST",
                   help="oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]")


def run_save(args: argparse.Namespace, n: Narrator) -> int:
    _store(args).export(args.image, args.dest)
    return 0


def configure_load(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", metavar="FILE", help="a docker-archive or oci-archive (docker save, "
                   "podman save, skopeo copy)")
    p.add_argument("-i", "--input", metavar="FILE", help="the archive (as docker load -i)")
    p.add_argument("--platform", metavar="P", help="of a multi-platform entry, the image for this platform "
                   "(default: this host's)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ids")


def run_load(args: argparse.Namespace, n: Narrator) -> int:
    from .refs import parse_name

    path = args.input or args.file
    if not path or (args.input and args.file):
        raise CapstoneError("load: name one archive: capstone load FILE (or -i FILE)")
    platform = platform_flag(args.platform)
    store = _store(args)
    for desc, names in store.load_file(path, platform):
        if args.quiet or not names:
            n.out.write(f"{'' if args.quiet else 'Loaded image ID: '}{store.image_id(desc)}\n")
        else:
            n.out.write("".join(f"Loaded image: {parse_name(name).short}\n" for name in names))
    n.out.flush()
    return 0


def platform_flag(text: str | None) -> Platform | None:
    """``--platform P`` of pull, load and import: part 2's ``Platform`` (None when not given); a
    specifier that is none (``linux/z80``) is one line naming the flag, as build's is."""
    if not text:
        return None
    from part2_manual_oci import PlatformError, parse_platform

    try:
        return parse_platform(text)
    except PlatformError as e:
        raise CapstoneError(f"--platform: {e}") from None


COMMANDS: dict = {
    "images": ("list the images in the local store", configure_images, run_images),
    "inspect": ("show an image's config as JSON (like docker inspect)", configure_inspect, run_inspect),
    "history": ("show the steps that made an image", configure_history, run_history),
    "tag": ("give an image another name", configure_tag, run_tag),
    "rmi": ("remove image names (and the images nothing names any more)", configure_rmi, run_rmi),
    "prune": ("free blobs, snapshots and cache entries nothing refers to", configure_prune, run_prune),
    "import": ("make a single-layer base image from a root filesystem", configure_import, run_import),
    "save": ("write an image to an OCI layout, an oci-archive or a docker-archive", configure_save, run_save),
    "load": ("read the images of a docker-archive or oci-archive into the store", configure_load, run_load),
}
