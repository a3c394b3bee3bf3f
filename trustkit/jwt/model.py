"""Explicit JSON mapping for claim types, mirroring Go ``encoding/json`` on the nats-io/jwt structs.

Each model lists its JSON keys once, in Go struct declaration order, with a codec that spells out
Go's omit rule for that field:

* scalars and slices tagged ``omitempty`` are dropped when zero/empty (``S``, ``I``, ``B``, ``L``);
* struct-valued fields are *never* dropped, even when tagged ``omitempty`` (``Obj``);
* pointer fields are dropped when nil (``Ptr``);
* maps are dropped when empty and written with sorted keys (``IntMap``, ``ObjMap``…).

Decoding is lenient about order and strict about types: a wrong JSON type raises
:class:`MalformedTokenError` naming the key. Keys a model does not know are kept in ``extra`` and
written back after the known ones, so unknown fields survive a decode/encode round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import field
from typing import Any, ClassVar, TypeVar

from trustkit.errors import MalformedTokenError

__all__ = ["NO_EXTRA", "Field", "Model", "fail"]

M = TypeVar("M", bound="Model")
JSON = Any


def fail(key: str, want: str) -> MalformedTokenError:
    return MalformedTokenError(f"claim field {key!r} must be {want}")


class Codec:
    """How one Go field type is written and read."""

    def empty(self, value: Any) -> bool:
        return False

    def dump(self, value: Any) -> JSON:
        return value

    def load(self, key: str, raw: JSON) -> Any:
        return raw


class _Str(Codec):
    def empty(self, value: Any) -> bool:
        return bool(value == "")

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return ""
        if not isinstance(raw, str):
            raise fail(key, "a string")
        return raw


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Int(Codec):
    def empty(self, value: Any) -> bool:
        return bool(value == 0)

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return 0
        # Go's json.Unmarshal into int64 refuses fractions (even 2.0), booleans and overflow
        if raw.__class__ is not int or not INT64_MIN <= raw <= INT64_MAX:
            raise fail(key, "a 64-bit integer")
        return raw


class _Bool(Codec):
    def empty(self, value: Any) -> bool:
        return value is False

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return False
        if not isinstance(raw, bool):
            raise fail(key, "a boolean")
        return raw


class _StrList(Codec):
    def empty(self, value: Any) -> bool:
        return not value

    def dump(self, value: Any) -> JSON:
        return list(value)

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise fail(key, "a list of strings")
        return list(raw)


class _CidrList(_StrList):
    """Go ``CIDRList``: also decodes one comma-separated string (lower-cased, trimmed)."""

    def load(self, key: str, raw: JSON) -> Any:
        if isinstance(raw, str):
            out: list[str] = []
            for part in raw.lower().split(","):
                part = part.strip()
                if part and part not in out:
                    out.append(part)
            return out
        return super().load(key, raw)


class _Obj(Codec):
    """A struct-valued field: always written (Go never omits structs)."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model

    def dump(self, value: Any) -> JSON:
        return value.to_json()

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return self.model.from_json({})  # Go's zero struct, not the constructor defaults
        if not isinstance(raw, dict):
            raise fail(key, "an object")
        return self.model.from_json(raw)


class _Ptr(_Obj):
    """A pointer-to-struct field: omitted when None."""

    def empty(self, value: Any) -> bool:
        return value is None

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return None
        return super().load(key, raw)


class _ObjList(Codec):
    def __init__(self, model: type[Model]) -> None:
        self.model = model

    def empty(self, value: Any) -> bool:
        return not value

    def dump(self, value: Any) -> JSON:
        return [v.to_json() for v in value]

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
            raise fail(key, "a list of objects")
        return [self.model.from_json(x) for x in raw]


class _IntMap(Codec):
    """``map[string]int64`` (revocations): sorted keys, omitted when empty."""

    def empty(self, value: Any) -> bool:
        return not value

    def dump(self, value: Any) -> JSON:
        return {k: value[k] for k in sorted(value)}

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not all(
            v.__class__ is int and INT64_MIN <= v <= INT64_MAX for v in raw.values()
        ):
            raise fail(key, "an object of 64-bit integers")
        return dict(raw)


