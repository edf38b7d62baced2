"""discviewer.pacs against a real Orthanc (tests/pacs_orthanc.py): C-ECHO; C-FIND at patient, study and
series level with filters; C-GET and C-MOVE (and WADO-RS) into the cache, the volumes voxel-identical to
the source files; cached studies skipped unless forced; all visits of a patient in one call; the export's
SR and Secondary Capture sent back (C-STORE / STOW-RS) and found again with C-FIND; and the failures on
the real server — stopped (unreachable), wrong called AE (rejected), frozen (timeouts at association and
mid-transfer), killed mid-transfer (lost connection), instances deleted between the count and the
retrieve (incomplete) and cancel — each with a clear message and nothing half-written in the cache.

Skips when the Orthanc binary (or, for the DICOMweb tests, its plugin) is missing, unless
DISCVIEWER_REQUIRE_ORTHANC=1 (then fails)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from discviewer.io import load, scan
from discviewer.pacs import (CancelledError, IncompleteSeriesError, OperationError, PacsError, PacsTimeoutError,
                             QueryFilter, RejectedError, RemoteNode, SeriesCache, UnreachableError, echo, find,
                             nodes_from_json, nodes_to_json, retrieve, retrieve_patient, send)
from discviewer.pacs.dimse import store
from tests.pacs_orthanc import OUR_AET, REQUIRE_ENV, free_port, orthanc  # noqa: F401 — the fixture

PATIENT_ID = "DVPH0-01"
N_VISITS = 5
SERIES_PER_VISIT = 3


# ------------------------------------------------------------------------------------------ helpers
def _source_by_series(folder: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        out.setdefault(str(ds.SeriesInstanceUID), []).append(f)
    return out


@pytest.fixture(scope="module")
def source(orthanc):
    return _source_by_series(orthanc.source)


def _volumes(folder) -> dict:
    res = scan(str(folder))
    assert not [p for p in res.problems if not p.path.endswith("truth.json")], res.problems
    return {(c.info.series_uid, c.info.echo_number, c.info.complex_part): c for c in res.series}


def assert_voxel_identical(cached_folder, source_files):
    """Every volume scanned from the cached series equals the one from the source files."""
    got = _volumes(cached_folder)
    want = {k: v for k, v in _volumes(Path(source_files[0]).parent).items()}
    assert got.keys() == want.keys()
    for key, cand in got.items():
        a, b = load(cand), load(want[key])
        assert a.array.dtype == b.array.dtype and a.array.shape == b.array.shape
        assert np.array_equal(a.array, b.array), key
        assert np.allclose(a.affine, b.affine), key


def _sop_uids(folder) -> set[str]:
    return {str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            for f in Path(folder).glob("*.dcm")}


def _studies(node):
    return find(node, "study", QueryFilter(patient_id=PATIENT_ID))


def _no_partials(cache: SeriesCache):
    assert cache.partial_count() == 0, list(cache.partial_dir.iterdir())


# ------------------------------------------------------------------------------------------ nodes (no server)
def test_nodes_json_round_trip_and_validation(tmp_path):
    from discviewer.pacs import load_nodes, save_nodes

    a = RemoteNode("pacs", host="10.0.0.5", port=11112, called_ae="PACS", calling_ae="ME", retrieve="move",
                   move_port=11113)
    b = RemoteNode("web", transport="dicomweb", url="http://pacs:8042/dicom-web/")
    assert nodes_from_json(nodes_to_json([a, b])) == [a, b]
    save_nodes(tmp_path / "n.json", [a, b])
    assert load_nodes(tmp_path / "n.json") == [a, b] and load_nodes(tmp_path / "missing.json") == []
    assert b.validated().url == "http://pacs:8042/dicom-web"
    for bad, text in ((RemoteNode("x", host="h", called_ae="A" * 17), "longer than 16"),
                      (RemoteNode("x", host="h", called_ae="A\\B"), "backslash"),
                      (RemoteNode("x", host="", called_ae="A"), "no host"),
                      (RemoteNode("x", host="h", port=70000), "1–65535"),
                      (RemoteNode("x", transport="dicomweb", url="pacs:8042"), "not an http"),
                      (RemoteNode("x", host="h", transport="hl7"), "transport")):
        with pytest.raises(ValueError, match=text):
            bad.validated()
    assert QueryFilter(date_from="2020-01-02", date_to="20201231").date_range == "20200102-20201231"
    assert QueryFilter(date_from="2020-01-02").date_range == "20200102-"


def test_cache_commits_only_complete_series(tmp_path):
    from discviewer.pacs import SeriesRecord

    cache = SeriesCache(tmp_path / "cache")
    rec = SeriesRecord("1.2.3", "1.2.3.4", patient_id="P", series_number=1, description="T2")
    st = cache.begin(rec, "pacs")
    st.write("1.2.3.4.1", b"x" * 10)
    assert cache.partial_count() == 1 and cache.entries() == []  # not visible while staging
    with pytest.raises(IncompleteSeriesError, match="1 of 2 instances came from pacs") as err:
        st.commit(["1.2.3.4.1", "1.2.3.4.2"])
    assert (err.value.received, err.value.expected) == (1, 2)
    assert cache.partial_count() == 0 and cache.entries() == [] and not cache.series_dir("1.2.3", "1.2.3.4").exists()
    st = cache.begin(rec, "pacs")
    for uid in ("1.2.3.4.1", "1.2.3.4.2"):
        st.write(uid, uid.encode())
    entry = st.commit(["1.2.3.4.1", "1.2.3.4.2"])
    assert cache.entries() == [entry] and entry.n_instances == 2 and cache.has_series("1.2.3", "1.2.3.4")
    # a forced re-retrieve swaps the folder; a stale staging folder of a dead process is removed on open
    st = cache.begin(rec, "other")
    st.write("1.2.3.4.9", b"y")
    assert st.commit(expected_count=1).source == "other" and cache.get("1.2.3", "1.2.3.4").n_instances == 1
    (cache.partial_dir / "999999999-dead").mkdir()
    assert SeriesCache(cache.root).partial_count() == 0
    assert cache.remove_series("1.2.3", "1.2.3.4") and cache.entries() == []


def test_missing_orthanc_skips_or_fails(monkeypatch):
    from tests import pacs_orthanc

    monkeypatch.delenv(pacs_orthanc.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        pacs_orthanc.skip_or_fail("the Orthanc binary is not installed")
    monkeypatch.setenv(pacs_orthanc.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="a real Orthanc is required"):
        pacs_orthanc.skip_or_fail("the Orthanc binary is not installed")


# ------------------------------------------------------------------------------------------ echo / find
def test_echo(orthanc):
    assert orthanc.seed_seconds < 60  # 315 files by C-STORE
    assert 0 < echo(orthanc.node()) < 5


def test_find_patient_level(orthanc):
    pats = find(orthanc.node(), "patient")
    assert [(p.patient_id, p.patient_name, p.n_studies) for p in pats] == [(PATIENT_ID, "PHANTOM^S0P01", N_VISITS)]
    assert [p.patient_id for p in find(orthanc.node(), "patient", QueryFilter(patient_name="phantom"))] == [PATIENT_ID]
    assert find(orthanc.node(), "patient", QueryFilter(patient_id="NOBODY")) == []
    # a patient query with a study filter is answered from the matching studies
    assert [p.n_studies for p in find(orthanc.node(), "patient", QueryFilter(date_to="20191231"))] == [2]


def test_find_study_level_filters(orthanc, source):
    node = orthanc.node()
    studies = _studies(node)
    assert len(studies) == N_VISITS
    dates = [s.study_date for s in studies]
    assert dates == sorted(dates) and len(set(dates)) == N_VISITS
    assert all(s.modalities == ("MR",) and s.n_series == SERIES_PER_VISIT for s in studies)
    n_files = sum(len(v) for v in source.values())
    assert sum(s.n_instances for s in studies) == n_files
    # date range (inclusive), open-ended ranges, modality and description
    mid = find(node, "study", QueryFilter(date_from=dates[1], date_to=dates[3]))
    assert [s.study_date for s in mid] == dates[1:4]
    assert [s.study_date for s in find(node, "study", QueryFilter(date_from=dates[3]))] == dates[3:]
    assert find(node, "study", QueryFilter(modality="CT")) == []
    assert len(find(node, "study", QueryFilter(modality="mr"))) == N_VISITS
    assert len(find(node, "study", QueryFilter(description="LUMBAR"))) == N_VISITS
    assert find(node, "study", QueryFilter(description="CERVICAL")) == []
    assert len(find(node, "study", QueryFilter(patient_name="S0P01"))) == N_VISITS


def test_find_series_level_filters(orthanc, source):
    node = orthanc.node()
    series = find(node, "series", QueryFilter(patient_id=PATIENT_ID))
    assert len(series) == N_VISITS * SERIES_PER_VISIT
    assert {s.series_uid for s in series} == set(source)
    assert all(s.n_instances == len(source[s.series_uid]) for s in series)
    assert all(s.study_description == "MR LUMBAR SPINE" and s.study_date for s in series)
    t2 = find(node, "series", QueryFilter(patient_id=PATIENT_ID, description="T2", modality="MR"))
    assert len(t2) == N_VISITS and all("T2" in s.description for s in t2)
    first = _studies(node)[0]
    in_study = find(node, "series", QueryFilter(study_uid=first.study_uid))
    assert len(in_study) == SERIES_PER_VISIT and {s.study_uid for s in in_study} == {first.study_uid}
    assert [s.series_number for s in in_study] == [1, 2, 3]
    assert find(node, "series", QueryFilter(patient_id=PATIENT_ID, modality="SR")) == []


# ------------------------------------------------------------------------------------------ retrieve
def test_cget_retrieve_voxel_identical(orthanc, source, tmp_path):
    node = orthanc.node()
    study = _studies(node)[0]
    cache = SeriesCache(tmp_path / "cache")
    calls = []
    t0 = time.monotonic()
    res = retrieve(node, [study], cache, method="get", progress=lambda d, t: calls.append((d, t)))
    took = time.monotonic() - t0
    assert len(res.retrieved) == SERIES_PER_VISIT and not res.skipped
    total = study.n_instances
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    for entry in res.retrieved:
        assert _sop_uids(entry.path) == {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                                         for f in source[entry.series_uid]}
        assert entry.n_instances == len(source[entry.series_uid]) and entry.source == node.name
        assert_voxel_identical(entry.path, source[entry.series_uid])
    assert {e.series_uid for e in cache.entries()} == {e.series_uid for e in res.retrieved}
    _no_partials(cache)
    assert took < 30


def test_cmove_retrieve_voxel_identical(orthanc, source, tmp_path):
    node = orthanc.node(retrieve="move")
    study = _studies(node)[1]
    cache = SeriesCache(tmp_path / "cache")
    res = retrieve(node, [study], cache)
    assert len(res.retrieved) == SERIES_PER_VISIT
    for entry in res.retrieved:
        assert_voxel_identical(entry.path, source[entry.series_uid])
    _no_partials(cache)


def test_cmove_unknown_destination(orthanc, tmp_path):
    node = orthanc.node(calling_ae="NOTKNOWN", retrieve="move", move_port=free_port())
    series = find(node, "series", QueryFilter(patient_id=PATIENT_ID, description="T1"))[0]
    cache = SeriesCache(tmp_path / "cache")
    with pytest.raises(OperationError, match="the C-MOVE destination .NOTKNOWN.*port"):
        retrieve(node, [series], cache)
    assert cache.entries() == [] and cache.partial_count() == 0


def test_cached_study_skipped_unless_forced(orthanc, tmp_path):
    node = orthanc.node()
    study = _studies(node)[2]
    cache = SeriesCache(tmp_path / "cache")
    first = retrieve(node, [study], cache)
    mtimes = {e.series_uid: Path(e.path, ".series.json").stat().st_mtime_ns for e in first.retrieved}
    again = retrieve(node, [study], cache)
    assert again.retrieved == [] and len(again.skipped) == SERIES_PER_VISIT
    assert sorted(again.paths) == sorted(e.path for e in first.retrieved)
    assert {e.series_uid: Path(e.path, ".series.json").stat().st_mtime_ns for e in again.skipped} == mtimes
    forced = retrieve(node, [study], cache, force=True)
    assert len(forced.retrieved) == SERIES_PER_VISIT and forced.skipped == []
    assert len(cache.entries()) == SERIES_PER_VISIT
    _no_partials(cache)


def test_retrieve_patient_all_visits(orthanc, source, tmp_path):
    node = orthanc.node()
    cache = SeriesCache(tmp_path / "cache")
    one = retrieve(node, [find(node, "series", QueryFilter(patient_id=PATIENT_ID, description="T1"))[0]], cache)
    assert len(one.retrieved) == 1
    res = retrieve_patient(node, PATIENT_ID, cache)
    assert len(res.retrieved) == N_VISITS * SERIES_PER_VISIT - 1 and len(res.skipped) == 1
    assert {e.series_uid for e in cache.entries()} == set(source)
    assert len({e.study_uid for e in cache.entries()}) == N_VISITS
    # the cache folder scans like the source folder: same volumes
    assert _volumes(cache.root).keys() == _volumes(orthanc.source).keys()
    with pytest.raises(PacsError, match="No Patient ID"):
        retrieve_patient(node, " ", cache)


# ------------------------------------------------------------------------------------------ send back
@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The export issue's SR and Secondary Capture of visit "3 m": identifying (for sending back) and
    de-identified (the default, which must be refused)."""
    from discviewer.export import ExportPolicy, policy_for
    from discviewer.export.dicom_sr import measurement_report, secondary_capture
    from tests.core.test_export_tables import export_workspace

    _folder, _result, ws = export_workspace(tmp_path_factory)
    patient = ws.study.patients[0]
    visit = patient.visits[1]
    out = tmp_path_factory.mktemp("pacs_exports")
    ident = ExportPolicy(identifying=True)
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[16:48, 24:72] = (200, 80, 40)
    files = {}
    for name, ds in (("sr", measurement_report(ws, patient, visit, ident)),
                     ("sc", secondary_capture(rgb, ws, patient, visit, ident, description="L4/L5 figure")),
                     ("sr_deid", measurement_report(ws, patient, visit, policy_for(ws)))):
        files[name] = out / f"{name}.dcm"
        ds.save_as(files[name], enforce_file_format=True)
    return files


