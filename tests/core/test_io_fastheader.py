"""The byte-level header walker gives exactly what the full pydicom parse gives."""
from __future__ import annotations

import os

import pytest

from discviewer.io import fastheader, header
from tests.core.dicom_factory import write_stack


def _all_files(root):
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            yield os.path.join(dirpath, n)


def _both(path, monkeypatch):
    def run():
        try:
            return header.read_headers(path)
        except header.UnusableFile as exc:
            return f"unusable: {exc}"

    fast = run()
    with monkeypatch.context() as m:
        m.setattr(header, "_fast_parse", lambda fp, size: None)
        slow = run()
    return fast, slow


@pytest.mark.realdata
def test_fast_and_full_parse_agree_on_real_data(real_data, monkeypatch):
    used_fast = 0
    files = list(_all_files(real_data))
    assert len(files) > 400
    for path in files:
        fast, slow = _both(path, monkeypatch)
        assert fast == slow, path
        with open(path, "rb") as f:
            if fastheader.parse(f.read()) is not None:
                used_fast += 1
    assert used_fast > 300  # the fast path really is the common path


def test_fast_and_full_parse_agree_on_written_files(tmp_path, monkeypatch):
    write_stack(tmp_path, [0.0, 4.0, 8.0], te=12.5, image_type=("ORIGINAL",))
    for path in _all_files(tmp_path):
        fast, slow = _both(path, monkeypatch)
        assert fast == slow
        assert fast[0].image_type == ("ORIGINAL",)
        assert fast[0].echo_time == 12.5 and fast[0].pixel_offset is not None


def test_fast_parse_declines_what_it_does_not_handle():
    assert fastheader.parse(b"not dicom at all" * 20) is None
    assert fastheader.parse(b"") is None
