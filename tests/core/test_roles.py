"""roles.guess_role on handcrafted headers and on real data; parse_role."""
from __future__ import annotations

import pytest

from discviewer.roles import ROLES, Role, guess_role, parse_role
from discviewer.volume import SeriesInfo


def info(desc="", seq="", tr=None, te=None, **kw):
    return SeriesInfo(series_description=desc, sequence_name=seq, repetition_time=tr, echo_time=te, **kw)


@pytest.mark.parametrize("si, kw, expected", [
    # spin echo by TR/TE
    (info("T2 TSE SAG", "*tse2d1_17", 4000, 100), dict(plane="sag"), Role.T2_SAG),
    (info("t2_tse_tra", "*tse2d1_15", 5000, 95), dict(plane="ax"), Role.T2_AX),
    (info("t2_tse_cor", "*tse2d1_15", 5000, 95), dict(plane="cor"), Role.OTHER),
    (info("T1 TSE SAG", "*tse2d1_3", 550, 10), dict(plane="sag"), Role.T1_SAG),
    (info("PD sag", "*tse2d1_5", 3000, 12), dict(plane="sag"), Role.OTHER),
    # GE/Philips: no sequence name, ScanningSequence decides the family
    (info("Sag T2 FSE", "", 3500, 85), dict(plane="sag", scanning_sequence="SE"), Role.T2_SAG),
    (info("sag T1", "", 600, 12), dict(plane="sag", scanning_sequence="SE"), Role.T1_SAG),
    # header physics beats a wrong description
    (info("T2 sag", "*tse2d1_3", 500, 10), dict(plane="sag"), Role.T1_SAG),
    # gradient echo
    (info("ME-GRE SAG", "*fl2d5", 700, 4), dict(plane="sag", n_echoes=5), Role.MULTI_ECHO_GRE),
    (info("gre_field_mapping", "*fm2d2", 400, 5.19), dict(plane="ax", n_echoes=2, scanning_sequence="GR"),
     Role.MULTI_ECHO_GRE),
    (info("t2_fl2d_sag_hemo", "*fl2d1", 600, 20), dict(plane="sag"), Role.T2STAR_GRE),
    (info("sag gre", "*fl2d1", 500, 15), dict(plane="sag"), Role.T2STAR_GRE),
    (info("T2* FFE", "", 650, 4.6), dict(plane="sag", scanning_sequence="GR"), Role.T2STAR_GRE),  # name wins
    (info("MEDIC sag", "*me2d1r3", 700, 17), dict(plane="sag"), Role.T2STAR_GRE),
    (info("t1_fl2d_sag", "*fl2d1", 300, 2.46), dict(plane="sag"), Role.T1_SAG),  # T1 FLASH
    (info("t1_fl2d_tra", "*fl2d1", 300, 2.46), dict(plane="ax"), Role.OTHER),
    # several short echoes with no sequence information → multi-echo GRE
    (info("", "", 60, 3), dict(plane="sag", n_echoes=6), Role.MULTI_ECHO_GRE),
    # STIR: by TI, by description, by Siemens tir sequence
    (info("sag", "", 4000, 40), dict(plane="sag", scanning_sequence="IR\\SE", inversion_time=160), Role.STIR_SAG),
    (info("STIR SAG", "", 3500, 60), dict(plane="sag"), Role.STIR_SAG),
    (info("t2_tirm_sag", "*tir2d1_13", 4000, 40), dict(plane="sag"), Role.STIR_SAG),
    (info("t2_tirm_tra_dark-fluid", "*tir2d1_21", 9000, 90), dict(plane="ax", inversion_time=2500), Role.OTHER),
    (info("STIR cor", "", 3500, 60), dict(plane="cor"), Role.OTHER),
    # localizer
    (info("localizer", "*fl2d1", 8.6, 4), dict(plane="sag"), Role.LOCALIZER),
    (info("AAHead_Scout", "*fl3d1", 3, 1.3), dict(plane="sag"), Role.LOCALIZER),
    (info("T2 sag", "*tse2d1_17", 4000, 100), dict(plane="sag", is_localizer=True), Role.LOCALIZER),
    # description is the tie-breaker when TR/TE are missing
    (info("sag T2"), dict(plane="sag"), Role.T2_SAG),
    (info("T1W SAG"), dict(plane="sag"), Role.T1_SAG),
    (info("multi echo", ""), dict(plane="sag", n_echoes=4), Role.MULTI_ECHO_GRE),
    (info("t2star map"), dict(plane="sag"), Role.T2STAR_GRE),
    # diffusion / EPI is never a T2 even with T2-like TR/TE
    (info("DWI b1000", "*ep_b1000", 5000, 80), dict(plane="ax"), Role.OTHER),
    (info("ax_asc_35sl", "epfid2d1_64", 3000, 30), dict(plane="ax"), Role.OTHER),
    (info("", ""), dict(plane="sag"), Role.OTHER),
    # fast TR without a sequence name: only a gradient echo repeats every 30 ms
    (info("sag fast", "", 30, 12.5), dict(plane="sag"), Role.T2STAR_GRE),
    (info("t2s_uncropped"), dict(plane="ax"), Role.T2STAR_GRE),
    (info("T/S/C RF FAST PILOT", "", 30, 12.5), dict(plane="sag"), Role.LOCALIZER),
    (info("ANGIO Projected from C", "", 30, 6), dict(plane="sag"), Role.OTHER),
    (info("T1 sag", "", 30, 6, image_type=("DERIVED", "SECONDARY", "PROJECTION IMAGE")), dict(plane="sag"),
     Role.OTHER),
])
def test_guess_role_cases(si, kw, expected):
    role, reason = guess_role(si, **kw)
    assert role == expected, reason
    assert reason and isinstance(reason, str)


def test_t1_flash_reason_explains_the_decision():
    role, reason = guess_role(info("t1_fl2d_sag", "*fl2d1", 300, 2.46), plane="sag")
    assert role == "T1 sag"
    assert "gradient echo" in reason and "T1-weighted" in reason and "T2*" in reason


def test_header_beats_description_and_says_so():
    role, reason = guess_role(info("T2 sag", "*tse2d1_3", 500, 10), plane="sag")
    assert role == Role.T1_SAG and "header wins" in reason


def test_parse_role():
    assert parse_role("t2 SAG") is Role.T2_SAG
    assert parse_role("MULTI_ECHO_GRE") is Role.MULTI_ECHO_GRE
    assert parse_role(Role.OTHER) is Role.OTHER
    assert Role.T2STAR_GRE == "T2* GRE" and str(Role.T2STAR_GRE) == "T2* GRE"
    assert ROLES == ("T2 sag", "T1 sag", "T2* GRE", "multi-echo GRE", "STIR sag", "T2 ax", "localizer", "other")
    with pytest.raises(ValueError, match="unknown role 'T3 sag'"):
        parse_role("T3 sag")


@pytest.mark.realdata
def test_real_t1_flash_is_t1_sag(real_data):
    """dcm_qa_decubitus: Siemens t1_fl2d_sag, *fl2d1, TR 300, TE 2.46 — a T1-weighted FLASH."""
    from discviewer.io import scan
    from discviewer.io.scan import plane_name

    result = scan(real_data / "dcm_qa_decubitus")
    assert len(result.series) == 3
    for c in result.series:
        assert (c.info.repetition_time, c.info.echo_time, c.info.sequence_name) == (300.0, 2.46, "*fl2d1")
        role, reason = guess_role(c.info, n_echoes=1, plane=plane_name(c.orientation), is_localizer=c.is_localizer)
        assert role is Role.T1_SAG, reason
