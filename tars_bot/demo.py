"""`tars-bot demo`: a sample repository with two improvements, and tars-bot run on it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from tars_bot.errors import EXIT_FAILED, EXIT_OK
from tars_bot.git import create_repository
from tars_bot.system import ExecutionSystem
from tars_bot.ui import report

SAMPLE_FILES = {
    "pyproject.toml": """\
[project]
name = "wordstats"
version = "0.1.0"

[tool.tars-bot]
components = { core = ["wordstats/**"], tests = ["tests/**"], docs = ["CHANGES.md"] }
validation = { final = ["tests"] }
""",
    "noxfile.py": '''\
import nox


@nox.session(venv_backend="none")
def tests(session):
    """Unit tests."""
    session.run("python", "-m", "unittest", "discover", "-s", "tests", "-t", ".")


@nox.session(venv_backend="none")
def compile(session):
    """Byte-compile the package."""
    session.run("python", "-m", "compileall", "-q", "wordstats")
''',
    "wordstats/__init__.py": "",
    "wordstats/counting.py": """\
def read_words(path):
    with open(path) as f:
        return f.read().split()


def count_words(path):
    counts = {}
    for word in read_words(path):
        word = word.lower()
        if word in counts:
            counts[word] = counts[word] + 1
        else:
            counts[word] = 1
    return counts
""",
    "tests/__init__.py": "",
    "tests/test_counting.py": """\
import tempfile
import unittest
from pathlib import Path

from wordstats.counting import count_words


class CountWords(unittest.TestCase):
    def test_counts_case_insensitively(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.txt"
            path.write_text("a B b", encoding="utf-8")
            self.assertEqual(count_words(path), {"a": 1, "b": 2})
""",
    "CHANGES.md": "# Changes\n\n## Unreleased\n",
    ".tars/improvements/utf8-io.yaml": """\
title: Read text files as UTF-8
description: open() without an encoding depends on the locale; name it.
target_components: [core, tests, docs]
expected_benefits: ["no UnicodeDecodeError on non-UTF-8 locales"]
steps:
  - name: Name the encoding
    edit: {path: wordstats/counting.py, search: "open(path)", replace: "open(path, encoding='utf-8')"}
  - name: Test non-ASCII input
    write:
      path: tests/test_unicode.py
      content: |
        import tempfile
        import unittest
        from pathlib import Path

        from wordstats.counting import count_words


        class Unicode(unittest.TestCase):
            def test_reads_utf8(self):
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "t.txt"
                    path.write_text("café Café", encoding="utf-8")
                    self.assertEqual(count_words(path), {"café": 2})
  - name: Changelog
    patch: |
      --- a/CHANGES.md
      +++ b/CHANGES.md
      @@ -1,3 +1,5 @@
       # Changes

       ## Unreleased
      +
      +- Text files are read as UTF-8 whatever the locale.
""",
    ".tars/improvements/counter.yaml": """\
title: Count with collections.Counter
target_components: [core]
expected_benefits: ["shorter, idiomatic counting code"]
steps:
  - name: Use Counter
    edit:
      path: wordstats/counting.py
      search: |
        def count_words(path):
            counts = {}
            for word in read_words(path):
                word = word.lower()
                if word in counts:
                    counts[word] = counts[word] + 1
                else:
                    counts[word] = 1
            return counts
      replace: |
        def count_words(path):
            return dict(Counter(word.lower() for word in read_words(path)))
  - name: Import Counter
    depends_on: [Use Counter]
    edit: {path: wordstats/counting.py, search: "def read_words", replace: "from collections import Counter\\n\\n\\ndef read_words"}
""",
}


def build_sample(path: Path) -> Path:
    create_repository(path, SAMPLE_FILES, "Sample project for the tars-bot demo")
    return path


def run(console: Console, directory: Path | None = None) -> int:
    """plan -> execute -> status on the sample, then a dry run of the second improvement."""
    path = directory or Path(tempfile.mkdtemp(prefix="tars-bot-demo-"))
    build_sample(path)
    console.print(f"[bold]Sample repository:[/bold] {path}\n")
    system = ExecutionSystem(path)
    plans = {}
    for improvement_id in ("utf8-io", "counter"):
        file = system.improvement_file(improvement_id)
        console.rule(f"tars-bot plan --improvement-id {improvement_id}")
        plans[improvement_id] = system.plan(
            system.load_improvement(file), source=system.display_path(file)
        )
        report.print_plan(plans[improvement_id], console)
        console.print()
    console.rule("tars-bot execute --improvement-id utf8-io")
    with report.LiveProgress(console, verbose=False) as progress:
        result = system.execute(plans["utf8-io"], progress=progress)
    console.rule(f"tars-bot status --execution-id {result.execution_id}")
    console.print(report.execution_renderable(system.status(result.execution_id)))
    console.rule("tars-bot execute --improvement-id counter --dry-run")
    with report.LiveProgress(console, verbose=False) as progress:
        dry = system.execute(plans["counter"], dry_run=True, progress=progress)
    console.print(dry.diff or "", markup=False, highlight=False)
    console.print(
        f"Look around: cd {path} && git log --oneline main..{result.branch} && tars-bot history"
    )
    return EXIT_OK if result.success and dry.success else EXIT_FAILED
