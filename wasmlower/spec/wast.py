"""``.wast`` scripts -> a list of command objects.

:func:`parse_script` reads a script with :mod:`wasmlower.spec.sexpr` and turns
every top-level form into one of the command dataclasses below (each records
its source ``line``).  Constants are parsed here, exactly: integers to their
unsigned bit patterns, floats (decimal with correct rounding, hex, ``inf``,
``nan``, ``nan:0x...``) to IEEE bit patterns, ``v128.const`` to a 128-bit
little-endian lane pattern.

Forms this reader does not know are kept as :class:`Unsupported` commands with
a reason; the runner counts them as skipped.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from wasmlower.spec.sexpr import Atom, Node, SList, String, WastSyntaxError, parse

__all__ = [
    "NUMERIC_TYPES",
    "REF_TYPES",
    "Action",
    "AssertException",
    "AssertExhaustion",
    "AssertInvalid",
    "AssertMalformed",
    "AssertReturn",
    "AssertTrap",
    "AssertUninstantiable",
    "AssertUnlinkable",
    "Command",
    "Expected",
    "ModuleCmd",
    "ModuleInstance",
    "Register",
    "Unsupported",
    "Value",
    "WastSyntaxError",
    "float_bits",
    "int_bits",
    "parse_file",
    "parse_script",
    "v128_bits",
]

NUMERIC_TYPES = frozenset({"i32", "i64", "f32", "f64", "v128"})
#: heap type keyword of ``ref.null`` -> the value type name used in :class:`Value`
REF_TYPES = {
    "func": "funcref", "extern": "externref", "any": "anyref", "eq": "eqref",
    "i31": "i31ref", "struct": "structref", "array": "arrayref", "exn": "exnref",
    "none": "nullref", "nofunc": "nullfuncref", "noextern": "nullexternref",
    "noexn": "nullexnref",
}
for _name in list(REF_TYPES.values()):
    REF_TYPES[_name] = _name


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Value:
    """A wasm value: ``type`` (``"i32"``, ``"f32"``, ``"v128"``, ``"funcref"``, ...) and
    ``bits``, the raw unsigned bit pattern (for references: ``None`` for null, else an
    int -- ``N`` for ``ref.extern N``; engines may use any int for a non-null funcref)."""

    type: str
    bits: int | None

    def __str__(self) -> str:
        return format_value(self)


def format_value(value: Value) -> str:
    t, b = value.type, value.bits
    if b is None:
        return f"(ref.null {t})"
    if t == "i32" or t == "i64":
        width = 32 if t == "i32" else 64
        signed = b - (1 << width) if b >> (width - 1) else b
        return f"({t}.const {signed} [{b:#x}])"
    if t == "f32":
        return f"(f32.const {_float_text(b, 32)} [{b:#010x}])"
    if t == "f64":
        return f"(f64.const {_float_text(b, 64)} [{b:#018x}])"
    if t == "v128":
        return f"(v128.const i32x4 {' '.join(f'{(b >> (32 * i)) & 0xFFFFFFFF:#x}' for i in range(4))})"
    if t == "externref":
        return f"(ref.extern {b})"
    return f"({t} {b})"


def _float_text(bits: int, width: int) -> str:
    if width == 32:
        exp_mask, mant_bits = 0xFF, 23
        number = struct.unpack("<f", struct.pack("<I", bits))[0]
    else:
        exp_mask, mant_bits = 0x7FF, 52
        number = struct.unpack("<d", struct.pack("<Q", bits))[0]
    exponent = (bits >> mant_bits) & exp_mask
    mantissa = bits & ((1 << mant_bits) - 1)
    sign = "-" if bits >> (width - 1) else ""
    if exponent == exp_mask:
        if mantissa == 0:
            return f"{sign}inf"
        return f"{sign}nan:{mantissa:#x}"
    return repr(number)


@dataclass(frozen=True, slots=True)
class Expected:
    """One expected result of ``assert_return``.

    ``kind`` is one of:

    * ``"value"`` -- exactly ``value`` (bit-exact for numbers; for references see below);
    * ``"nan:canonical"`` / ``"nan:arithmetic"`` -- a NaN of ``type`` (f32/f64);
    * ``"v128"`` -- a ``v128`` whose ``lanes`` (of ``shape``) each match, lanes may be NaN
      patterns;
    * ``"ref.null"`` -- any null reference; ``"ref.nonnull"`` -- any non-null reference of
      ``type`` (``(ref.func)``, ``(ref.extern)``, ``(ref.struct)`` ...);
    * ``"either"`` -- any of ``alternatives``.

    For ``"value"`` with a reference ``value``: a null compares by null-ness, an
    ``externref`` (``ref.extern N``) by its number, a ``funcref`` by null-ness only.
    """

    kind: str
    type: str = ""
    value: Value | None = None
    shape: str | None = None
    lanes: tuple[Expected, ...] = ()
    alternatives: tuple[Expected, ...] = ()

    def __str__(self) -> str:
        if self.kind == "value" and self.value is not None:
            return format_value(self.value)
        if self.kind.startswith("nan:"):
            return f"({self.type}.const {self.kind})"
        if self.kind == "v128":
            return f"(v128.const {self.shape} {' '.join(str(lane) for lane in self.lanes)})"
        if self.kind == "either":
            return f"(either {' '.join(str(a) for a in self.alternatives)})"
        if self.kind == "ref.null":
            return f"(ref.null {self.type})".replace(" )", ")")
        return f"(ref {self.type} non-null)"

    def matches(self, got: Value | None) -> bool:
        return match_value(self, got)


_FLOAT_LAYOUT = {"f32": (23, 8), "f64": (52, 11)}


def match_value(exp: Expected, got: Value | None) -> bool:
    """Does the result ``got`` satisfy ``exp``?"""
    kind = exp.kind
    if kind == "either":
        return any(match_value(alt, got) for alt in exp.alternatives)
    if got is None:
        return False
    if kind == "value":
        want = exp.value
        assert want is not None
        if want.type in NUMERIC_TYPES:
            return got.type == want.type and got.bits == want.bits
        if got.type in NUMERIC_TYPES:
            return False
        if want.bits is None or got.bits is None:
            return want.bits is None and got.bits is None
        if want.type == "funcref":
            return True
        return got.bits == want.bits
    if kind == "nan:canonical" or kind == "nan:arithmetic":
        if got.type != exp.type or got.bits is None:
            return False
        mant_bits, exp_bits = _FLOAT_LAYOUT[exp.type]
        return _nan_matches(kind, got.bits, mant_bits, exp_bits)
    if kind == "v128":
        if got.type != "v128" or got.bits is None:
            return False
        lanes = exp.lanes
        width = 128 // len(lanes)
        mask = (1 << width) - 1
        lane_type = _LANE_TYPE[exp.shape or ""]
        for i, lane in enumerate(lanes):
            lane_bits = (got.bits >> (i * width)) & mask
            if not match_value(lane, Value(lane_type, lane_bits)):
                return False
        return True
    if got.type in NUMERIC_TYPES:
        return False
    if kind == "ref.null":
        return got.bits is None
    if kind == "ref.nonnull":
        return got.bits is not None
    raise ValueError(f"unknown expectation kind {kind!r}")


def _nan_matches(kind: str, bits: int, mant_bits: int, exp_bits: int) -> bool:
    exp_all = (1 << exp_bits) - 1
    if (bits >> mant_bits) & exp_all != exp_all:
        return False
    mantissa = bits & ((1 << mant_bits) - 1)
    quiet = 1 << (mant_bits - 1)
    if kind == "nan:canonical":
        return mantissa == quiet
    return bool(mantissa & quiet)


# --------------------------------------------------------------------------- numbers

_DEC_INT = r"[0-9](?:_?[0-9])*"
_HEX_INT = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_INT_RE = re.compile(rf"([+-]?)(?:0x({_HEX_INT})|({_DEC_INT}))\Z")
_DEC_FLOAT_RE = re.compile(
    rf"([+-]?)({_DEC_INT})(?:\.({_DEC_INT})?)?(?:[eE]([+-]?{_DEC_INT}))?\Z")
_HEX_FLOAT_RE = re.compile(
    rf"([+-]?)0x({_HEX_INT})(?:\.({_HEX_INT})?)?(?:[pP]([+-]?{_DEC_INT}))?\Z")
_NAN_RE = re.compile(rf"([+-]?)nan(?::0x({_HEX_INT}))?\Z")
_INF_RE = re.compile(r"([+-]?)inf\Z")


def int_bits(text: str, width: int) -> int:
    """Parse an integer literal of an ``i<width>`` constant to its unsigned bit pattern.

    Both signed (``-1``) and unsigned (``0xffffffff``) spellings are accepted; the
    literal must fit in ``[-2**(width-1), 2**width - 1]``.  Raises ``ValueError``.
    """
    m = _INT_RE.match(text)
    if m is None:
        raise ValueError(f"malformed i{width} literal {text!r}")
    sign, hexdigits, decdigits = m.groups()
    if hexdigits is not None:
        n = int(hexdigits.replace("_", ""), 16)
    else:
        n = int(decdigits.replace("_", ""), 10)
    if sign == "-":
        if n > 1 << (width - 1):
            raise ValueError(f"i{width} constant out of range: {text}")
        return (-n) & ((1 << width) - 1)
    if n >> width:
        raise ValueError(f"i{width} constant out of range: {text}")
    return n


def _round_to_float(num: int, den: int, exp2: int, mant_bits: int, exp_bits: int) -> int | None:
    """Bit pattern (sign excluded) of the float nearest to ``num / den * 2**exp2`` (> 0),
    ties to even; ``None`` if that rounds to infinity."""
    precision = mant_bits + 1
    bias = (1 << (exp_bits - 1)) - 1
    emin = 1 - bias
    # e = floor(log2(value)): first estimate, then correct by one.
    e = num.bit_length() - den.bit_length() + exp2
    shift = exp2 - e
    if (num << shift if shift >= 0 else num) < (den if shift >= 0 else den << -shift):
        e -= 1
    e = max(e, emin)
    # m = value * 2**(precision - 1 - e), rounded to nearest, ties to even.
    shift = precision - 1 - e + exp2
    if shift >= 0:
        q, r = divmod(num << shift, den)
        twice_r, d = r << 1, den
    else:
        d = den << -shift
        q, r = divmod(num, d)
        twice_r = r << 1
    if twice_r > d or (twice_r == d and q & 1):
        q += 1
    if q >> precision:  # rounded up to the next binade
        q >>= 1
        e += 1
    if e > bias:
        return None
    if q >> mant_bits:  # normal
        return ((e + bias) << mant_bits) | (q & ((1 << mant_bits) - 1))
    return q  # subnormal (e == emin), or zero


def float_bits(text: str, width: int) -> int:
    """Parse a float literal of an ``f<width>`` constant (32 or 64) to its bit pattern.

    Accepts decimal (correctly rounded, ties to even), hexadecimal (``0x1.8p3``),
    ``inf``, ``nan``, ``nan:0x...`` with an optional sign and ``_`` separators.
    A finite literal that rounds to infinity is out of range.  Raises ``ValueError``.
    """
    if width == 32:
        mant_bits, exp_bits = 23, 8
    elif width == 64:
        mant_bits, exp_bits = 52, 11
    else:
        raise ValueError(f"bad float width {width}")
    sign_bit = 1 << (width - 1)
    inf_bits = ((1 << exp_bits) - 1) << mant_bits
    m = _DEC_FLOAT_RE.match(text)
    if m is not None:
        sign, whole, frac, exp = m.groups()
        neg = sign == "-"
        if width == 64:  # float() rounds decimal strings correctly
            value = float(text.replace("_", ""))
            if value in (float("inf"), float("-inf")):
                raise ValueError(f"f64 constant out of range: {text}")
            return struct.unpack("<Q", struct.pack("<d", value))[0]
        frac_digits = frac.replace("_", "") if frac else ""
        mantissa = int(whole.replace("_", "") + frac_digits)
        exponent = (int(exp.replace("_", "")) if exp else 0) - len(frac_digits)
        magnitude = len(str(mantissa)) + exponent  # 10**(magnitude-1) <= value < 10**magnitude
        if mantissa == 0 or magnitude < -60:
            bits = 0  # zero, or far below half the smallest f32 subnormal
        else:
            if magnitude > 40:
                rounded = None
            elif exponent >= 0:
                rounded = _round_to_float(mantissa * 10 ** exponent, 1, 0, mant_bits, exp_bits)
            else:
                rounded = _round_to_float(mantissa, 10 ** -exponent, 0, mant_bits, exp_bits)
            if rounded is None:
                raise ValueError(f"f{width} constant out of range: {text}")
            bits = rounded
        return bits | (sign_bit if neg else 0)
    m = _HEX_FLOAT_RE.match(text)
    if m is not None:
        sign, whole, frac, exp = m.groups()
        frac_digits = frac.replace("_", "") if frac else ""
        mantissa = int(whole.replace("_", "") + frac_digits, 16)
        exp2 = (int(exp.replace("_", "")) if exp else 0) - 4 * len(frac_digits)
        top = mantissa.bit_length() + exp2  # 2**(top-1) <= value < 2**top
        if mantissa == 0 or top < -1200:
            bits = 0  # zero, or far below half the smallest subnormal
        else:
            rounded = None if top > 1200 else _round_to_float(
                mantissa, 1, exp2, mant_bits, exp_bits)
            if rounded is None:
                raise ValueError(f"f{width} constant out of range: {text}")
            bits = rounded
        return bits | (sign_bit if sign == "-" else 0)
    m = _INF_RE.match(text)
    if m is not None:
        return inf_bits | (sign_bit if m.group(1) == "-" else 0)
    m = _NAN_RE.match(text)
    if m is not None:
        sign, payload = m.groups()
        if payload is None:
            mantissa = 1 << (mant_bits - 1)
        else:
            mantissa = int(payload.replace("_", ""), 16)
            if mantissa == 0 or mantissa >> mant_bits:
                raise ValueError(f"f{width} NaN payload out of range: {text}")
        return inf_bits | mantissa | (sign_bit if sign == "-" else 0)
    raise ValueError(f"malformed f{width} literal {text!r}")


_SHAPES = {
    "i8x16": ("i", 8, 16), "i16x8": ("i", 16, 8), "i32x4": ("i", 32, 4),
    "i64x2": ("i", 64, 2), "f32x4": ("f", 32, 4), "f64x2": ("f", 64, 2),
}
_LANE_TYPE = {"i8x16": "i8", "i16x8": "i16", "i32x4": "i32", "i64x2": "i64",
              "f32x4": "f32", "f64x2": "f64"}


def v128_bits(shape: str, lanes: list[str]) -> int:
    """The 128-bit pattern of ``v128.const <shape> <lanes...>`` (lane 0 = lowest bits)."""
    try:
        kind, width, count = _SHAPES[shape]
    except KeyError:
        raise ValueError(f"unknown v128 shape {shape!r}") from None
    if len(lanes) != count:
        raise ValueError(f"v128.const {shape} needs {count} lanes, got {len(lanes)}")
    bits = 0
    for i, text in enumerate(lanes):
        lane = int_bits(text, width) if kind == "i" else float_bits(text, width)
        bits |= lane << (i * width)
    return bits


# --------------------------------------------------------------------------- commands


@dataclass(slots=True)
class Command:
    """Base of all commands; ``line`` is the 1-based line of the command's ``(``."""

    line: int
    kind: ClassVar[str] = "command"


