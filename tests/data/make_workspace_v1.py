"""Write tests/data/workspace_v1.dvw: a small workspace in schema 1, with h5py directly (not via
discviewer.workspace.store), exactly as the schema-1 writer laid it out (see
discviewer.workspace.migrate). The stored output is what the migration test reads; re-run only
to re-create it:  python tests/data/make_workspace_v1.py [OUT]

Schema 1 differences from schema 2: one transform set only — the matrices sit directly under
/transforms and the baseline is the root attribute `baseline_id` ("" = none); annotations have no
`level`/`units`; the audit log has no `target` column.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
S = h5py.string_dtype("utf-8")


def _col(g, name, values, dtype=S):
    g.create_dataset(name, data=np.array(values, dtype=object if dtype is S else dtype).reshape(len(values)),
                     dtype=dtype)


def _j(v) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def write_v1(path, baseline_id: str = "1.2.3.100") -> None:
    with h5py.File(path, "w", locking=False) as f:
        f.attrs["format"] = "discviewer workspace"
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["app_version"] = "0.0.9"
        f.attrs["created"] = "2024-03-01T09:00:00.000Z"
        f.attrs["saved"] = "2024-03-02T17:30:05.250Z"
        f.attrs["generation"] = np.int64(7)
        f.attrs["name"] = "Études lombaires — patient 7"
        f.attrs["baseline_id"] = baseline_id

        src = f.create_group("sources")
        _col(src, "path", ["/data/p7/2024/IM0001.dcm", "/data/p7/2024-09/IM0001.dcm"])
        _col(src, "sop_uid", ["1.2.3.100.1.1", "1.2.3.200.1.1"])
        _col(src, "series_uid", ["1.2.3.100.1", "1.2.3.200.1"])
        _col(src, "sha256", ["ab" * 32, ""])
        _col(src, "size", [526_336, 526_402], np.int64)
        _col(src, "mtime_ns", [1_709_280_000_000_000_000, 1_725_000_000_123_456_789], np.int64)

        pats = f.create_group("study").create_group("patients")
        p = pats.create_group("0")
        p.attrs["id"] = "P7"
        p.attrs["name"] = "Müller^Jürgen"
        visits = p.create_group("visits")
        v0 = visits.create_group("0")
        v0.attrs["id"] = "1.2.3.100"
        v0.attrs["date"] = "2024-03-01"
        v0.attrs["days"] = np.int64(0)
        v0.attrs["label"] = "baseline"
        s0 = v0.create_group("series")
        _col(s0, "key", ["1.2.3.100.1"])
        _col(s0, "series_uid", ["1.2.3.100.1"])
        _col(s0, "description", ["T2 TSE SAG"])
        _col(s0, "plane", ["sagittal"])
        _col(s0, "role", ["t2_sag"])
        _col(s0, "n_echoes", [1], np.int64)
        v1 = visits.create_group("1")
        v1.attrs["id"] = "1.2.3.200"
        v1.attrs["date"] = ""
        v1.attrs["label"] = "6 m"  # no "days": unknown
        s1 = v1.create_group("series")
        _col(s1, "key", ["1.2.3.200.1", "1.2.3.200.5#e"])
        _col(s1, "series_uid", ["1.2.3.200.1", "1.2.3.200.5"])
        _col(s1, "description", ["T2 TSE SAG", "ME GRE"])
        _col(s1, "plane", ["sagittal", "axial"])
        _col(s1, "role", ["t2_sag", "me_gre"])
        _col(s1, "n_echoes", [1, 6], np.int64)

        vl = f.create_group("visit_labels")
        _col(vl, "visit_id", ["1.2.3.200"])
        _col(vl, "label", ["6 m"])
        rl = f.create_group("roles")
        _col(rl, "key", ["1.2.3.200.5#e"])
        _col(rl, "role", ["me_gre"])

        tr = f.create_group("transforms")
        t0 = tr.create_dataset("0", data=np.eye(4))
        t0.attrs["visit_id"] = "1.2.3.100"
        t0.attrs["method"] = "identity"
        t0.attrs["details"] = _j({})
        m = np.array([[0.999, -0.02, 0.0, 1.25], [0.02, 0.999, 0.0, -3.5], [0.0, 0.0, 1.0, 12.0],
                      [0.0, 0.0, 0.0, 1.0]])
        t1 = tr.create_dataset("1", data=m)
        t1.attrs["visit_id"] = "1.2.3.200"
        t1.attrs["method"] = "rigid mutual information"
        t1.attrs["details"] = _j({"metric": -0.61, "iterations": 120, "roi": {"levels": ["L4/L5", "L5/S1"]}})

        an = f.create_group("annotations")
        a0 = an.create_group("0")
        for k, v in {"id": "a1", "kind": "ruler", "visit_id": "1.2.3.100", "series_uid": "1.2.3.100.1",
                     "text": "", "reader": "rk", "method": "manual", "created": "2024-03-02T10:00:00.000Z",
                     "modified": "2024-03-02T10:00:00.000Z"}.items():
            a0.attrs[k] = v
        a0.attrs["values"] = _j({"length": 11.25})
        a0.attrs["extra"] = _j({})
        a0.create_dataset("points", data=np.array([[1.5, -2.0, 30.0], [1.5, -2.0, 41.25]]))
        a1 = an.create_group("1")
        for k, v in {"id": "a2", "kind": "text", "visit_id": "1.2.3.200", "series_uid": "",
                     "text": "Schmorl-Knötchen?", "reader": "rk", "method": "",
                     "created": "2024-03-02T11:00:00.000Z", "modified": ""}.items():
            a1.attrs[k] = v
        a1.attrs["values"] = _j({})
        a1.attrs["extra"] = _j({"color": [255, 0, 0]})
        a1.create_dataset("points", data=np.zeros((0, 3)))

        rd = f.create_group("reading")
        _col(rd, "id", ["session-1"])
        _col(rd, "document", [_j({"reader": "rk", "answers": {"L4/L5": {"pfirrmann": 3}}})])

        au = f.create_group("audit")
        _col(au, "time", ["2024-03-01T09:00:00.000Z", "2024-03-02T10:00:00.000Z"])
        _col(au, "user", ["rk", "rk"])
        _col(au, "action", ["open", "annotation"])
        _col(au, "old", ["", ""])
        _col(au, "new", ["", "a1"])

        f.create_dataset("settings", data=_j({"layout": "2x2", "window": [400, 1200]}), dtype=S)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "workspace_v1.dvw"
    write_v1(out)
    print(out, out.stat().st_size, "bytes")
