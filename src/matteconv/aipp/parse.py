"""Read an AIPP config (`--insert_op_conf`) exactly as ATC does: protobuf text format of `domi.InsertNewOps`.

GraphEngine reads the file with protobuf's C++ `TextFormat::Parse` into the message of `insert_op.proto`; we
parse it with google.protobuf's `text_format` into a message built from the same field list (`schema.py`), so
what protoc's text format accepts is accepted here: `aipp_op{`, `aipp_mode:static`, `#` comments, several
fields on one line, the closing brace on a value line, any field order, `key: [a, b]` for repeated fields.
Two refusals come from the protobuf C++ parser itself and are added here: a non-repeated field given twice
after a non-default value ("Non-repeated field ... is specified multiple times"), and an unknown field name.

A light token scan beside the protobuf parse records the line of every field (for messages) and which fields
the file actually sets (proto3 cannot tell `crop: false` from nothing, GE's defaults can).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import MatteconvError
from .schema import FIELDS, INPUT_FORMATS, descriptor_proto, ge_defaults, proto_default


class AippParseError(MatteconvError):
    """A config that ATC's parser refuses: `rule` (proto.*), `line` (1-based, None when the file has none)."""

    def __init__(self, message: str, rule: str, line: int | None = None):
        super().__init__(message)
        self.rule, self.line = rule, line