@dataclass(slots=True)
class ModuleCmd(Command):
    """``(module ...)``.  Exactly one of ``text``/``binary``/``quote_text`` is set:

    * ``form == "text"``: ``text`` is the module's exact source text (``(module ...)``;
      a ``definition`` keyword is blanked out, an inline module is wrapped);
    * ``form == "binary"``: ``binary`` is the concatenated bytes;
    * ``form == "quote"``: ``quote_text`` is the concatenated strings (module fields).

    ``definition`` marks ``(module definition ...)`` (compile only, instantiate with
    :class:`ModuleInstance`).  ``line``/``col`` are those of the ``(module`` token.
    """

    name: str | None = None
    form: str = "text"
    text: str | None = None
    binary: bytes | None = None
    quote_text: str | None = None
    quote_error: str | None = None  # the quoted bytes are not UTF-8
    definition: bool = False
    col: int = 0
    kind: ClassVar[str] = "module"


@dataclass(slots=True)
class ModuleInstance(Command):
    """``(module instance $I $M)``: instantiate the module definition ``$M`` as ``$I``."""

    instance: str | None = None
    module: str | None = None
    kind: ClassVar[str] = "module"


@dataclass(slots=True)
class Register(Command):
    """``(register "name" $M?)``: make a module's exports importable as ``name``."""

    name: str = ""
    module_id: str | None = None
    kind: ClassVar[str] = "register"


