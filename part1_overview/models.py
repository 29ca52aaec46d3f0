"""The one kind of model of the course: ``@model``, a record class made without generating code.

Every value type of every part (part 2's descriptors and manifests, part 6's container spec,
the Dockerfile's instructions, the build plan) is a class of named, typed fields::

    @model(frozen=True, kw_only=True)
    class Descriptor:
        media_type: str
        digest: str
        size: int
        annotations: dict | None = field(default=None, hash=False)

``@model`` takes the keywords of ``@dataclasses.dataclass`` that the course uses (``frozen``,
``kw_only``, ``eq``) and ``field()`` the per-field ones (``default``, ``default_factory``,
``init``, ``repr``, ``compare``, ``hash``, ``kw_only``, ``metadata``), and gives the same
``__init__`` (positional and keyword arguments, defaults, ``__post_init__``), ``__eq__``,
``__hash__``, ``__repr__``, ``__match_args__`` and frozen ``__setattr__`` (an AttributeError,
as assigning a read-only attribute; dataclasses raise a subclass of it), with ``fields()``,
``replace()`` and ``asdict()`` beside it.

Why not dataclasses: on Python 3.11 ``@dataclass`` writes the source of six methods per class
and compiles it at every start (about 3.3 million instructions a class, after importing
``inspect``), which was half of a fully cached build's instructions. Here the methods are
written once, below, compiled with this module, and shared by every class: decorating a class
only reads its annotations (the strings of ``from __future__ import annotations``; nothing is
evaluated) into a table the shared methods read. ``msgspec.Struct`` costs as little per class
but its import (typing_extensions, inspect, uuid, platform, decimal) costs more than all of
this module's classes together; see bench/README.md.
"""

from __future__ import annotations

import types
import typing
from _thread import get_ident
from operator import attrgetter
from typing import Any

__all__ = ["MISSING", "Field", "asdict", "field", "fields", "is_model", "model", "replace"]


class MissingType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: no default given (``None`` is a default like any other)
MISSING: Any = MissingType()


class Field:
    """One field of a model, as ``fields()`` returns it."""

    __slots__ = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare", "kw_only",
                 "metadata")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool, hash: bool | None,
                 compare: bool, kw_only: Any, metadata: Any) -> None:
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.kw_only = kw_only
        self.metadata = {} if metadata is None else metadata

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r}, default_factory={self.default_factory!r})"


def field(*, default: Any = MISSING, default_factory: Any = MISSING, init: bool = True, repr: bool = True,
          hash: bool | None = None, compare: bool = True, kw_only: Any = MISSING, metadata: Any = None) -> Any:
    """A field's options, as ``dataclasses.field``: the class attribute's value in the body."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, init, repr, hash, compare, kw_only, metadata)


#: how an annotation of ``from __future__ import annotations`` names a class variable
_CLASS_VAR = ("ClassVar", "typing.ClassVar")


def _is_class_var(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(_CLASS_VAR)
    return annotation is typing.ClassVar or getattr(annotation, "__origin__", None) is typing.ClassVar


def _getter(names: tuple[str, ...]):
    """A function of an instance giving the tuple of ``names``' values (as dataclasses compare
    and hash: a tuple, also of one field)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


# -- the methods every model shares (each reads its class's tables) --------------------------


