"""The docs live in the repository, and what they say matches the code.

* Every reference to a ``.md`` file (a bare name such as ``README.md``, a path such as
  ``docs/methods.md``, a relative Markdown link, with or without a ``#section``) in the
  package, the tests, the benchmarks, the docs and the top-level files resolves to a file of
  the repository, and a ``#section`` to one of its headings. Another project's file is cited
  as a URL or as ``project:path`` (``RAGEN:docs/updates.md``); files that commands write are
  listed in :data:`OUTPUT_FILES`.
* The README links the four docs.
* docs/methods.md runs as a doctest (its worked examples are the estimators' known answers),
  has a section for every built-in estimator naming each of its options, and
  docs/environments.md a section for every built-in env naming each of its knobs.
"""

from __future__ import annotations

import doctest
import inspect
import re
from pathlib import Path

import gymnasium

import turngym  # noqa: F401  (registers the built-in envs)
from turngym.envs.multiagent.registry import multiagent_registry
from turngym.registry import import_string

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FOUR_DOCS = ("docs/design.md", "docs/methods.md", "docs/environments.md", "docs/extending.md")

SCANNED_DIRS = ("turngym", "tests", "benchmarks", "docs", ".ci")
SCANNED_FILES = ("README.md", "CONTRIBUTING.md", "pyproject.toml", "Dockerfile", "conftest.py")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".sh", ".txt", ".json"}

OUTPUT_FILES = {
    "bench.md": "written by turngym bench (turngym/evals/report.py)",
    "repro.md": "written by turngym repro (turngym/repro/runner.py)",
    "gate.md": "the file name the examples give to turngym leaderboard gate --report",
    "FILE.md": "a placeholder for a path the user chooses (docs/ci-gate.md)",
}
"""Names of files that commands *write*: mentioning one is not a reference to a doc."""

