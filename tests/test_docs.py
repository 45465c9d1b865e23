"""The documentation cannot drift from the code: links resolve, commands are real.

- Every relative link in README.md and docs/ (results pages included) points at a file
  that exists, and every `#anchor` at a heading of that file.
- Every `revsearch ...` command shown parses with the real CLI parser (so a renamed or
  removed flag fails here), and every subcommand shown is run end to end by some test
  (through `run_cli` or, for `serve`, a live server).
- Every `make TARGET` exists in the Makefile; every `bench/*.py` and `tests/*.py`
  mentioned exists; every benchmark script shown is run (on small data) by
  test_bench.py, and `make demo` is run here on a subset.
- Every number-bearing results page names the command that produced it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from revsearch.cli import build_parser

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`\n]+)`")


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in path.read_text().splitlines()
            if line.startswith("#")}


def _links() -> list[tuple[Path, str]]:
    return [(doc, m.group(1)) for doc in DOCS for m in LINK.finditer(doc.read_text())]


def test_docs_exist_and_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in ("architecture", "methods", "experiments", "reproduce", "deploy",
                 "responsible-use"):
        assert (ROOT / "docs" / f"{name}.md").is_file()
        assert f"docs/{name}.md" in readme, f"README does not link docs/{name}.md"
    assert "notebooks/walkthrough.ipynb" in readme


@pytest.mark.parametrize(("doc", "target"), _links(),
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_link_resolves(doc, target):
    if target.startswith(("http://", "https://", "mailto:")):
        return  # no network here; external links are not checked
    path_part, _, anchor = target.partition("#")
    dest = (doc.parent / path_part).resolve() if path_part else doc
    assert dest.exists(), f"{doc.relative_to(ROOT)} links to missing {target}"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), \
            f"{doc.relative_to(ROOT)}: no heading #{anchor} in {dest.name}"


def _shown_commands() -> list[tuple[Path, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        snippets = [line for block in CODE_BLOCK.findall(text) for line in block.splitlines()]
        snippets += INLINE.findall(CODE_BLOCK.sub("", text))
        for line in snippets:
            line = re.sub(r"\s+#\s.*$", "", line.strip().lstrip("$ ")).strip()
            line = re.sub(r"^(\.venv/bin/)?", "", line)
            if line.startswith(("revsearch ", "make ", "python bench/", "python tests/")):
                found.append((doc, line))
    return found


COMMANDS = _shown_commands()
SUBCOMMANDS = set(next(a for a in build_parser()._actions if a.dest == "command").choices)


def test_some_commands_are_found():
    assert len({c for _, c in COMMANDS if c.startswith("revsearch ")}) >= 15


@pytest.mark.parametrize(("doc", "command"), COMMANDS,
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_shown_command_is_real(doc, command):
    words = shlex.split(command)
    if words[0] == "revsearch":
        if words[1:] in ([], ["..."]) or "..." in words:
            return  # an elided example, not a command
        if len(words) == 2:  # `revsearch index` in a sentence names the subcommand
            assert words[1] in SUBCOMMANDS, f"{doc.name}: no subcommand {words[1]}"
            return
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as exc:
            raise AssertionError(f"{doc.name}: `{command}` does not parse") from exc
    elif words[0] == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in (w for w in words[1:] if "=" not in w):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), \
                f"{doc.name}: no make target {target}"
    else:
        assert (ROOT / words[1]).is_file(), f"{doc.name}: {words[1]} does not exist"


def test_every_shown_subcommand_is_run_by_a_test():
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    shown = {shlex.split(c)[1] for _, c in COMMANDS
             if c.startswith("revsearch ") and len(shlex.split(c)) > 1}
    for sub in sorted(shown):
        if sub == "serve":
            assert '"serve"' in tests, "no test starts `revsearch serve`"
        elif sub == "eval":
            for task in ("lfw", "ann", "ytf", "occlusion"):
                assert f'run_cli("eval", "{task}"' in tests, f"no test runs eval {task}"
        else:
            assert f'run_cli("{sub}"' in tests, f"no test runs `revsearch {sub}`"


def test_every_shown_script_and_make_target_is_run_by_a_test():
    """Benchmarks run on small data in test_bench.py; `make demo` below; `make test` is CI
    itself and `make test-fast` a part of it; `make notebook` re-executes what
    test_notebook.py executes; each `make bench-*` runs one of the benchmark scripts."""
    bench_tests = (ROOT / "tests" / "test_bench.py").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for _, command in COMMANDS:
        words = shlex.split(command)
        if words[0] == "python" and words[1].startswith("bench/"):
            script = Path(words[1]).name
            assert f'_run("{script}"' in bench_tests, f"no test runs {script}"
            if "--server" in words:
                assert '"--server"' in bench_tests, f"no test runs {script} --server"
        elif words[0] == "make":
            target = words[1]
            if target.startswith("bench"):
                recipe = re.search(rf"^{target}:.*\n\t(.*)", makefile, re.M).group(1)
                script = re.search(r"bench/(\w+\.py)", recipe).group(1)
                assert f'_run("{script}"' in bench_tests, f"make {target}: {script} untested"
            else:
                assert target in ("demo", "test", "test-fast", "notebook"), \
                    f"make {target} is untested"


def test_results_pages_name_their_command():
    for page in sorted((ROOT / "docs" / "results").glob("*.md")):
        assert re.search(r"Command: `[^`]+`|`(revsearch|python|\.venv/bin/python) [^`]+`",
                         page.read_text()), f"{page.name} does not say how it was made"


@pytest.mark.slow
def test_make_demo_runs_on_a_subset(subset_dir, tmp_path):
    """The README's first set-up command, on a subset instead of full LFW: it indexes the
    folder and prints the query's other photos first."""
    if subprocess.run(["make", "-q", "venv"], cwd=ROOT).returncode != 0:
        pytest.skip("the Makefile's .venv is missing or stale (make demo would rebuild it)")
    query = subset_dir / "George_W_Bush" / "George_W_Bush_0001.jpg"
    env = {**os.environ, "REVSEARCH_HOME": str(tmp_path), "REVSEARCH_WORKERS": "2"}
    proc = subprocess.run(["make", "demo", f"LFW={subset_dir}", f"QUERY={query}"], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "revsearch.db").exists()
    hits = [line for line in proc.stdout.splitlines() if re.match(r"\s*\d+\s+0\.\d+ ", line)]
    assert len(hits) == 10, proc.stdout
    assert all("[George_W_Bush]" in h for h in hits[:5])  # 11 other photos of him indexed
    assert not any("George_W_Bush_0001.jpg" in h for h in hits)  # the query itself