def _init(self, *args, **kwargs) -> None:
    # a COPY of 200,000 files makes a model per file: the values go into the instance's
    # __dict__ by dict.update (the plain defaults, then the arguments), and only a field still
    # missing then (required, or made by its default_factory) costs a step of Python
    cls = type(self)
    positional, defaults, count, names, needed, later, post_init = cls.__model_init__
    values = self.__dict__
    if defaults:
        values.update(defaults)
    if args:
        if len(args) > len(positional):
            raise TypeError(f"{cls.__qualname__}() takes {len(positional)} positional arguments but {len(args)} were given")
        values.update(zip(positional, args))
    if kwargs:
        if not names.issuperset(kwargs):
            raise TypeError(f"{cls.__qualname__}() got an unexpected keyword argument {sorted(set(kwargs) - names)[0]!r}")
        if args and not kwargs.keys().isdisjoint(positional[:len(args)]):
            twice = sorted(kwargs.keys() & set(positional[:len(args)]))[0]
            raise TypeError(f"{cls.__qualname__}() got multiple values for argument {twice!r}")
        values.update(kwargs)
    if len(values) < count:
        for name, factory in needed:
            if name not in values:
                if factory is MISSING:
                    raise TypeError(f"{cls.__qualname__}() missing required argument: {name!r}")
                values[name] = factory()
    for name, default, factory in later:
        values[name] = default if factory is MISSING else factory()
    if post_init:
        self.__post_init__()


def _eq(self, other):
    if other.__class__ is self.__class__:
        key = self.__class__.__model_compare__
        return key(self) == key(other)
    return NotImplemented


def _hash(self) -> int:
    return hash(self.__class__.__model_hash__(self))


#: the models whose repr is being made, by (id, thread)
_repr_running: set[tuple[int, int]] = set()


def _repr(self) -> str:
    key = (id(self), get_ident())
    if key in _repr_running:
        return "..."  # a model that holds itself (as reprlib.recursive_repr, which dataclasses use)
    _repr_running.add(key)
    try:
        names = self.__class__.__model_repr__
        return f"{self.__class__.__qualname__}({', '.join(f'{name}={getattr(self, name)!r}' for name in names)})"
    finally:
        _repr_running.discard(key)


def _frozen_setattr(self, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r}")


def _own_fields(cls: type, kw_only: bool) -> dict[str, Field]:
    """The fields of ``cls``: its bases' models' first (in their order), then its annotations'."""
    own = cls.__dict__
    found: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:
        inherited = base.__dict__.get("__model_fields__")
        if inherited:
            found.update(inherited)
    for name, annotation in own.get("__annotations__", {}).items():
        if annotation.startswith(_CLASS_VAR) if annotation.__class__ is str else _is_class_var(annotation):
            continue
        value = own.get(name, MISSING)
        if value.__class__ is Field:
            f = value
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
            if f.kw_only is MISSING:
                f.kw_only = kw_only
        else:
            if value is not MISSING and value.__class__.__hash__ is None:
                raise ValueError(f"mutable default {type(value)} for field {name} is not allowed: use default_factory")
            f = Field(value, MISSING, True, True, None, True, kw_only, None)
        f.name = name
        f.type = annotation
        found[name] = f
    return found