class _ObjMap(Codec):
    """``map[string]Struct`` (tiered limits): sorted keys, omitted when empty."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model

    def empty(self, value: Any) -> bool:
        return not value

    def dump(self, value: Any) -> JSON:
        return {k: value[k].to_json() for k in sorted(value)}

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise fail(key, "an object of objects")
        return {k: self.model.from_json(v) for k, v in raw.items()}


class _ObjListMap(Codec):
    """``map[string][]Struct`` (mappings): sorted keys, omitted when empty."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model

    def empty(self, value: Any) -> bool:
        return not value

    def dump(self, value: Any) -> JSON:
        return {k: [m.to_json() for m in value[k]] for k in sorted(value)}

    def load(self, key: str, raw: JSON) -> Any:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise fail(key, "an object")
        out = {}
        for k, v in raw.items():
            if v is None:
                v = []
            if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
                raise fail(f"{key}.{k}", "a list of objects")
            out[k] = [self.model.from_json(x) for x in v]
        return out


class _Custom(Codec):
    def __init__(
        self,
        dump: Callable[[Any], JSON],
        load: Callable[[str, JSON], Any],
        empty: Callable[[Any], bool] = lambda v: False,
    ) -> None:
        self._dump, self._load, self._empty = dump, load, empty

    def empty(self, value: Any) -> bool:
        return self._empty(value)

    def dump(self, value: Any) -> JSON:
        return self._dump(value)

    def load(self, key: str, raw: JSON) -> Any:
        return self._load(key, raw)


S = _Str()
I = _Int()  # noqa: E741 - one letter mirrors the table style of the field lists
B = _Bool()
L = _StrList()
CIDRS = _CidrList()
INTMAP = _IntMap()


def Obj(model: type[Model]) -> Codec:
    return _Obj(model)


def Ptr(model: type[Model]) -> Codec:
    return _Ptr(model)


def ObjList(model: type[Model]) -> Codec:
    return _ObjList(model)


def ObjMap(model: type[Model]) -> Codec:
    return _ObjMap(model)


def ObjListMap(model: type[Model]) -> Codec:
    return _ObjListMap(model)


Custom = _Custom


class Field:
    """One JSON key of a model: ``key`` in the JSON, ``attr`` on the dataclass, ``codec``.

    ``omitempty=False`` writes the value even when empty (Go fields without ``omitempty``).
    """

    __slots__ = ("attr", "codec", "key", "omitempty")

    def __init__(self, key: str, codec: Codec, attr: str | None = None, *, omitempty: bool = True):
        self.key = key
        self.attr = attr or key
        self.codec = codec
        self.omitempty = omitempty


def go_fold(key: str) -> str:
    """A key as Go's ``encoding/json`` compares it with a struct field name: case-insensitively,
    with Unicode simple folding, where the long s (U+017F) is an ``s`` and the Kelvin sign
    (U+212A) a ``k``. Every NATS JWT field name is lower-case ASCII, so this is their fold."""
    return key.replace("\u017f", "s").lower()


