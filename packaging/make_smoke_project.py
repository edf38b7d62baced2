#!/usr/bin/env python
"""Write a small project file over the phantom study, for the headless-export check of a build.

    python packaging/make_smoke_project.py OUTDIR        # → OUTDIR/study/ (DICOM) and OUTDIR/project.dvw

The project has the phantom's true visit-to-baseline transforms and L4/L5 disc labels on every visit, so
`discviewer export OUTDIR/project.dvw --screenshots DIR --montage L4/L5` has something to draw. Runs in the
development venv; the build under test (e.g. the PyInstaller bundle) then exports it without a display.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from discviewer.io import scan
from discviewer.levels import disc_label_annotation
from discviewer.phantom import write_study
from discviewer.study import Study
from discviewer.workspace import store
from discviewer.workspace.project import Workspace
from discviewer.workspace.sources import index_sources


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    study = write_study(out / "study", size="small")
    result = scan(str(study))
    truth = json.loads((study / "truth.json").read_text())["patients"][0]
    ws = Workspace(user="packaging-smoke")
    ws.sources = index_sources(result.series)
    ws.attach_study(Study.from_scan(result))
    pat = ws.study.patients[0]
    for v in pat.visits:
        tv = next(x for x in truth["visits"] if x["study_uid"] == v.id)
        if v is not pat.baseline:
            ws.transforms.whole.set(v.id, np.array(tv["visit_to_baseline"]), "phantom truth")
        ws.annotations.add(disc_label_annotation("L4/L5", tv["discs"]["L4/L5"]["centre"], v.id))
    project = out / "project.dvw"
    store.save(ws.to_data(), project)
    print(project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