@dataclass(slots=True)
class Action(Command):
    """``(invoke $M? "name" args...)`` or ``(get $M? "name")`` (``op``)."""

    op: str = "invoke"
    module: str | None = None
    name: str = ""
    args: list[Value] = field(default_factory=list)
    kind: ClassVar[str] = "action"


@dataclass(slots=True)
class AssertReturn(Command):
    action: Action | None = None
    expected: list[Expected] = field(default_factory=list)
    kind: ClassVar[str] = "assert_return"


@dataclass(slots=True)
class AssertTrap(Command):
    """``(assert_trap <action or module> "message")``."""

    action: Action | ModuleCmd | None = None
    message: str = ""
    kind: ClassVar[str] = "assert_trap"

    @property
    def target(self) -> Action | ModuleCmd | None:
        """The action, or the module whose instantiation must trap."""
        return self.action


@dataclass(slots=True)
class AssertExhaustion(Command):
    action: Action | None = None
    message: str = ""
    kind: ClassVar[str] = "assert_exhaustion"


@dataclass(slots=True)
class AssertInvalid(Command):
    module: ModuleCmd | None = None
    message: str = ""
    kind: ClassVar[str] = "assert_invalid"


@dataclass(slots=True)
class AssertMalformed(Command):
    module: ModuleCmd | None = None
    message: str = ""
    kind: ClassVar[str] = "assert_malformed"