def _delete_series(orthanc, series_uid):
    for h in orthanc.rest("POST", "/tools/lookup", series_uid.encode()):
        if h["Type"] == "Series":
            orthanc.rest("DELETE", f"/series/{h['ID']}")


def test_send_sr_and_sc_back_and_find_them(orthanc, exports, tmp_path):
    node = orthanc.node()
    sr = pydicom.dcmread(exports["sr"])
    sc = pydicom.dcmread(exports["sc"])
    study_uid = str(sr.StudyInstanceUID)
    assert study_uid in {s.study_uid for s in _studies(node)}  # identifying export: the patient's own study
    try:
        res = send(node, [exports["sr"], exports["sc"]])
        assert set(res.stored) == {str(sr.SOPInstanceUID), str(sc.SOPInstanceUID)} and not res.failed
        found = find(node, "series", QueryFilter(study_uid=study_uid, modality="SR"))
        assert [s.series_uid for s in found] == [str(sr.SeriesInstanceUID)]
        assert found[0].patient_id == PATIENT_ID and found[0].n_instances == 1
        assert find(node, "series", QueryFilter(patient_id=PATIENT_ID, modality="SR"))[0].study_uid == study_uid
        sc_found = find(node, "series", QueryFilter(study_uid=study_uid, modality=str(sc.Modality)))
        assert str(sc.SeriesInstanceUID) in {s.series_uid for s in sc_found}
        study = find(node, "study", QueryFilter(study_uid=study_uid))[0]
        assert study.n_series == SERIES_PER_VISIT + 2 and "SR" in study.modalities
        # and it comes back intact with C-GET
        cache = SeriesCache(tmp_path / "cache")
        back = retrieve(node, found, cache)
        got = pydicom.dcmread(next(Path(back.retrieved[0].path).glob("*.dcm")))
        assert got.SOPInstanceUID == sr.SOPInstanceUID and got.ContentSequence == sr.ContentSequence
    finally:
        _delete_series(orthanc, str(sr.SeriesInstanceUID))
        _delete_series(orthanc, str(sc.SeriesInstanceUID))
    assert find(node, "series", QueryFilter(patient_id=PATIENT_ID, modality="SR")) == []