PLANNING_NOTES = {"DESIGN.md", "CREDIT_METHODS.md", "ENVIRONMENTS.md", "STYLE.md"}

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_REF = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)*(?:[\w.-]+/)*[\w-][\w.-]*\.md)(#[\w-]+)?(?![\w-])")
_OTHER_PROJECT = re.compile(r"[\w-]:$")  # "RAGEN:docs/updates.md" names another project's file


def _scanned_files() -> list[Path]:
    files = [REPO / name for name in SCANNED_FILES if (REPO / name).is_file()]
    for top in SCANNED_DIRS:
        for path in sorted((REPO / top).rglob("*")):
            # This file names missing docs on purpose (its test data), so it is not scanned.
            if "__pycache__" in path.parts or not path.is_file() or path == Path(__file__):
                continue
            if path.suffix in TEXT_SUFFIXES or (top == ".ci" and not path.suffix):
                files.append(path)
    return files


def doc_references(text: str) -> list[tuple[int, str, str]]:
    """``(line, path, fragment)`` of every ``.md`` reference in ``text`` (URLs excluded).

    Example:
        >>> doc_references("see docs/methods.md#gigpo, [x](../README.md) and README.md")
        [(1, 'docs/methods.md', 'gigpo'), (1, '../README.md', ''), (1, 'README.md', '')]
        >>> doc_references("https://github.com/o/r/blob/main/NOTES.md, RAGEN:docs/x.md, a.mdx")
        []
    """
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = _URL.sub(" ", line)
        for match in _REF.finditer(line):
            if not _OTHER_PROJECT.search(line[: match.start()]):
                found.append((number, match.group(1), (match.group(2) or "").lstrip("#")))
    return found


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the Markdown headings in ``markdown`` (fenced code skipped).

    Example:
        >>> sorted(heading_anchors("# Credit methods\\n## `gigpo`: GiGPO (Eq. 8)\\n"))
        ['credit-methods', 'gigpo-gigpo-eq-8']
    """
    anchors, fenced = set(), False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} +(.+?) *#* *$", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-"))
    return anchors


def _resolve(source: Path, ref: str) -> Path | None:
    for base in (source.parent, REPO):
        target = (base / ref).resolve()
        if target.is_file() and target.is_relative_to(REPO):
            return target
    return None


def _problems() -> list[str]:
    problems = []
    for path in _scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        where = path.relative_to(REPO)
        for line, ref, fragment in doc_references(text):
            if Path(ref).name in OUTPUT_FILES:
                continue
            target = _resolve(path, ref)
            if target is None:
                hint = (" (a private planning note: cite a doc under docs/ or the paper)"
                        if Path(ref).name in PLANNING_NOTES else "")  # fmt: skip
                problems.append(f"{where}:{line}: {ref} does not exist in the repository{hint}")
            elif fragment and fragment not in heading_anchors(target.read_text("utf-8")):
                problems.append(f"{where}:{line}: {ref} has no section #{fragment}")
    return problems


def test_every_doc_reference_resolves():
    problems = _problems()
    assert not problems, f"{len(problems)} broken doc reference(s):\n" + "\n".join(problems)


def test_the_checker_finds_a_missing_doc_and_section(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("See CREDIT_METHODS.md 2, docs/methods.md#nope and docs/methods.md#gigpo.\n")
    refs = doc_references(bad.read_text())
    assert [r for _, r, _ in refs] == ["CREDIT_METHODS.md", "docs/methods.md", "docs/methods.md"]
    assert _resolve(bad, "CREDIT_METHODS.md") is None
    anchors = heading_anchors((DOCS / "methods.md").read_text())
    assert "gigpo" in anchors and "nope" not in anchors


def test_readme_links_the_four_docs():
    readme = (REPO / "README.md").read_text()
    links = set(re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme))
    for doc in FOUR_DOCS:
        assert doc in links, f"README.md does not link {doc}"
        assert (REPO / doc).is_file()


def test_methods_examples_run():
    result = doctest.testfile(str(DOCS / "methods.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS, verbose=False)  # fmt: skip
    assert result.attempted > 0 and result.failed == 0, result


def _sections(markdown: str) -> list[str]:
    """The text under each level-2 or level-3 heading."""
    return re.split(r"(?m)^#{2,3} ", markdown)[1:]


def test_every_builtin_estimator_has_a_section_naming_its_options():
    from turngym.trainers.credit import _BUILTINS, estimator_registry

    sections = {}
    for section in _sections((DOCS / "methods.md").read_text()):
        for name in re.findall(r"\*\*Estimator:\*\* `(\w+)`", section):
            sections[name] = section
    missing = sorted(set(_BUILTINS) - set(sections))
    assert not missing, f"docs/methods.md has no section for estimator(s) {missing}"
    for name in _BUILTINS:
        fn = estimator_registry.get(name)
        options = [p.name for p in inspect.signature(fn).parameters.values()
                   if p.kind is p.KEYWORD_ONLY]  # fmt: skip
        unnamed = [o for o in options if f"`{o}`" not in sections[name]]
        assert not unnamed, f"docs/methods.md, section of {name}: options {unnamed} not named"


def _builtin_env_classes() -> dict[str, type]:
    ids = {i: gymnasium.registry[i].entry_point for i in gymnasium.registry
           if i.startswith("turngym/")}  # fmt: skip
    ids.update({i: multiagent_registry.get(i).entry_point for i in multiagent_registry.names()
                if i.startswith("turngym/")})  # fmt: skip
    return {i: import_string(ep) for i, ep in sorted(ids.items())}


def test_every_builtin_env_has_a_section_naming_its_knobs():
    sections: dict[str, str] = {}
    for section in _sections((DOCS / "environments.md").read_text()):
        for line in re.findall(r"\*\*Ids?:\*\*[^\n]*(?:\n  [^\n]*)*", section):
            for env_id in re.findall(r"`(turngym/[\w-]+)`", line):
                sections[env_id] = section
    classes = _builtin_env_classes()
    missing = sorted(set(classes) - set(sections))
    assert not missing, f"docs/environments.md has no section for {missing}"
    for env_id, cls in classes.items():
        knobs = list(getattr(cls, "difficulty_defaults", {}))
        unnamed = [k for k in knobs if f"`{k}`" not in sections[env_id]]
        assert not unnamed, f"docs/environments.md, section of {env_id}: knobs {unnamed} not named"