@dataclass(slots=True)
class AssertUnlinkable(Command):
    module: ModuleCmd | None = None
    message: str = ""
    kind: ClassVar[str] = "assert_unlinkable"


@dataclass(slots=True)
class AssertUninstantiable(Command):
    module: ModuleCmd | None = None
    message: str = ""
    kind: ClassVar[str] = "assert_uninstantiable"


@dataclass(slots=True)
class AssertException(Command):
    """``(assert_exception <action>)``: the action throws a wasm exception."""

    action: Action | None = None
    kind: ClassVar[str] = "assert_exception"


@dataclass(slots=True)
class Unsupported(Command):
    """A form this reader does not model (``thread``, ``wait``, ...): ``head`` is its
    keyword, ``reason`` why it is not run, ``node`` the parsed form.

    With ``parse_script(..., strict=False)`` a command that cannot be read is also kept
    as an ``Unsupported`` whose ``error`` is the syntax error's text."""

    head: str = ""
    reason: str = ""
    node: Node | None = None
    error: str | None = None

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.head or "unknown"


# --------------------------------------------------------------------------- parser


_MODULE_FIELDS = frozenset({
    "type", "import", "func", "table", "memory", "global", "export", "start", "elem",
    "data", "tag", "rec",
})


def _items(node: SList) -> list[Node]:
    """A list's items without annotation lists (annotations are like whitespace)."""
    items = node.items
    for item in items:
        if type(item) is not Atom and item.is_annotation:
            return node.without_annotations()
    return items