def test_send_deidentified_export_refused(orthanc, exports):
    node = orthanc.node()
    with pytest.raises(PacsError, match="not on PACS 'test-orthanc'.*de-identified"):
        send(node, [exports["sr_deid"]])
    assert find(node, "study", QueryFilter(patient_id=PATIENT_ID)) == _studies(node)
    assert len(find(node, "patient")) == 1  # no stray pseudonymous patient


# ------------------------------------------------------------------------------------------ failures
def test_stopped_server_is_unreachable(orthanc, tmp_path):
    node = orthanc.node(timeout=3)
    study = _studies(node)[0]
    cache = SeriesCache(tmp_path / "cache")
    orthanc.stop()
    try:
        t0 = time.monotonic()
        for call in (lambda: echo(node), lambda: find(node, "study"), lambda: retrieve(node, [study], cache),
                     lambda: send(node, orthanc.source_files[:1], check_study=False)):
            with pytest.raises(UnreachableError) as err:
                call()
            msg = str(err.value)
            assert f"127.0.0.1:{orthanc.dicom_port}" in msg and "refused" in msg and "test-orthanc" in msg
        assert time.monotonic() - t0 < 10  # a refused connection fails at once, no timeout wait
        if orthanc.has_dicomweb:
            with pytest.raises(UnreachableError, match=f"127.0.0.1:{orthanc.http_port}.*refused"):
                echo(orthanc.web_node())
    finally:
        orthanc.start()
    assert cache.entries() == [] and cache.partial_count() == 0
    assert echo(node) > 0