def unknown_keys(data: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The keys of ``data`` that no field reads, kept for the round trip.

    Go also matches a key that differs from a field name only in letter case (``"Pub"`` sets
    ``pub``), so nats-server would enforce a field trustkit would skip. Such a key is refused: no
    NATS tool writes one, and reading it differently from the server could open permissions.
    """
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in known:
            continue
        if go_fold(k) in known:
            raise MalformedTokenError(
                f"claim field {k!r} differs from the field {go_fold(k)!r} only in letter case "
                "(Go reads it as that field): refused"
            )
        out[k] = v
    return out


_SIMPLE_CHECKS = {
    # codec id → (Python class, zero literal, what the error says)
    id(S): ("str", '""', "a string"),
    id(I): ("int", "0", "a 64-bit integer"),
    id(B): ("bool", "False", "a boolean"),
}


def _is_flat(model: type[Model]) -> bool:
    """A model whose fields are all scalars or string lists: its reader can be inlined."""
    return all(f.codec is S or f.codec is I or f.codec is B or f.codec is L for f in model.JSON_FIELDS)


def field_source(
    fields: tuple[Field, ...],
    src: str,
    prefix: str,
    env: dict[str, Any],
    *,
    indent: str = "    ",
    seen: str = "seen",
) -> list[str]:
    """Source lines that read ``fields`` from the dict named ``src`` into ``{prefix}{i}`` variables
    and count the known keys present in ``seen``. Scalars, string lists and flat nested structs
    (permissions, time ranges) are inlined; other codecs are called."""
    get, v = f"get_{prefix}", f"v_{prefix}"
    lines = [f"{get} = {src}.get"]
    for i, f in enumerate(fields):
        key, var = repr(f.key), f"{prefix}{i}"
        lines.append(f"{v} = {get}({key})")
        if id(f.codec) in _SIMPLE_CHECKS:
            typ, zero, want = _SIMPLE_CHECKS[id(f.codec)]
            range_check = f" and {INT64_MIN} <= {v} <= {INT64_MAX}" if f.codec is I else ""
            lines += [
                f"if {v} is None: {var} = {zero}",
                f"elif {v}.__class__ is {typ}{range_check}: {var} = {v}; {seen} += 1",
                f"else: raise fail({key}, {want!r})",
            ]
        elif f.codec is L:
            lines += [
                f"if {v} is None: {var} = []",
                f"elif {v}.__class__ is list:",
                f"    {seen} += 1",
                f"    for e in {v}:",
                f"        if e.__class__ is not str: raise fail({key}, 'a list of strings')",
                f"    {var} = {v}",
                f"else: raise fail({key}, 'a list of strings')",
            ]
        elif isinstance(f.codec, _Obj) and _is_flat(f.codec.model):
            model = f.codec.model
            sub_seen = f"{var}_seen"
            sub_fields = model.JSON_FIELDS
            if isinstance(f.codec, _Ptr):
                lines.append(f"if {v} is None: {var} = None")
            else:
                env[f"{var}_zero"] = model.zero  # Go's zero struct for an absent or null key
                lines.append(f"if {v} is None: {var} = {var}_zero()")
            lines += [f"elif {v}.__class__ is dict:", f"    {seen} += 1", f"    {sub_seen} = 0"]
            nested = field_source(sub_fields, v, f"{var}_", env, seen=sub_seen, indent="")
            lines += ["    " + line for line in nested]
            assigned = {sf.attr: f"{var}_{j}" for j, sf in enumerate(sub_fields)}
            lines += ["    " + line for line in construct_source(model, assigned, var, env)]
            env[f"{var}_known"] = model._KNOWN
            lines += [
                f"    if len({v}) > {sub_seen}:",
                f"        {var}.extra = unknown_keys({v}, {var}_known)",
                f"else: raise fail({key}, 'an object')",
            ]
        else:
            env[f"{prefix}c{i}"] = f.codec.load
            lines += [f"if {v} is not None: {seen} += 1", f"{var} = {prefix}c{i}({key}, {v})"]
    return [indent + line for line in lines]


def construct_source(cls: type[Any], assigned: dict[str, str], var: str, env: dict[str, Any]) -> list[str]:
    """Lines that build a ``cls`` instance in ``var`` from the expressions in ``assigned`` (attr →
    expression), the other fields taking their dataclass defaults. Setting slots directly is about
    twice as fast as calling the generated ``__init__`` with two dozen keywords."""
    import dataclasses

    if getattr(cls, "__post_init__", None) is not None or cls.__dataclass_params__.frozen:
        args = ", ".join(f"{attr}={expr}" for attr, expr in assigned.items())
        env[f"{var}_cls"] = cls
        return [f"{var} = {var}_cls({args})"]
    env[f"{var}_cls"] = cls
    env["new"] = object.__new__
    lines = [f"{var} = new({var}_cls)"]
    for fld in dataclasses.fields(cls):
        if fld.name in assigned:
            expr = assigned[fld.name]
        elif fld.default is not dataclasses.MISSING:
            env[f"{var}_d_{fld.name}"] = fld.default
            expr = f"{var}_d_{fld.name}"
        elif fld.default_factory is not dataclasses.MISSING:
            env[f"{var}_f_{fld.name}"] = fld.default_factory
            expr = f"{var}_f_{fld.name}()"
        else:  # pragma: no cover - every model field has a default
            raise TypeError(f"{cls.__name__}.{fld.name} has no default")
        lines.append(f"{var}.{fld.name} = {expr}")
    return lines


def compile_source(name: str, params: str, body: list[str], env: dict[str, Any]) -> Any:
    """Compile a generated function. Decoding claims is on the connect hot path: like dataclasses'
    generated ``__init__``, the per-type code reads each key once with its checks inlined, which
    halves the Python time around the signature check. Only keys and attribute names from our
    own field tables reach the source."""
    env.setdefault("fail", fail)
    env.setdefault("unknown_keys", unknown_keys)
    source = f"def {name}({params}):\n" + "\n".join(body)
    exec(source, env)  # noqa: S102 - built only from our own field tables
    return env[name]


def compile_from_json(cls: type[Model], name: str) -> Any:
    """``(cls, data) -> instance`` for a model: Go's ``json.Unmarshal`` into a zero struct."""
    fields = cls.JSON_FIELDS
    env: dict[str, Any] = {"KNOWN": cls._KNOWN}
    body = ["    seen = 0", *field_source(fields, "data", "a", env)]
    assigned = {f.attr: f"a{i}" for i, f in enumerate(fields)}
    body += ["    " + line for line in construct_source(cls, assigned, "obj", env)]
    body += [
        "    if len(data) > seen:",
        "        obj.extra = unknown_keys(data, KNOWN)",
        "    return obj",
    ]
    return compile_source(name, "cls, data", body, env)


class Model:
    """Base of every JSON-mapped claim part. Subclasses are dataclasses with ``JSON_FIELDS``."""

    __slots__ = ()

    JSON_FIELDS: ClassVar[tuple[Field, ...]] = ()
    _KNOWN: ClassVar[frozenset[str]] = frozenset()
    _FROM_JSON: ClassVar[Callable[[type[Any], dict[str, JSON]], Any]]
    extra: Mapping[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._KNOWN = frozenset(f.key for f in cls.JSON_FIELDS)
        # compiled on first use (see from_json): keeps `import trustkit` cheap for the CLI

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        for f in self.JSON_FIELDS:
            value = getattr(self, f.attr)
            if f.omitempty and f.codec.empty(value):
                continue
            out[f.key] = f.codec.dump(value)
        for k, v in self.extra.items():
            if k not in out:
                out[k] = v
        return out

    @classmethod
    def from_json(cls: type[M], data: dict[str, JSON]) -> M:
        """Decode like Go's ``json.Unmarshal`` into a zero struct: an absent key is the zero value
        (not the constructor default, which mirrors Go's ``New…Claims``).

        ``data`` is consumed: its string lists become the model's lists (not copied), so pass
        freshly parsed JSON or a ``to_json()`` result, and do not reuse it."""
        fn = cls.__dict__.get("_FROM_JSON")
        if fn is None:
            fn = compile_from_json(cls, f"from_json_{cls.__name__}")
            cls._FROM_JSON = staticmethod(fn)
        else:
            fn = fn.__func__
        obj: M = fn(cls, data)
        return obj

    @classmethod
    def zero(cls: type[M]) -> M:
        """Go's zero struct of this type (what an absent or null struct field decodes to)."""
        return cls.from_json({})

    def is_zero(self) -> bool:
        """True when every field is at its zero value (what Go's ``reflect`` zero means)."""
        for f in self.JSON_FIELDS:
            value = getattr(self, f.attr)
            if isinstance(value, Model):
                if not value.is_zero():
                    return False
            elif value not in (None, "", 0, False) and value != [] and value != {}:
                return False
        return not self.extra


class _NoExtra(Mapping[str, Any]):
    """The shared, immutable "no unknown keys" value of every ``extra``: decoding a token builds a
    dozen objects, and an empty dict each (plus the garbage collector's work on them) showed up in
    the connect benchmark. Decoders assign a fresh dict only when unknown keys are present."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


#: The value of ``extra`` when a model has no unknown keys.
NO_EXTRA: Mapping[str, Any] = _NoExtra()


def extra_field() -> Any:
    """The dataclass field holding unknown JSON keys (excluded from equality and repr)."""
    return field(default=NO_EXTRA, compare=False, repr=False)