def _keyword_of(node: Node) -> str | None:
    return node.keyword if isinstance(node, SList) else None


def _head(items: list[Node]) -> str | None:
    if items and type(items[0]) is Atom:
        return items[0].text  # type: ignore[union-attr]
    return None


_MESSAGE_ASSERTS = {
    "assert_invalid": AssertInvalid, "assert_malformed": AssertMalformed,
    "assert_unlinkable": AssertUnlinkable, "assert_uninstantiable": AssertUninstantiable,
}


class _ScriptParser:
    def __init__(self, text: str, name: str, strict: bool = True) -> None:
        self.text = text
        self.name = name
        self.strict = strict

    # -- helpers

    @staticmethod
    def atom(node: Node, what: str) -> str:
        if not isinstance(node, Atom):
            raise node.error(f"expected {what}")
        return node.text

    @staticmethod
    def string(node: Node, what: str = "a string") -> bytes:
        if not isinstance(node, String):
            raise node.error(f"expected {what}")
        return node.value

    def name_string(self, node: Node, what: str) -> str:
        raw = self.string(node, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise node.error(f"{what} is not valid UTF-8") from None

    @staticmethod
    def optional_id(items: list[Node], index: int) -> tuple[str | None, int]:
        if index < len(items):
            node = items[index]
            if isinstance(node, Atom) and node.text.startswith("$"):
                return node.text, index + 1
        return None, index

    @staticmethod
    def is_module(node: Node) -> bool:
        return isinstance(node, SList) and node.keyword == "module"

    # -- commands

    def script(self, nodes: list[Node]) -> list[Command]:
        nodes = [n for n in nodes if not n.is_annotation]
        if nodes and all(isinstance(n, SList) and n.keyword in _MODULE_FIELDS for n in nodes):
            # An inline module: the whole script is a list of module fields.
            first, last = nodes[0], nodes[-1]
            line, col = first.src.line_col(first.pos)
            body = self.text[first.pos:last.end]
            return [ModuleCmd(line=line, col=col, form="text", text=f"(module {body}\n)")]
        commands: list[Command] = []
        for node in nodes:
            try:
                if not isinstance(node, SList):
                    raise node.error("expected a command in parentheses")
                commands.append(self.command(node))
            except WastSyntaxError as e:
                if self.strict:
                    raise
                head = _keyword_of(node) or "unknown"
                commands.append(Unsupported(line=node.line, head=head, node=node,
                                            reason="script error", error=str(e)))
        return commands

    def command(self, node: SList) -> Command:
        items = _items(node)
        head = _head(items)
        line = node.line
        if head == "module":
            return self.module(node)
        if head in ("invoke", "get"):
            return self.action(node)
        if head == "register":
            return self.register(node, items)
        if head == "assert_return":
            if len(items) < 2:
                raise node.error("assert_return needs an action")
            action = self.action(items[1])
            expected = [self.result(item) for item in items[2:]]
            return AssertReturn(line=line, action=action, expected=expected)
        if head in ("assert_trap", "assert_exhaustion"):
            if len(items) != 3:
                raise node.error(f"{head} needs an action or module and a message")
            target = items[1]
            message = self.name_string(items[2], "a message")
            if self.is_module(target):
                if head == "assert_exhaustion":
                    raise target.error("assert_exhaustion needs an action")
                return AssertTrap(line=line, action=self.module(target), message=message)
            action = self.action(target)
            if head == "assert_trap":
                return AssertTrap(line=line, action=action, message=message)
            return AssertExhaustion(line=line, action=action, message=message)
        cls = _MESSAGE_ASSERTS.get(head or "")
        if cls is not None:
            if len(items) != 3:
                raise node.error(f"{head} needs a module and a message")
            target = items[1]
            if not self.is_module(target):
                raise target.error(f"{head} needs a module")
            module = self.module(target)
            if not isinstance(module, ModuleCmd):
                raise target.error(f"{head} needs a module, not a module instance")
            message = self.name_string(items[2], "a message")
            return cls(line=line, module=module, message=message)
        if head == "assert_exception":
            if len(items) != 2:
                raise node.error("assert_exception needs an action")
            return AssertException(line=line, action=self.action(items[1]))
        reason = {
            "thread": "threads (thread blocks)",
            "wait": "threads (wait)",
            "either": "either outside assert_return",
        }.get(head or "", f"unknown command {head!r}")
        return Unsupported(line=line, head=head or "unknown", reason=reason, node=node)

    def module(self, node: Node) -> Command:
        assert isinstance(node, SList)
        items = _items(node)
        line, col = node.src.line_col(node.pos)
        index = 1
        definition = False
        def_node: Node | None = None
        word = _head(items[index:])
        if word == "instance":
            inst, index = self.optional_id(items, index + 1)
            mod, index = self.optional_id(items, index)
            if index != len(items):
                raise items[index].error("unexpected item in module instance")
            if mod is None:
                inst, mod = None, inst
            return ModuleInstance(line=line, instance=inst, module=mod)
        if word == "definition":
            definition = True
            def_node = items[index]
            index += 1
        name, index = self.optional_id(items, index)
        mode = _head(items[index:])
        if mode not in ("binary", "quote"):
            if def_node is not None:
                text = (self.text[node.pos:def_node.pos] + " " * (def_node.end - def_node.pos)
                        + self.text[def_node.end:node.end])
            else:
                text = self.text[node.pos:node.end]
            return ModuleCmd(line=line, col=col, name=name, form="text", text=text,
                             definition=definition)
        parts = [self.string(item, f"a string in a {mode} module") for item in items[index + 1:]]
        data = b"".join(parts)
        if mode == "binary":
            return ModuleCmd(line=line, col=col, name=name, form="binary", binary=data,
                             definition=definition)
        try:
            quote = data.decode("utf-8")
            quote_error = None
        except UnicodeDecodeError as e:
            quote = data.decode("utf-8", errors="replace")
            quote_error = f"quoted module text is not valid UTF-8: {e}"
        return ModuleCmd(line=line, col=col, name=name, form="quote", quote_text=quote,
                         quote_error=quote_error, definition=definition)

    def register(self, node: SList, items: list[Node]) -> Register:
        if len(items) < 2:
            raise node.error("register needs a name")
        name = self.name_string(items[1], "a register name")
        module_id, index = self.optional_id(items, 2)
        if index != len(items):
            raise items[index].error("unexpected item in register")
        return Register(line=node.line, name=name, module_id=module_id)

    def action(self, node: Node) -> Action:
        if not isinstance(node, SList):
            raise node.error("expected an action (invoke or get)")
        items = _items(node)
        op = _head(items)
        if op != "invoke" and op != "get":
            raise node.error("expected an action (invoke or get)")
        module, index = self.optional_id(items, 1)
        if index >= len(items):
            raise node.error(f"{op} needs an export name")
        name = self.name_string(items[index], "an export name")
        args = [self.const(arg) for arg in items[index + 1:]]
        if op == "get" and args:
            raise items[index + 1].error("get takes no arguments")
        return Action(line=node.line, op=op, module=module, name=name, args=args)

    # -- constants

    @staticmethod
    def _const_parts(node: Node) -> tuple[str, list[Node]]:
        if isinstance(node, SList):
            items = _items(node)
            head = _head(items)
            if head is not None:
                return head, items[1:]
        raise node.error("expected a constant")

    def const(self, node: Node) -> Value:
        head, rest = self._const_parts(node)
        try:
            if head in ("i32.const", "i64.const", "f32.const", "f64.const"):
                if len(rest) != 1:
                    raise node.error(f"{head} takes one literal")
                text = self.atom(rest[0], "a number")
                width = 32 if head[1:3] == "32" else 64
                if head[0] == "i":
                    return Value(head[:3], int_bits(text, width))
                return Value(head[:3], float_bits(text, width))
            if head == "v128.const":
                if len(rest) < 1:
                    raise node.error("v128.const needs a shape")
                shape = self.atom(rest[0], "a v128 shape")
                lanes = [self.atom(lane, "a lane literal") for lane in rest[1:]]
                return Value("v128", v128_bits(shape, lanes))
            if head == "ref.null":
                if len(rest) > 1:
                    raise node.error("ref.null takes at most one heap type")
                heap = self.atom(rest[0], "a heap type") if rest else "ref"
                return Value(REF_TYPES.get(heap, "ref"), None)
            if head in ("ref.extern", "ref.host"):
                if len(rest) != 1:
                    raise node.error(f"{head} takes one number")
                number = int_bits(self.atom(rest[0], "a number"), 64)
                return Value("externref" if head == "ref.extern" else "hostref", number)
        except ValueError as e:
            if isinstance(e, WastSyntaxError):
                raise
            raise node.error(str(e)) from None
        raise node.error(f"unknown constant {head!r}")

    def result(self, node: Node) -> Expected:
        head, rest = self._const_parts(node)
        if head == "either":
            if not rest:
                raise node.error("either needs alternatives")
            return Expected(kind="either", alternatives=tuple(self.result(r) for r in rest))
        if head in ("f32.const", "f64.const") and len(rest) == 1 and isinstance(rest[0], Atom):
            word = rest[0].text
            if word == "nan:canonical" or word == "nan:arithmetic":
                return Expected(kind=word, type=head[:3])
        elif head == "v128.const" and rest and isinstance(rest[0], Atom):
            shape = rest[0].text
            lanes = rest[1:]
            if shape in ("f32x4", "f64x2") and any(
                    isinstance(lane, Atom) and lane.text.startswith("nan:")
                    and lane.text in ("nan:canonical", "nan:arithmetic") for lane in lanes):
                return self.v128_pattern(node, shape, lanes)
        elif head.startswith("ref.") and head != "ref.null" and (
                head not in ("ref.extern", "ref.host") or not rest):
            # (ref.func), (ref.extern), (ref.struct), (ref.array), (ref.i31), (ref.eq), ...
            kind_name = head[4:]
            return Expected(kind="ref.nonnull", type=REF_TYPES.get(kind_name, kind_name + "ref"))
        value = self.const(node)
        if value.bits is None:
            return Expected(kind="ref.null", type=value.type)
        return Expected(kind="value", type=value.type, value=value)

    def v128_pattern(self, node: Node, shape: str, lanes: list[Node]) -> Expected:
        _, width, count = _SHAPES[shape]
        if len(lanes) != count:
            raise node.error(f"v128.const {shape} needs {count} lanes")
        lane_type = _LANE_TYPE[shape]
        patterns = []
        for lane in lanes:
            text = self.atom(lane, "a lane literal")
            if text in ("nan:canonical", "nan:arithmetic"):
                patterns.append(Expected(kind=text, type=lane_type))
                continue
            try:
                bits = float_bits(text, width)
            except ValueError as e:
                raise lane.error(str(e)) from None
            patterns.append(Expected(kind="value", type=lane_type, value=Value(lane_type, bits)))
        return Expected(kind="v128", type="v128", shape=shape, lanes=tuple(patterns))


_OPAQUE = frozenset({"module"})


def parse_script(text: str, name: str = "<script>", strict: bool = True) -> list[Command]:
    """Read a ``.wast`` script into commands; raises :class:`WastSyntaxError`.

    With ``strict=False`` only an s-expression error (unbalanced parentheses, a bad
    string...) raises; a command that cannot be read (a bad constant, a missing
    argument) becomes an :class:`Unsupported` command with ``error`` set."""
    nodes = parse(text, name, opaque=_OPAQUE)
    return _ScriptParser(text, name, strict).script(nodes)


def parse_file(path: str | Path, strict: bool = True) -> list[Command]:
    """Read a ``.wast`` file (UTF-8) into commands (see :func:`parse_script`)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WastSyntaxError(f"file is not valid UTF-8: {e}", path.name, 1, 1) from None
    return parse_script(text, path.name, strict)


def value_types(command: Command) -> set[str]:
    """Types of all argument and expected values of a command (for scope decisions)."""
    types: set[str] = set()
    action = getattr(command, "action", None)
    if isinstance(action, Action):
        types.update(v.type for v in action.args)
    for exp in getattr(command, "expected", ()):
        _expected_types(exp, types)
    return types


def _expected_types(exp: Expected, out: set[str]) -> None:
    if exp.kind == "either":
        for alt in exp.alternatives:
            _expected_types(alt, out)
    elif exp.value is not None:
        out.add(exp.value.type)
    elif exp.type:
        out.add(exp.type)
