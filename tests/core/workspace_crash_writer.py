"""Writer process for the crash test in test_workspace_store.py (not a test module).

    python tests/core/workspace_crash_writer.py PATH

prints "ready" once imported, reads the first generation g from stdin, then saves
`crash_state(g)`, `crash_state(g + 1)`, … to PATH forever, printing each generation after its
`save` returned. The test kills it with SIGKILL at random moments. Every part of `crash_state(g)` is
derived from g, so a file mixing two saves can never equal any `crash_state`.
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np

from discviewer.workspace import store
from discviewer.workspace.data import (
    Annotation, AuditEntry, PatientRecord, SeriesRecord, SourceFile, TransformRecord, TransformSetRecord,
    VisitRecord, WorkspaceData,
)


def crash_state(g: int) -> WorkspaceData:
    """The workspace of generation g: ~50 annotations, ~200 audit entries, matrices holding g."""
    m = np.eye(4)
    m[:3, 3] = (g, -g / 2.0, g * 0.125)
    series = (SeriesRecord(key=f"s{g}", series_uid=f"1.2.{g}.1", description=f"T2 g{g}", n_echoes=1 + g % 4),)
    return WorkspaceData(
        created="2025-01-01T00:00:00.000Z", generation=g, name=f"crash test g={g}",
        sources=[SourceFile(path=f"/data/g{g}/IM{i:04d}.dcm", size=g * 100 + i, mtime_ns=g * 10**9 + i,
                            sha256=hashlib.sha256(f"{g}:{i}".encode()).hexdigest(), sop_uid=f"1.2.{g}.{i}")
                 for i in range(3)],
        patients=[PatientRecord(id="P1", name=f"patient g{g}",
                                visits=(VisitRecord(id="v0", days=0, label="baseline", series=series),
                                        VisitRecord(id="v1", days=g, label=f"{g} d")))],
        visit_labels={"v1": f"{g} d"}, roles={f"s{g}": "t2_sag"},
        transform_sets=[TransformSetRecord("whole volume", "v0", (TransformRecord("v1", m, "rigid", {"g": g}),)),
                        TransformSetRecord("L4/L5", None if g % 2 else "v0",
                                           (TransformRecord("v1", m * 0.5 + np.eye(4) * 0.5, "rigid", {"g": g}),))],
        annotations=[Annotation(id=f"g{g}-a{i}", kind="ruler", level="L4/L5", visit_id="v1",
                                points=((float(g), float(i), 0.5), (g + 1.0, i + 0.25, 1.5)),
                                values={"length": g + i / 8.0, "g": g}, units={"length": "mm"}, reader="crash",
                                extra={"g": g, "i": i})
                     for i in range(50 + g % 5)],
        reading={f"session-{g}": {"g": g, "answers": [g, g + 1]}},
        audit=[AuditEntry(time=f"2025-01-01T00:00:{i % 60:02d}.000Z", user="crash", action="annotation",
                          target=f"g{g}-a{i % 50}", old=str(g), new=f"{g}:{i}")
               for i in range(200 + g % 5)],
        settings={"g": g, "layout": "1x2"},
    )


def main(path: str) -> None:
    print("ready", flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return
    g = int(line)
    while True:
        store.save(crash_state(g), path)
        print(g, flush=True)
        g += 1


if __name__ == "__main__":
    main(sys.argv[1])
