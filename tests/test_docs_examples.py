"""Every ```python block of README.md and docs/*.md runs, and every `napari-s2vnet ...` line of their
```bash blocks parses with the real CLI parser.

A block that cannot run here says why in an HTML comment on the line before it:
``<!-- example: not run (REASON) -->`` (an API listing, or a script that needs a napari window).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>[a-z]*)\n(?P<body>.*?)\n```", re.S)
_SKIP = re.compile(r"<!-- example: not run \((?P<reason>[^)]+)\) -->")


def _blocks(lang: str) -> list[tuple[str, str, str | None]]:
    """``(where, code, skip reason or None)`` of each ``lang`` block."""
    out = []
    for path in DOCS:
        text = "\n" + path.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            if m["lang"] == lang:
                line = text[: m.start("body")].count("\n")
                skip = _SKIP.search(m["before"])
                out.append((f"{path.relative_to(ROOT)}:{line}", m["body"], skip["reason"] if skip else None))
    return out


PYTHON = _blocks("python")


def test_the_readme_example_is_run():
    assert any(where.startswith("README.md") and skip is None for where, _, skip in PYTHON)


@pytest.mark.slow
@pytest.mark.parametrize("where,code,skip", PYTHON, ids=[w for w, _, _ in PYTHON])
def test_python_block_runs(where, code, skip, tmp_path, monkeypatch):
    if skip:
        pytest.skip(skip)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})


def _cli_lines() -> list[tuple[str, list[str]]]:
    out = []
    for where, code, _ in _blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("napari-s2vnet "):
                words = shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", line))[1:]
                out.append((f"{where}: {line}", words))
    return out


CLI = _cli_lines()


@pytest.mark.parametrize("where,words", CLI, ids=[w for w, _ in CLI])
def test_cli_line_parses(where, words):
    from napari_s2vnet.cli import _parser

    try:
        _parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{where}: the CLI refuses it (exit {exc.code})")


# napari's menu entries for this plugin, as napari 0.9 builds them from the manifest's display names
_MENU_PATH = re.compile(r"(?:Plugins|File\s*(?:>|→)\s*Open Sample)\s*(?:>|→).*?(?=\*\*|`|$)")


def manifest_menus() -> set[str]:
    yaml = pytest.importorskip("yaml")

    manifest = yaml.safe_load((ROOT / "src/napari_s2vnet/napari.yaml").read_text(encoding="utf-8"))
    plugin, contributions = manifest["display_name"], manifest["contributions"]
    menus = {f"Plugins > {w['display_name']} ({plugin})" for w in contributions["widgets"]}
    menus.add(f"File > Open Sample > {plugin}")
    menus |= {f"File > Open Sample > {plugin} > {s['display_name']}" for s in contributions["sample_data"]}
    return menus


def _doc_menu_paths() -> list[tuple[str, str]]:
    """``(where, path)`` of every Plugins / File > Open Sample path in the docs: it ends with its
    **bold** span, a code span, or the line (a code comment)."""
    out = []
    for path in DOCS:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in _MENU_PATH.finditer(line):
                text = m.group(0).strip()
                out.append((f"{path.relative_to(ROOT)}:{n}", re.sub(r"\s*(?:>|→)\s*", " > ", text)))
    return out


def test_menu_names_in_the_docs_are_the_manifests():
    menus, found = manifest_menus(), _doc_menu_paths()
    assert {where.split(":")[0] for where, _ in found} >= {"README.md", "docs/usage.md"}
    wrong = [f"{where}: {path!r}" for where, path in found if path not in menus]
    assert not wrong, f"menu paths napari does not show (write them in **bold**): {wrong}; it shows {sorted(menus)}"
