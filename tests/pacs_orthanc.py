"""A real Orthanc PACS for the tests: started on loopback with a temporary configuration and storage,
seeded with the small demo phantom through our own C-STORE, stopped afterwards.

Use the `orthanc` fixture (session scope): `from tests.pacs_orthanc import orthanc  # noqa: F401`.
It yields an `OrthancServer` with `node()` / `web_node()` (RemoteNodes for it), `stop()` / `start()`,
`frozen()` (SIGSTOP … SIGCONT, to make it stop answering), `kill()` and `rest()` (its REST API, for
the tests' own checks and to break things on purpose). Without the `Orthanc` binary (Debian package
`orthanc`) the tests skip, unless DISCVIEWER_REQUIRE_ORTHANC=1, where they fail. The DICOMweb plugin
(Debian `orthanc-dicomweb`) is loaded when present (`has_dicomweb`).

Every Orthanc started here is stopped by the fixture's finaliser and, as a last resort, by atexit.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ORTHANC_AET = "ORTHANCTEST"
OUR_AET = "DISCVIEWER"
DICOMWEB_PLUGIN_DIRS = ["/usr/share/orthanc/plugins", "/usr/lib/orthanc"]
REQUIRE_ENV = "DISCVIEWER_REQUIRE_ORTHANC"
BINARY_ENV = "DISCVIEWER_ORTHANC_BINARY"

_RUNNING: list["OrthancServer"] = []


def orthanc_binary() -> str | None:
    """$DISCVIEWER_ORTHANC_BINARY if set (None when it is not an executable), else Orthanc on PATH or
    in /usr/sbin (where Debian puts it)."""
    env = os.environ.get(BINARY_ENV)
    if env is not None:
        return env if os.access(env, os.X_OK) else None
    for name in ("Orthanc", "orthanc"):
        found = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
        if found:
            return found
    return None


def dicomweb_plugin() -> str | None:
    for d in DICOMWEB_PLUGIN_DIRS:
        p = Path(d) / "libOrthancDicomWeb.so"
        if p.exists():
            return str(p)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_or_fail(reason: str):
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: a real Orthanc is required here; install Debian package orthanc)")
    pytest.skip(reason)


class OrthancServer:
    """One Orthanc process on 127.0.0.1 with its own config and storage under `workdir`."""

    def __init__(self, workdir: Path, binary: str):
        self.workdir = Path(workdir)
        self.binary = binary
        self.storage = self.workdir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port, self.move_port = free_port(), free_port(), free_port()
        self.plugin = dicomweb_plugin()
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self.proc: subprocess.Popen | None = None
        self.config_path.write_text(json.dumps(self.config(), indent=1))

    @property
    def has_dicomweb(self) -> bool:
        return self.plugin is not None

    def config(self) -> dict:
        cfg = {
            "Name": "discviewer-test", "StorageDirectory": str(self.storage), "IndexDirectory": str(self.storage),
            "StorageCompression": False, "HttpServerEnabled": True, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "SslEnabled": False,
            "DicomServerEnabled": True, "DicomAet": ORTHANC_AET, "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True, "DicomCheckModalityHost": False,
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True, "DicomAlwaysAllowMove": True, "UnknownSopClassAccepted": True,
            "DicomModalities": {"discviewer": [OUR_AET, "127.0.0.1", self.move_port]},
            "DicomScpTimeout": 30, "DicomScuTimeout": 10, "DicomAssociationCloseDelay": 0,
            "OverwriteInstances": True, "SaveJobs": False, "StableAge": 1, "LimitFindResults": 0,
            "LimitFindInstances": 0, "HttpTimeout": 30, "ConcurrentJobs": 1,
            "Plugins": [self.plugin] if self.plugin else [],
        }
        if self.plugin:
            cfg["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Ssl": False}
        return cfg

    # -------------------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        log = open(self.log_path, "ab")
        env = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK's switch for Nagle off: C-STOREs 50 → 8 ms each
        self.proc = subprocess.Popen([self.binary, str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                                     env=env, stdin=subprocess.DEVNULL, cwd=self.workdir)
        log.close()
        if self not in _RUNNING:
            _RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                self.rest("GET", "/system", timeout=1)
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout:g} s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGCONT)  # in case a test left it frozen
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        if self in _RUNNING:
            _RUNNING.remove(self)

    def kill(self) -> None:
        """SIGKILL (a crash mid-transfer); `start()` brings it back on the same storage."""
        p, self.proc = self.proc, None
        if p is not None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout=10)
        if self in _RUNNING:
            _RUNNING.remove(self)

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self):
        """Orthanc stops answering (SIGSTOP) inside the block: the kernel still accepts connections."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # -------------------------------------------------------------------------------- access
    def rest(self, method: str, path: str, body=None, timeout: float = 30):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
        return json.loads(text) if text.strip() else None

    def node(self, **kw):
        from discviewer.pacs import RemoteNode

        args = dict(name="test-orthanc", host="127.0.0.1", port=self.dicom_port, called_ae=ORTHANC_AET,
                    calling_ae=OUR_AET, move_port=self.move_port, timeout=10.0)
        args.update(kw)
        return RemoteNode(**args)

    def web_node(self, **kw):
        from discviewer.pacs import RemoteNode

        args = dict(name="test-orthanc-web", transport="dicomweb",
                    url=f"http://127.0.0.1:{self.http_port}/dicom-web", timeout=10.0)
        args.update(kw)
        return RemoteNode(**args)

    def instance_ids(self, series_uid: str) -> list[str]:
        """Orthanc's ids of the instances of a series (via /tools/lookup)."""
        hits = self.rest("POST", "/tools/lookup", series_uid.encode())
        sid = next(h["ID"] for h in hits if h["Type"] == "Series")
        return list(self.rest("GET", f"/series/{sid}")["Instances"])


@atexit.register
def _stop_all():
    for s in list(_RUNNING):
        with contextlib.suppress(Exception):
            s.stop()


_SEEDED: dict = {}


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A seeded, running Orthanc (see the module docstring); stopped at the end of the session."""
    binary = orthanc_binary()
    if binary is None:
        skip_or_fail("the Orthanc binary (Debian package orthanc) is not installed")
    if "server" in _SEEDED:
        yield _SEEDED["server"]
        return
    from discviewer.pacs.dimse import store
    from tests.core.phantom_cache import phantom_scan

    source, _scan = phantom_scan(tmp_path_factory)
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"), binary)
    try:
        server.start()
        files = sorted(str(p) for p in Path(source).rglob("*.dcm"))
        t0 = time.monotonic()
        store(server.node(), files)
        server.seed_seconds = time.monotonic() - t0
        server.source = Path(source)
        server.source_files = files
        _SEEDED["server"] = server
        yield server
    finally:
        _SEEDED.pop("server", None)
        server.stop()
