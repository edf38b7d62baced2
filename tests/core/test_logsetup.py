"""The rotating log file, --verbose, and crash reports (core: no Qt)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

import discviewer
from discviewer import logsetup


@pytest.fixture
def logdir(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCVIEWER_LOG_DIR", str(tmp_path / "logs"))
    yield tmp_path / "logs"
    logsetup.shutdown_logging()


def test_default_folder_is_in_the_user_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DISCVIEWER_LOG_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert logsetup.log_dir() == tmp_path / "discviewer" / "logs"
    assert logsetup.crash_dir() == logsetup.log_dir() / "crashes"


def test_log_file_rotates(logdir):
    path = logsetup.setup_logging(max_bytes=2000, backup_count=2)
    assert path == logdir / "discviewer.log"
    log = logging.getLogger("discviewer.test")
    for i in range(400):
        log.info("line %04d %s", i, "x" * 40)
    names = sorted(p.name for p in logdir.iterdir())
    assert names == ["discviewer.log", "discviewer.log.1", "discviewer.log.2"]  # 3 files kept, no .3
    assert all(p.stat().st_size <= 2000 + 200 for p in logdir.iterdir())
    assert "line 0399" in (logdir / "discviewer.log").read_text()
    log.debug("not at INFO")
    assert "not at INFO" not in (logdir / "discviewer.log").read_text()


def test_setup_is_idempotent_and_verbose_goes_to_stderr(logdir, capsys):
    logsetup.setup_logging()
    logsetup.setup_logging(verbose=True)
    handlers = [h for h in logging.getLogger("discviewer").handlers]
    assert len(handlers) == 2  # one file, one stderr — not doubled
    logging.getLogger("discviewer.io").debug("debug detail 42")
    assert "debug detail 42" in capsys.readouterr().err
    assert "debug detail 42" in (logdir / "discviewer.log").read_text()
    logsetup.setup_logging(verbose=False)
    logging.getLogger("discviewer.io").debug("quiet again")
    assert "quiet again" not in capsys.readouterr().err


def test_unwritable_folder_still_runs(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    try:
        assert logsetup.setup_logging(directory=blocker / "logs") is None
        logging.getLogger("discviewer").warning("still logged")
        assert "still logged" in capsys.readouterr().err
    finally:
        logsetup.shutdown_logging()


def _boom(path):
    raise FileNotFoundError(f"cannot read {path}")


def test_crash_report_content_without_patient_strings(logdir):
    patient = ["DOE^JANE", "PAT-0042", "19610203"]
    try:
        _boom("/data/DOE^JANE/PAT-0042/19610203/IM0001.dcm")
    except FileNotFoundError:
        report = logsetup.write_crash_report(sys.exc_info(), {"autosave": "/tmp/a.dvw"}, redact=patient)
    assert report.parent == logsetup.crash_dir() and report.name.startswith("crash-") and report.suffix == ".txt"
    text = report.read_text()
    assert f"discviewer {discviewer.__version__}" in text
    for part in ("platform ", "python ", "PySide6 ", "VTK ", "numpy ", "pydicom ", "autosave: /tmp/a.dvw"):
        assert part in text, part
    assert "Traceback" in text and "FileNotFoundError" in text and "_boom" in text and "test_logsetup.py" in text
    assert "[redacted]" in text
    for s in patient:
        assert s not in text
    assert "JANE" not in text
    assert not list(report.parent.glob("*.tmp"))


def test_crash_report_never_imports_a_gui_toolkit(tmp_path):
    code = (
        "import sys\n"
        "for name in ('PySide6', 'pyqtgraph', 'vtkmodules'):\n"
        "    sys.modules[name] = None\n"
        "from discviewer import logsetup\n"
        "logsetup.setup_logging(directory=sys.argv[1])\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    p = logsetup.write_crash_report(sys.exc_info(), directory=sys.argv[1])\n"
        "print(open(p).read())\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert "ZeroDivisionError" in out.stdout and "VTK " in out.stdout
