"""Part 1's ``@model``: the same behaviour as ``@dataclasses.dataclass`` for what the course uses
(each test builds the same class both ways and compares), without generating code per class."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import ClassVar

import pytest

from part1_overview import asdict, field, fields, is_model, model, replace


def twins(body: str, options: str = "") -> tuple[type, type]:
    """The class ``C`` of ``body`` made by ``@model(options)`` and by ``@dataclass(options)``."""
    made = []
    for decorator, namespace in (("model", {"model": model, "field": field}),
                                 ("dataclasses.dataclass", {"dataclasses": dataclasses, "field": dataclasses.field})):
        namespace = {**namespace, "ClassVar": ClassVar, "__name__": __name__}
        exec(f"from __future__ import annotations\n@{decorator}({options})\nclass C:\n{body}", namespace)
        made.append(namespace["C"])
    return made[0], made[1]


def same(a, b) -> None:
    """An instance of the model and of the dataclass hold the same fields and print the same."""
    assert repr(a) == repr(b)
    assert [f.name for f in fields(a)] == [f.name for f in dataclasses.fields(b)]
    assert asdict(a) == dataclasses.asdict(b)


def test_init_positional_keyword_and_defaults_as_a_dataclass():
    body = "    a: int\n    b: str = 'x'\n    c: list = field(default_factory=list)\n    n: ClassVar[int] = 3\n"
    ours, dc = twins(body, "frozen=True")
    for args, kwargs in (((1,), {}), ((1, "y"), {}), ((), {"a": 2, "c": [1]}), ((1,), {"b": "z"})):
        same(ours(*args, **kwargs), dc(*args, **kwargs))
    assert ours.n == 3 and "n" not in [f.name for f in fields(ours)]  # a ClassVar is no field
    assert ours(1).c is not ours(1).c  # a fresh list each time
    assert ours.__match_args__ == dc.__match_args__ == ("a", "b", "c")
    for bad in (lambda cls: cls(), lambda cls: cls(1, "y", [], 4), lambda cls: cls(1, a=1), lambda cls: cls(1, d=1)):
        with pytest.raises(TypeError):
            bad(dc)
        with pytest.raises(TypeError):
            bad(ours)


def test_frozen_equality_hash_and_repr_as_a_dataclass():
    body = ("    a: int\n    tag: bool = field(default=False, compare=False)\n"
            "    extra: dict = field(default_factory=dict, hash=False)\n    secret: str = field(default='', repr=False)\n")
    ours, dc = twins(body, "frozen=True")
    m1, m2, d1 = ours(1, True, {"k": "v"}, "s"), ours(1, False, {"k": "v"}, "s"), dc(1, True, {"k": "v"}, "s")
    same(m1, d1)
    assert m1 == m2 and hash(m1) == hash(m2) == hash(d1)  # the same hash value as a dataclass's
    assert m1 != ours(2) and m1 != d1  # another class is never equal
    assert ours(1, extra={"a": 1}) != ours(1, extra={"b": 2})  # compared, only left out of the hash
    for obj in (m1, d1):  # dataclasses raise FrozenInstanceError, a subclass of AttributeError
        with pytest.raises(AttributeError, match="field 'a'"):
            obj.a = 2
        with pytest.raises(AttributeError, match="field 'a'"):
            del obj.a


def test_mutable_models_are_unhashable_and_assignable():
    ours, dc = twins("    a: int\n    b: list = field(default_factory=list)\n")
    m = ours(1)
    m.a = 5
    m.b.append(1)
    same(m, dc(5, [1]))
    with pytest.raises(TypeError):
        hash(m)
    assert ours(1) == ours(1)


def test_kw_only_init_false_post_init_and_inheritance():
    body = ("    a: int\n    b: int = 0\n    total: int = field(init=False)\n"
            "    def __post_init__(self):\n        object.__setattr__(self, 'total', self.a + self.b)\n")
    ours, dc = twins(body, "frozen=True, kw_only=True")
    same(ours(a=1, b=2), dc(a=1, b=2))
    assert ours(a=1, b=2).total == 3
    with pytest.raises(TypeError):
        ours(1)
    assert replace(ours(a=1), b=5).total == 6  # __post_init__ runs again, as dataclasses.replace
    with pytest.raises(ValueError, match="init=False"):
        replace(ours(a=1), total=9)

    @model(frozen=True)
    class Base:
        x: int
        y: int = 0

    @model(frozen=True, kw_only=True)
    class Child(Base):
        z: str
        y: int = 7  # redefined: keeps its place, takes the new default

    c = Child(1, z="q")
    assert [f.name for f in fields(Child)] == ["x", "y", "z"]
    assert (c.x, c.y, c.z) == (1, 7, "q")
    assert repr(c) == "test_kw_only_init_false_post_init_and_inheritance.<locals>.Child(x=1, y=7, z='q')"
    assert c != Base(1, 7)


def test_class_errors_as_a_dataclass():
    with pytest.raises(ValueError, match="mutable default"):
        twins("    a: list = []\n")
    with pytest.raises(TypeError, match="follows default"):
        @model
        class Bad:
            a: int = 0
            b: int


@model(frozen=True)
class Point:
    x: int
    y: int = field(default=0, compare=False)

    def __repr__(self) -> str:
        return f"<{self.x}>"

    def __eq__(self, other):
        return isinstance(other, Point) and self.x == other.x


def test_user_methods_win_and_pickle_and_copy_keep_values():
    p = Point(3, 4)
    assert repr(p) == "<3>" and p == Point(3, 5)
    assert hash(p) == hash((3,))  # __eq__ of its own, the model's frozen hash kept (as dataclasses)
    for again in (pickle.loads(pickle.dumps(p)), copy.copy(p), copy.deepcopy(p)):
        assert (again.x, again.y, type(again)) == (3, 4, Point)
    assert is_model(p) and is_model(Point) and not is_model(3) and not is_model(dict)
    with pytest.raises(TypeError):
        replace(3)
    with pytest.raises(TypeError):
        fields(3)


def test_asdict_recurses_as_dataclasses_asdict():
    @model(frozen=True)
    class Inner:
        v: tuple

    @model(frozen=True)
    class Outer:
        items: tuple
        by_name: dict
        one: Inner | None = None

    @dataclasses.dataclass(frozen=True)
    class DInner:
        v: tuple

    @dataclasses.dataclass(frozen=True)
    class DOuter:
        items: tuple
        by_name: dict
        one: DInner | None = None

    ours = asdict(Outer((Inner((1, 2)), 3), {"k": [Inner(())]}, Inner(("a",))))
    theirs = dataclasses.asdict(DOuter((DInner((1, 2)), 3), {"k": [DInner(())]}, DInner(("a",))))
    assert ours == theirs == {"items": ({"v": (1, 2)}, 3), "by_name": {"k": [{"v": ()}]}, "one": {"v": ("a",)}}
    with pytest.raises(TypeError):
        asdict(Outer)
