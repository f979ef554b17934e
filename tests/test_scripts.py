"""``scripts/gui_display.sh`` and ``scripts/test.sh`` on machines without a display, simulated with a
PATH that lacks (or fakes) ``xvfb-run`` and an interpreter that fails the way Qt does without its X
libraries. ``S2VNET_NO_INSTALL=1`` everywhere: these tests never install packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("bash", "sh", "grep", "tr", "mktemp", "rm", "timeout", "id", "tail", "dirname", "cat", "env")
FAKE_XVFB_RUN = """#!/bin/bash
# drop xvfb-run's options (-a, -s "ARGS"), run the command
while [[ "${1:-}" == -* ]]; do [[ "$1" == -s ]] && shift; shift; done
exec "$@"
"""
QT_ABORT = """#!/bin/bash
echo "qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin." >&2
kill -ABRT $$
"""
QT_OK = "#!/bin/bash\nexit 0\n"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="bash scripts")


def _script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def _bin(tmp_path: Path, xvfb_run: bool) -> Path:
    """A PATH folder with the shell tools the scripts use, and ``xvfb-run`` only when asked (a fake)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        (folder / tool).symlink_to(shutil.which(tool))
    if xvfb_run:
        _script(folder / "xvfb-run", FAKE_XVFB_RUN)
    return folder


def _env(path: Path, **extra: str) -> dict[str, str]:
    # the caller's display and the CI's own S2VNET_* settings (S2VNET_REQUIRE_GUI=1 under .ci/run) stay out
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY") and not k.startswith("S2VNET_")}
    env.update(PATH=str(path), S2VNET_NO_INSTALL="1", **extra)
    return env


def _display(tmp_path: Path, python: str, xvfb_run: bool, **extra: str) -> subprocess.CompletedProcess:
    env = _env(_bin(tmp_path, xvfb_run), **extra)
    return subprocess.run(["bash", str(ROOT / "scripts/gui_display.sh"), python], env=env,
                          capture_output=True, text=True, timeout=60)


def test_no_xvfb_run_and_no_display_gives_none_and_the_install_line(tmp_path):
    out = _display(tmp_path, _script(tmp_path / "python", QT_OK), xvfb_run=False)
    assert out.returncode == 0 and out.stdout.strip() == "none"
    assert "xvfb-run is not installed" in out.stderr
    packages = [l for l in (ROOT / "scripts/gui-packages.txt").read_text().splitlines() if l and l[0] != "#"]
    assert "libxcb-cursor0" in packages and f"apt-get install {' '.join(packages)}" in out.stderr


def test_a_missing_qt_library_is_named_instead_of_an_abort(tmp_path):
    out = _display(tmp_path, _script(tmp_path / "python", QT_ABORT), xvfb_run=True)
    assert out.returncode == 0 and out.stdout.strip() == "none"
    assert "xcb-cursor0 or libxcb-cursor0 is needed" in out.stderr


def test_no_qt_in_the_venv_points_at_the_setup_not_at_apt(tmp_path):
    no_qt = "#!/bin/bash\necho \"ModuleNotFoundError: No module named 'qtpy'\" >&2\nexit 1\n"
    out = _display(tmp_path, _script(tmp_path / "python", no_qt), xvfb_run=True)
    assert out.stdout.strip() == "none"
    assert "No module named 'qtpy'" in out.stderr and "scripts/setup.sh test" in out.stderr
    assert "apt-get" not in out.stderr


def test_a_working_virtual_display_is_used(tmp_path):
    out = _display(tmp_path, _script(tmp_path / "python", QT_OK), xvfb_run=True)
    assert out.stdout.strip() == "xvfb", out.stderr


def test_the_sessions_own_display_comes_first(tmp_path):
    out = _display(tmp_path, _script(tmp_path / "python", QT_OK), xvfb_run=True, DISPLAY=":99")
    assert out.stdout.strip() == "display", out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path runs only as root")
def test_as_root_the_packages_are_installed_then_the_display_checked_again(tmp_path):
    bin_folder = _bin(tmp_path, xvfb_run=True)
    installed = tmp_path / "apt.log"
    # a fake apt-get (first on a PATH without the real one): it logs its arguments
    _script(bin_folder / "apt-get", f'#!/bin/bash\necho "$@" >> "{installed}"\n')
    # Qt fails until "the packages are installed"
    python = _script(tmp_path / "python", f'#!/bin/bash\n[ -s "{installed}" ] && exit 0\n' + QT_ABORT.split("\n", 1)[1])
    env = _env(bin_folder)
    del env["S2VNET_NO_INSTALL"]
    out = subprocess.run(["bash", str(ROOT / "scripts/gui_display.sh"), python], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "xvfb", out.stderr
    calls = installed.read_text().splitlines()
    assert calls[0] == "update -qq" and calls[1].startswith("install -y -qq --no-install-recommends xvfb xauth")
    assert "no usable display" in out.stderr and "xcb-cursor0 or libxcb-cursor0 is needed" in out.stderr  # why
    assert "installing Debian packages for the GUI tests" in out.stderr


def _test_sh(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    """test.sh (no setup) with a venv whose python is this one, on a two-test file, without xvfb-run."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    _script(venv / "bin/python", f'#!/bin/bash\nexec "{sys.executable}" "$@"\n')
    tests = tmp_path / "test_two.py"
    tests.write_text("import pytest\n\ndef test_engine():\n    pass\n\n"
                     "@pytest.mark.gui\ndef test_gui():\n    raise SystemExit('a GUI test ran without a display')\n")
    env = _env(_bin(tmp_path, xvfb_run=False), S2VNET_SKIP_SETUP="1", S2VNET_VENV=str(venv), **extra)
    return subprocess.run(["bash", str(ROOT / "scripts/test.sh"), str(tests), "-p", "no:cacheprovider"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_test_sh_without_a_display_runs_the_other_tests_and_says_so(tmp_path):
    out = _test_sh(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert "GUI tests SKIPPED" in lines[0] and "GUI tests SKIPPED" in lines[-1]
    assert "pytest exit status 0" in lines[-1]
    assert "1 passed, 1 deselected" in out.stdout


def test_test_sh_fails_without_a_display_when_ci_requires_the_gui_tests(tmp_path):
    out = _test_sh(tmp_path, S2VNET_REQUIRE_GUI="1")
    assert out.returncode == 3 and "S2VNET_REQUIRE_GUI=1" in out.stderr
    assert "passed" not in out.stdout
