"""Remote PACS nodes: `RemoteNode` (how to reach one server) and its plain-JSON form.

A node is either a DIMSE peer (host, port, called AE title; we present ourselves as the calling AE
title) or a DICOMweb server (`transport="dicomweb"`, base `url` of its QIDO/WADO/STOW root). For C-MOVE
the PACS must know our calling AE title with this machine's address and `move_port`, where
`discviewer.pacs.dimse` runs a storage SCP during the retrieve. The UI keeps the list in preferences
as the JSON text of `nodes_to_json`; `load_nodes` / `save_nodes` read and write a file.

Core module: stdlib only.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlparse

from discviewer.atomic import atomic_write

TRANSPORTS = ("dimse", "dicomweb")
RETRIEVE_METHODS = ("get", "move")
DEFAULT_CALLING_AE = "DISCVIEWER"


def check_ae_title(title: str, what: str = "AE title") -> str:
    """`title` stripped, or ValueError: 1–16 characters of the default repertoire, no backslash."""
    t = (title or "").strip()
    if not t:
        raise ValueError(f"the {what} is empty")
    if len(t) > 16:
        raise ValueError(f"the {what} {t!r} is longer than 16 characters")
    if "\\" in t or any(ord(c) < 32 or ord(c) > 126 for c in t):
        raise ValueError(f"the {what} {t!r} has a backslash or a character outside ASCII")
    return t


@dataclass(frozen=True)
class RemoteNode:
    """One PACS: where it is, how to talk to it, and the timeouts to use (seconds)."""

    name: str
    host: str = ""
    port: int = 104
    called_ae: str = "ANY-SCP"  # the PACS's AE title
    calling_ae: str = DEFAULT_CALLING_AE  # ours
    transport: str = "dimse"  # "dimse" | "dicomweb"
    url: str = ""  # DICOMweb root, e.g. http://pacs:8042/dicom-web
    retrieve: str = "get"  # "get" (C-GET) | "move" (C-MOVE to our storage SCP)
    move_port: int = 11113  # port of our storage SCP for C-MOVE (the PACS must know it)
    timeout: float = 30.0  # connect / association / per-response timeout

    def validated(self) -> "RemoteNode":
        """A stripped copy, or ValueError with a message for the user."""
        if not self.name.strip():
            raise ValueError("the node has no name")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {self.transport!r}")
        if self.retrieve not in RETRIEVE_METHODS:
            raise ValueError(f"retrieve must be one of {RETRIEVE_METHODS}, not {self.retrieve!r}")
        if not self.timeout or self.timeout <= 0:
            raise ValueError("the timeout must be positive")
        if self.transport == "dicomweb":
            u = urlparse(self.url.strip())
            if u.scheme not in ("http", "https") or not u.netloc:
                raise ValueError(f"node {self.name!r}: the DICOMweb URL {self.url!r} is not an http(s) URL")
            return replace(self, name=self.name.strip(), url=self.url.strip().rstrip("/"))
        if not self.host.strip():
            raise ValueError(f"node {self.name!r} has no host")
        for p, what in ((self.port, "port"), (self.move_port, "C-MOVE port")):
            if not isinstance(p, int) or not 0 < p < 65536:
                raise ValueError(f"node {self.name!r}: the {what} {p!r} is not in 1–65535")
        return replace(self, name=self.name.strip(), host=self.host.strip(),
                       called_ae=check_ae_title(self.called_ae, "called AE title"),
                       calling_ae=check_ae_title(self.calling_ae, "calling AE title"))

    @property
    def address(self) -> str:
        """"host:port" (DIMSE) or the URL (DICOMweb), for messages."""
        return self.url if self.transport == "dicomweb" else f"{self.host}:{self.port}"

    def describe(self) -> str:
        if self.transport == "dicomweb":
            return f"{self.name} (DICOMweb {self.url})"
        return f"{self.name} ({self.called_ae}@{self.host}:{self.port}, we are {self.calling_ae})"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RemoteNode":
        """From `to_dict` output; unknown keys are ignored, missing ones take their defaults."""
        known = {f.name: f for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("port", "move_port"):
            if k in kw:
                kw[k] = int(kw[k])
        if "timeout" in kw:
            kw["timeout"] = float(kw["timeout"])
        return cls(**kw)


def nodes_to_json(nodes) -> str:
    return json.dumps({"version": 1, "nodes": [n.to_dict() for n in nodes]}, indent=1)


def nodes_from_json(text: str) -> list[RemoteNode]:
    """Nodes from `nodes_to_json` text (also a bare list of node dicts); "" gives []."""
    if not text or not text.strip():
        return []
    data = json.loads(text)
    items = data.get("nodes", []) if isinstance(data, dict) else data
    return [RemoteNode.from_dict(d) for d in items]


def load_nodes(path) -> list[RemoteNode]:
    p = Path(path)
    return nodes_from_json(p.read_text(encoding="utf-8")) if p.exists() else []


def save_nodes(path, nodes) -> Path:
    """Write atomically (`discviewer.atomic`)."""
    p = Path(path)
    with atomic_write(p) as f:
        f.write(nodes_to_json(nodes))
    return p
