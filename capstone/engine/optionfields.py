"""The value of a buildx-style option: comma-separated ``KEY=VALUE`` fields (``--output
type=oci,dest=out``, ``--cache-to type=registry,ref=R,mode=max``, ``--cache-from ...``),
read as buildx reads them: one CSV record (a field may be quoted to hold a comma), keys
without case, each key once."""

from __future__ import annotations


def option_fields(option: str, text: str, error: type[Exception]) -> dict[str, str]:
    """``{key: value}`` of ``text``, the value of ``option`` (keys lower-cased, values as
    given); ``error`` (``OPTION 'TEXT': why``) for a field without ``=`` or a key given twice."""
    import csv  # a build with such an option only

    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise error(f"{option} {text!r}: not a comma-separated list of KEY=VALUE") from None
    values: dict[str, str] = {}
    for field in fields:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise error(f"{option} {text!r}: {field!r} is not KEY=VALUE")
        if key in values:
            raise error(f"{option} {text!r}: {key} is given twice")
        values[key] = value
    return values