@dataclass
class AippOp:
    """One `aipp_op` block.

    values:  the fields the file sets (repeated fields: their first value, as GE uses `field(0)`).
    counts:  how many values each repeated field got (GE refuses more than one).
    lines:   the line of each field's first occurrence; `line` is the line of `aipp_op`.
    get(k):  the value GE uses: explicit, else GE's default (schema.ge_defaults), fields of a switch that is
             off reset as GE does.
    """

    values: dict[str, object] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    line: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    _memo: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def effective(self) -> dict[str, object]:
        key = tuple(self.values.items())
        if self._memo is None or self._memo[0] != key:  # values may be edited: recomputed when they change
            self._memo = (key, ge_defaults(self.values))
        return self._memo[1]

    def get(self, key: str, default=None):
        if key in FIELDS:
            return self.effective[key]
        return default

    def is_set(self, key: str) -> bool:
        return key in self.values

    @property
    def mode(self) -> str:
        return str(self.get("aipp_mode"))

    @property
    def input_format(self) -> str:
        return str(self.get("input_format"))

    @property
    def rank(self) -> int:
        """related_input_rank as written (0 when absent); see `input_name`, which wins over it."""
        return int(self.get("related_input_rank"))

    @property
    def input_name(self) -> str | None:
        """related_input_name, or None when absent or empty. GE skips an empty name, and a name wins over
        related_input_rank when both are set ([atc] template: "related_input_name优先级高于related_input_rank";
        [ge] ConvertRelatedInputNameToRank)."""
        name = str(self.get("related_input_name") or "")
        return name or None

    def resolved_rank(self, input_names: list[str] | None = None) -> int | None:
        """The model input this op feeds: the index of `input_name` among `input_names` when the op names one
        (None if the name is not an input, or if the names are not known), else `rank`."""
        if self.input_name is None:
            return self.rank
        if input_names is None or self.input_name not in input_names:
            return None
        return input_names.index(self.input_name)

    @property
    def channels(self) -> int:
        """Channels the op feeds the model ([tbe]: YUV400 -> 1, XRGB/ARGB/AYUV -> 4, else 3)."""
        fmt = self.input_format
        if fmt == "YUV400_U8" or fmt.startswith("RAW"):
            return 1
        if fmt in ("XRGB8888_U8", "ARGB8888_U8", "AYUV444_U8"):
            return 4
        return 3

    def src_hw(self, model_hw: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """Raw source H, W (a size of 0 means the model's, [tbe])."""
        h, w = int(self.get("src_image_size_h")), int(self.get("src_image_size_w"))
        if model_hw is not None:
            h, w = h or model_hw[0], w or model_hw[1]
        return (h, w) if h and w else None

    def crop_hw(self, model_hw: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """H, W after the crop (crop size 0 = the model's, [tbe]); the source size when crop is off."""
        if not self.get("crop"):
            return self.src_hw(model_hw)
        h, w = int(self.get("crop_size_h")), int(self.get("crop_size_w"))
        if model_hw is not None:
            h, w = h or model_hw[0], w or model_hw[1]
        return (h, w) if h and w else None

    def padding_hw(self) -> tuple[int, int, int, int]:
        """top, bottom, left, right padding GE applies (0 when padding is off)."""
        return tuple(int(self.get(f"{s}_padding_size")) for s in ("top", "bottom", "left", "right"))

    def output_hw(self, model_hw: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """H, W that come out of the op: (crop or source) + padding ([atc] template order)."""
        hw = self.crop_hw(model_hw)
        if hw is None:
            return None
        t, b, left, r = self.padding_hw()
        return hw[0] + t + b, hw[1] + left + r

    def where(self, path: str, key: str | None = None) -> str:
        return f"{path}:{self.lines.get(key, self.line) if key else self.line}"


@dataclass
class AippConfig:
    """A parsed config file: the aipp_op blocks in file order (multi_shape_op blocks are counted, not used)."""

    ops: list[AippOp]
    path: str = "<text>"
    text: str = ""
    multi_shape_ops: int = 0

    def op_for_input(self, rank: int = 0, input_names: list[str] | None = None) -> AippOp | None:
        """The op that feeds model input `rank`: with the model's `input_names`, an op that names its input is
        matched by that name; without them, every op by its related_input_rank."""
        for op in self.ops:
            if (op.resolved_rank(input_names) if input_names is not None else op.rank) == rank:
                return op
        return None


@lru_cache(maxsize=1)
def _message_class():
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_proto())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("domi.InsertNewOps"))


# --- the token scan: lines and presence -------------------------------------------------------------------

_TOKEN = re.compile(r'\s+|#[^\n]*|[{}<>\[\]:;,]|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[^\s{}<>\[\]:;,#"\']+')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ZERO = {"false", "False", "f", "0", "0.0", "-0", "undefined", "UNDEFINED", '""', "''"}


def _tokens(text: str) -> list[tuple[str, int]]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # an unterminated quote: protobuf has refused the file already
            break
        tok = m.group(0)
        if not tok.isspace() and not tok.startswith("#"):
            out.append((tok, line))
        line += tok.count("\n")
        pos = m.end()
    return out


def _is_zero(raw: str) -> bool:
    if raw in _ZERO:
        return True
    try:
        return float(raw) == 0
    except ValueError:
        return False


def _scan(text: str) -> list[tuple[str, int, list[tuple[str, int, str]]]]:
    """Top-level blocks: (name, line, [(field, line, raw first value token), ...]) for a text protobuf accepted."""
    toks = _tokens(text)
    blocks: list[tuple[str, int, list[tuple[str, int, str]]]] = []
    depth, i = 0, 0
    while i < len(toks):
        tok, line = toks[i]
        nxt = toks[i + 1][0] if i + 1 < len(toks) else ""
        if tok in "{<" and len(tok) == 1:
            depth += 1
        elif tok in "}>" and len(tok) == 1:
            depth -= 1
        elif depth == 0 and _IDENT.match(tok):
            blocks.append((tok, line, []))
        elif depth == 1 and _IDENT.match(tok) and nxt == ":" and blocks:
            raw = toks[i + 2][0] if i + 2 < len(toks) else ""
            blocks[-1][2].append((tok, line, raw))
        i += 1
    return blocks


def _friendly(msg: str, path: str, line: int, col: int, text: str) -> tuple[str, str, int]:
    """protobuf's ParseError text -> (one-line message naming the file and line, rule, line)."""
    m = re.search(r'has no field named "([^"]+)"', msg)
    if m and m.group(1) in ("aipp_op", "multi_shape_op"):
        return (f"{path}:{line}: {m.group(1)} inside an aipp_op block: is a '}}' missing? (protobuf text format)",
                "proto.nesting", line)
    if m:
        return (f"{path}:{line}: unknown AIPP field {m.group(1)!r} (not in GraphEngine's insert_op.proto)",
                "proto.unknown-field", line)
    m = re.search(r'should not have multiple "([^"]+)" fields', msg)
    if m:
        return (f"{path}:{line}: {m.group(1)} is set twice in this aipp_op: protobuf's parser in ATC refuses a "
                "non-repeated field specified multiple times", "proto.set-twice", line)
    m = re.search(r'Enum type "[^"]*InputFormat" has no value named ([^\s.]+)', msg)
    if m:
        return (f"{path}:{line}: input_format {m.group(1)!r} is not one of {', '.join(INPUT_FORMATS[1:])} "
                "(insert_op.proto)", "proto.enum", line)
    m = re.search(r'Enum type "[^"]*AippMode" has no value named ([^\s.]+)', msg)
    if m:
        return f"{path}:{line}: aipp_mode {m.group(1)!r} is not static or dynamic (insert_op.proto)", "proto.enum", line
    m = re.match(r"'\s*(\w+)\s*:?\s*(.*?)\s*': Expected \"true\" or \"false\"", msg)
    if m:
        return (f"{path}:{line}: {m.group(1)} must be true/false/1/0, got {m.group(2)!r} (protobuf text format)",
                "proto.bool", line)
    if msg.startswith('Expected "}"'):
        opened: list[int] = []
        for tok, tline in _tokens(text):
            if tok in ("{", "<"):
                opened.append(tline)
            elif tok in ("}", ">") and opened:
                opened.pop()
        if opened:
            return (f"{path}:{opened[0]}: aipp_op block opened here is never closed with '}}' (protobuf text "
                    "format)", "proto.unclosed", opened[0])
    return f"{path}:{line}:{col}: {msg} (protobuf text format, as ATC's parser reads it)", "proto.syntax", line


def parse_config(text: str, path: str = "<text>") -> AippConfig:
    """Protobuf text of `aipp_op { ... }` blocks -> AippConfig.

    Raises AippParseError "file:line: problem" (rule proto.*) for what protobuf's text parser refuses; nothing
    else is checked here. `matteconv.aipp.parse_config` / `load_config` also validate (check.validate_config:
    what GraphEngine and the AIPP operator refuse), and check.check_config reports everything.
    """
    from google.protobuf import text_format

    msg = _message_class()()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        line, col = e.GetLine() or 1, e.GetColumn() or 0
        raw = str(e)
        raw = re.sub(r"^\d+:\d+\s*:\s*", "", raw)
        raise AippParseError(*_friendly(raw, path, line, col, text)) from None
    except Exception as e:  # noqa: BLE001 - any other parser failure is still this file's problem
        raise AippParseError(f"{path}: not a protobuf text AIPP config ({type(e).__name__}: {e})",
                             "proto.syntax") from None
    blocks = _scan(text)
    aipp_blocks = [b for b in blocks if b[0] == "aipp_op"]
    if len(aipp_blocks) != len(msg.aipp_op):  # defensive: the scan and protobuf must agree
        raise MatteconvError(f"{path}: could not match {len(msg.aipp_op)} aipp_op block(s) to the text")
    ops: list[AippOp] = []
    for (_, bline, fields), pm in zip(aipp_blocks, msg.aipp_op):
        op = AippOp(line=bline)
        first_raw: dict[str, str] = {}
        for name, fline, raw in fields:
            spec = FIELDS[name]
            if name in op.lines and not spec.repeated and not _is_zero(first_raw[name]):
                # protobuf C++ TextFormat (default parser): a singular field already set may not be set again
                raise AippParseError(f"{path}:{fline}: {name} is set twice in this aipp_op (first at line "
                                     f"{op.lines[name]}): protobuf's parser in ATC refuses a non-repeated field "
                                     "specified multiple times", "proto.set-twice", fline)
            op.lines.setdefault(name, fline)
            first_raw.setdefault(name, raw)
        for name in op.lines:
            spec = FIELDS[name]
            value = getattr(pm, name)
            if spec.repeated:
                op.counts[name] = len(value)
                if not len(value):
                    continue
                value = value[0]
            if spec.kind == "enum":
                enum = pm.DESCRIPTOR.fields_by_name[name].enum_type
                value = enum.values_by_number[value].name if value in enum.values_by_number else int(value)
            elif spec.kind == "float":
                # the decimal the file wrote (GE keeps a float32 of it; the fp16 registers round further, which
                # emulate(fp16=True) models): float32 here would make exact comparisons with numpy drift an ulp
                try:
                    value = float(first_raw[name])
                except ValueError:
                    value = float(value)
            op.values[name] = value if value is not None else proto_default(name)
        ops.append(op)
    if not ops:
        raise AippParseError(f"{path}: no aipp_op block found (nothing to check)", "proto.no-aipp-op")
    return AippConfig(ops=ops, path=path, text=text, multi_shape_ops=len(msg.multi_shape_op))


def decode_config(raw: bytes, path: str = "<bytes>") -> str:
    """The text of a config's bytes as protobuf's C++ text parser sees it (what GraphEngine reads the file with).

    Its tokenizer skips a `#` comment to the end of the line without decoding it, so a comment in GBK, or one
    cut in the middle of a UTF-8 character, is no error: those bytes become U+FFFD here (comments are never
    used). Outside comments the tokens are ASCII, and a string value of a proto3 field (`related_input_name`)
    must be valid UTF-8 (protobuf refuses the parse otherwise). Raises AippParseError (rule proto.utf8) naming
    the line of the first byte that is neither.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i, n, quote = 0, len(raw), 0
    while i < n:
        b = raw[i]
        if quote:  # inside '...' or "...": up to the closing quote (or the line's end, where protobuf stops)
            j = i
            while j < n and raw[j] not in (quote, 0x0A):
                j += 2 if raw[j] == 0x5C else 1  # a backslash escapes the next byte
            j = min(j, n)
            chunk = raw[i:j]
            try:
                out.append(chunk.decode("utf-8"))
            except UnicodeDecodeError as e:
                line = raw[: i + e.start].count(b"\n") + 1
                raise AippParseError(f"{path}:{line}: not UTF-8 text in a string value (protobuf requires UTF-8 in "
                                     "string fields; only comments may hold other bytes)", "proto.utf8", line) from None
            i, quote = j, 0
            continue
        if b in (0x22, 0x27):
            quote = b
            out.append(chr(b))
            i += 1
            continue
        if b == 0x23:  # '#': a comment, skipped by the tokenizer byte by byte
            j = raw.find(b"\n", i)
            j = n if j < 0 else j
            out.append(raw[i:j].decode("utf-8", errors="replace"))
            i = j
            continue
        j = i
        while j < n and raw[j] not in (0x22, 0x27, 0x23):
            j += 1
        try:
            out.append(raw[i:j].decode("utf-8"))
        except UnicodeDecodeError as e:
            line = raw[: i + e.start].count(b"\n") + 1
            raise AippParseError(f"{path}:{line}: not UTF-8 text, outside a comment (protobuf's text parser reads "
                                 "only ASCII tokens there; comments may hold any bytes)", "proto.utf8", line) from None
        i = j
    return "".join(out)


def load_config(path: str | Path) -> AippConfig:
    """Read and parse an AIPP config file: its bytes as protobuf's text parser reads them (`decode_config`:
    comments in any encoding, string values UTF-8). Not validated: see `matteconv.aipp.load_config`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise MatteconvError(f"{p}: cannot read AIPP config ({e.strerror or e})") from None
    return parse_config(decode_config(raw, str(p)), str(p))