def _process(cls: type, frozen: bool, kw_only: bool, eq: bool) -> type:
    own = cls.__dict__
    found = _own_fields(cls, kw_only)
    positional, init, keyword, later, shown, compared, hashed = [], [], [], [], [], [], []
    seen_default = None
    for name, f in found.items():  # one pass: this runs for every model at every start
        defaulted = f.default is not MISSING or f.default_factory is not MISSING
        if not f.init:
            if defaulted:
                later.append((name, f.default, f.default_factory))
        elif f.kw_only:
            keyword.append((name, f.default, f.default_factory))
        else:
            if defaulted:
                seen_default = name
            elif seen_default:
                raise TypeError(f"{cls.__qualname__}: non-default argument {name!r} follows default argument")
            positional.append(name)
            init.append((name, f.default, f.default_factory))
        if f.repr:
            shown.append(name)
        if f.compare:
            compared.append(name)
        if f.compare if f.hash is None else f.hash:
            hashed.append(name)
    init += keyword  # keyword-only ones after the others, as dataclasses order __init__'s
    positional = tuple(positional)
    cls.__model_fields__ = found
    cls.__model_init__ = (
        positional,
        {name: default for name, default, _ in init if default is not MISSING},
        len(init),
        frozenset([name for name, _, _ in init]),
        tuple((name, factory) for name, default, factory in init if default is MISSING),
        tuple(later),
        hasattr(cls, "__post_init__"),
    )
    cls.__model_repr__ = tuple(shown)
    cls.__model_compare__ = _getter(tuple(compared))
    if "__init__" not in own:
        cls.__init__ = _init
    if "__repr__" not in own:
        cls.__repr__ = _repr
    if "__match_args__" not in own:
        cls.__match_args__ = positional
    if eq and "__eq__" not in own:
        cls.__eq__ = _eq
    # a class that defines __eq__ gets __hash__ = None from Python itself: not a hash of its own
    explicit_hash = own.get("__hash__", MISSING) is not MISSING and not (own["__hash__"] is None and "__eq__" in own)
    if frozen:
        if "__setattr__" in own or "__delattr__" in own:
            raise TypeError(f"cannot overwrite attribute __setattr__ or __delattr__ in frozen model {cls.__qualname__}")
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
    if not explicit_hash and eq:
        if frozen:
            cls.__model_hash__ = _getter(tuple(hashed))
            cls.__hash__ = _hash
        else:
            cls.__hash__ = None  # mutable and compared by value: unhashable, as a dataclass
    return cls


@typing.dataclass_transform(field_specifiers=(field, Field))
def model(cls: type | None = None, /, *, frozen: bool = False, kw_only: bool = False, eq: bool = True):
    """Make ``cls`` a model (``@model`` or ``@model(frozen=True, kw_only=True)``)."""

    def wrap(cls: type) -> type:
        return _process(cls, frozen, kw_only, eq)

    return wrap if cls is None else wrap(cls)


# -- functions over models ---------------------------------------------------------------------


def is_model(obj: Any) -> bool:
    """Whether ``obj`` is a model class or an instance of one."""
    return hasattr(obj if isinstance(obj, type) else type(obj), "__model_fields__")


def fields(class_or_instance: Any) -> tuple[Field, ...]:
    """The fields of a model class or instance, in order."""
    try:
        return tuple(class_or_instance.__model_fields__.values())
    except AttributeError:
        raise TypeError("must be called with a model type or instance") from None


def replace(obj: Any, /, **changes: Any) -> Any:
    """A new instance of ``obj``'s class with ``changes`` (through ``__init__``, so
    ``__post_init__`` checks it again), as ``dataclasses.replace``."""
    try:
        found = obj.__class__.__model_fields__
    except AttributeError:
        raise TypeError("replace() should be called on model instances") from None
    for name, f in found.items():
        if not f.init:
            if name in changes:
                raise ValueError(f"field {name} is declared with init=False, it cannot be specified with replace()")
        elif name not in changes:
            changes[name] = getattr(obj, name)
    return obj.__class__(**changes)


_ATOMIC = frozenset({str, int, float, bool, bytes, types.NoneType, complex})


def asdict(obj: Any, *, dict_factory: Any = dict) -> Any:
    """``obj``'s fields as a dict, recursively through models, lists, tuples and dicts (every
    other value deep-copied), as ``dataclasses.asdict``."""
    if not is_model(obj) or isinstance(obj, type):
        raise TypeError("asdict() should be called on model instances")
    return _asdict(obj, dict_factory)


def _asdict(obj: Any, dict_factory: Any) -> Any:
    if type(obj) in _ATOMIC:
        return obj
    found = getattr(type(obj), "__model_fields__", None)
    if found is not None:
        return dict_factory([(name, _asdict(getattr(obj, name), dict_factory)) for name in found])
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[_asdict(v, dict_factory) for v in obj])
    if isinstance(obj, (list, tuple)):
        return type(obj)(_asdict(v, dict_factory) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((_asdict(k, dict_factory), _asdict(v, dict_factory)) for k, v in obj.items())
    import copy

    return copy.deepcopy(obj)