def test_wrong_called_ae_is_rejected(orthanc):
    node = orthanc.node(called_ae="NOT-ORTHANC")
    with pytest.raises(RejectedError) as err:
        echo(node)
    msg = str(err.value)
    assert "'NOT-ORTHANC'" in msg and f"'{OUR_AET}'" in msg and "rejected the association" in msg
    assert "called" in err.value.reason.lower()  # Orthanc: "Called AE title not recognised"
    with pytest.raises(RejectedError):
        find(node, "study")


def test_association_timeout(orthanc):
    node = orthanc.node(timeout=1.5)
    t0 = time.monotonic()
    with orthanc.frozen():  # the kernel accepts the connection, Orthanc never answers
        with pytest.raises(PacsTimeoutError, match="did not answer the association request .* within 1.5 s"):
            echo(node)
    assert time.monotonic() - t0 < 10
    assert echo(orthanc.node()) > 0


def _stop_after(n: int, action):
    state = {"done": False}

    def progress(done, total):
        if done >= n and not state["done"]:
            state["done"] = True
            action()
    return progress


def test_timeout_mid_transfer_leaves_nothing(orthanc, tmp_path):
    node = orthanc.node(timeout=2)
    study = _studies(node)[3]
    cache = SeriesCache(tmp_path / "cache")
    try:
        with pytest.raises(PacsTimeoutError, match="stopped answering .* within 2 s") as err:
            retrieve(node, [study], cache, progress=_stop_after(3, orthanc.freeze))
    finally:
        orthanc.thaw()
    assert err.value.result.retrieved == [] and cache.entries() == []
    _no_partials(cache)
    assert not any(cache.root.glob("*/*/*.dcm"))


