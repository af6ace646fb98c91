"""One result type for every rule check: a `Finding` is what a rule says about one place of one input file.

Two tables produce them: `ascend/rules.RULES` (a model's layers and nodes against atc / omg: `layer` and `type`
are set, `line` is not) and `aipp/rules.AIPP_RULES` (an AIPP config, alone or against the model: `line` is set,
`layer` is not). Both print one line naming the file, the place, the problem and the source of the rule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

LEVELS = ("error", "warning", "note")  # error: the tool refuses; warning: accepted, but see why; note: for the record


@dataclass
class Finding:
    """One message of one rule.

    level: error | warning | note. rule: the rule id (`tbe.crop-inside`, `conv.depthwise-buffer`). message: the
    problem in plain words (no file name). line: the 1-based line of a text config (AIPP), else None.
    source: where the rule is written (a URL, a source file and function, a guide section), "" for matteconv's
    own lints. layer, type: the model layer / node and its type, for the model rules ("" otherwise).
    """

    level: str
    rule: str
    message: str
    line: int | None = None
    source: str = ""
    layer: str = ""
    type: str = ""

    @property
    def severity(self) -> str:
        """`level` under the name the Ascend rule table and its JSON use."""
        return self.level

    def text(self, path: str) -> str:
        """'path:line: message [source]' (a config finding)."""
        where = f"{path}:{self.line}" if self.line else path
        src = f" [{self.source}]" if self.source else ""
        return f"{where}: {self.message}{src}"

    def layer_text(self, path, framework: str) -> str:
        """"path: layer 'x' (Type) message [rule id: source]" (a model finding; `node` for ONNX)."""
        noun = "layer" if framework == "caffe" else "node"
        return f"{path}: {noun} {self.layer!r} ({self.type}) {self.message} [rule {self.rule}: {self.source}]"

    def to_dict(self) -> dict:
        """A config finding's JSON: level, rule, message, line, source (layer and type only when set)."""
        d = asdict(self)
        for key in ("layer", "type"):
            if not d[key]:
                del d[key]
        return d

    def violation_dict(self) -> dict:
        """A model finding's JSON as `inspect --json` / `om --json` write it: rule, severity, layer, type,
        message, source."""
        return {"rule": self.rule, "severity": self.level, "layer": self.layer, "type": self.type,
                "message": self.message, "source": self.source}