def test_server_killed_mid_transfer_leaves_nothing(orthanc, tmp_path):
    node = orthanc.node(timeout=5)
    study = _studies(node)[4]
    series = find(node, "series", QueryFilter(study_uid=study.study_uid))
    cache = SeriesCache(tmp_path / "cache")
    first_total = series[0].n_instances
    try:
        # the first series completes, the server dies during the second
        with pytest.raises(PacsError, match="connection .* was lost") as err:
            retrieve(node, series, cache, progress=_stop_after(first_total + 2, orthanc.kill))
        assert not isinstance(err.value, PacsTimeoutError)
    finally:
        orthanc.start()
    assert len(series) == SERIES_PER_VISIT, series
    assert [e.series_uid for e in cache.entries()] == [series[0].series_uid]
    assert [e.series_uid for e in err.value.result.retrieved] == [series[0].series_uid]
    _no_partials(cache)
    again = retrieve(node, series, cache)  # resumes: the complete one is skipped
    assert len(again.skipped) == 1 and len(again.retrieved) == 2, again


def test_series_cut_off_half_way_is_incomplete(orthanc, source, tmp_path):
    """Instances vanish from the PACS between the count (IMAGE-level C-FIND) and the C-GET: the PACS
    reports success for what it still has; the count check refuses the series."""
    node = orthanc.node()
    study = _studies(node)[0]
    t2 = find(node, "series", QueryFilter(study_uid=study.study_uid, description="T2"))[0]
    ids = orthanc.instance_ids(t2.series_uid)
    n = len(ids)
    removed = ids[: n // 2]
    cache = SeriesCache(tmp_path / "cache")

    def progress(done, total):
        if done == 0:
            for i in removed:
                orthanc.rest("DELETE", f"/instances/{i}")

    try:
        for method in ("get", "move"):
            with pytest.raises(IncompleteSeriesError) as err:
                retrieve(orthanc.node(retrieve=method), [study], cache, progress=progress, force=True)
            e = err.value
            assert (e.series_uid, e.received, e.expected) == (t2.series_uid, n - len(removed), n)
            assert f"{n - len(removed)} of {n}" in str(e) and "Nothing of them was kept" in str(e)
            assert not cache.has_series(t2.study_uid, t2.series_uid) and cache.get(t2.study_uid, t2.series_uid) is None
            assert len(e.result.retrieved) == SERIES_PER_VISIT - 1  # the other series are complete
            _no_partials(cache)
            store(node, source[t2.series_uid])  # put them back for the second method
            removed = orthanc.instance_ids(t2.series_uid)[: n // 2]
    finally:
        store(node, source[t2.series_uid])
    assert find(node, "series", QueryFilter(study_uid=study.study_uid, description="T2"))[0].n_instances == n


def test_cancel_keeps_nothing_of_the_running_series(orthanc, tmp_path):
    node = orthanc.node()
    study = _studies(node)[1]
    cache = SeriesCache(tmp_path / "cache")
    seen = []
    with pytest.raises(CancelledError, match="cancelled"):
        retrieve(node, [study], cache, progress=lambda d, t: seen.append(d), cancel=lambda: len(seen) > 3)
    assert cache.entries() == []
    _no_partials(cache)


# ------------------------------------------------------------------------------------------ DICOMweb
@pytest.fixture
def web(orthanc):
    if not orthanc.has_dicomweb:
        msg = "Orthanc's DICOMweb plugin (Debian package orthanc-dicomweb) is not installed"
        if os.environ.get(REQUIRE_ENV) == "1":  # CI installs it: a missing plugin must not hide these tests
            pytest.fail(msg + f" ({REQUIRE_ENV}=1)")
        pytest.skip(msg)
    return orthanc.web_node()


def test_dicomweb_query_matches_dimse(orthanc, web):
    dimse_studies = _studies(orthanc.node())
    web_studies = find(web, "study", QueryFilter(patient_id=PATIENT_ID))
    assert [s.study_uid for s in web_studies] == [s.study_uid for s in dimse_studies]
    assert [(s.study_date, s.n_series, s.n_instances) for s in web_studies] == \
        [(s.study_date, s.n_series, s.n_instances) for s in dimse_studies]
    dates = [s.study_date for s in dimse_studies]
    assert [s.study_date for s in find(web, "study", QueryFilter(date_from=dates[1], date_to=dates[2]))] == dates[1:3]
    t2 = find(web, "series", QueryFilter(patient_id=PATIENT_ID, description="T2"))
    assert {s.series_uid for s in t2} == {s.series_uid for s in find(orthanc.node(), "series", QueryFilter(
        patient_id=PATIENT_ID, description="T2"))}
    assert [p.patient_id for p in find(web, "patient")] == [PATIENT_ID]
    assert echo(web) > 0


def test_dicomweb_retrieve_voxel_identical_and_skip(orthanc, web, source, tmp_path):
    study = find(web, "study", QueryFilter(patient_id=PATIENT_ID))[2]
    cache = SeriesCache(tmp_path / "cache")
    calls = []
    res = retrieve(web, [study], cache, progress=lambda d, t: calls.append((d, t)))
    assert len(res.retrieved) == SERIES_PER_VISIT and calls[-1] == (study.n_instances, study.n_instances)
    for entry in res.retrieved:
        assert_voxel_identical(entry.path, source[entry.series_uid])
    assert len(retrieve(web, [study], cache).skipped) == SERIES_PER_VISIT
    _no_partials(cache)


def test_dicomweb_stow_sr_found_by_cfind(orthanc, web, exports):
    sr = pydicom.dcmread(exports["sr"])
    try:
        res = send(web, [exports["sr"]])
        assert res.stored == [str(sr.SOPInstanceUID)]
        found = find(orthanc.node(), "series", QueryFilter(study_uid=str(sr.StudyInstanceUID), modality="SR"))
        assert [s.series_uid for s in found] == [str(sr.SeriesInstanceUID)]
    finally:
        _delete_series(orthanc, str(sr.SeriesInstanceUID))
    with pytest.raises(PacsError, match="de-identified"):
        send(web, [exports["sr_deid"]])


def test_dicomweb_unreachable_and_timeout(orthanc, web, tmp_path):
    dead = RemoteNode("dead", transport="dicomweb", url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout=3)
    with pytest.raises(UnreachableError, match="refused"):
        echo(dead)
    with orthanc.frozen():
        with pytest.raises(PacsTimeoutError, match="within 1.5 s"):
            find(orthanc.web_node(timeout=1.5), "study")
    assert echo(web) > 0
