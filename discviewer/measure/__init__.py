"""Measurements on volumes: disc/vertebral heights and indices, automatic disc landmarks, ROI
statistics, signal ratios, iron voids, R2* maps, and the values of every annotation kind.

Plain numpy in, frozen dataclasses out; units mm, mm², mm³, s, s⁻¹ (TE in ms on input). Every
function documents its formula. Core package: numpy + scipy only (no Qt, no VTK).
"""
from .compute import angle_deg, compute_iron, compute_values, plane_roi_of, ruler_length_mm
from .height import (INDICES, DiscHeight, DiscLandmarks, HeightIndex, VertebralBodyHeight, dh_mean, dhi_adjacent,
                     dhi_farfan, dhi_masuda, disc_height, percent_of_baseline, vertebral_body_height)
from .iron import IronResult, IronRule, hypointense_region, suggested_iron_score
from .landmarks import LandmarkDetection, detect_disc_landmarks
from .r2star import R2StarMap, r2star_map, rician_mean
from .roi import PlaneROI, RoiStats, SliceStats, roi_area_mm2, roi_mask, roi_stats
from .signal import RAYLEIGH_SD_FACTOR, SignalRatio, cnr, noise_sd, noise_sigma_from_background, signal_ratio, snr

__all__ = [
    "disc_height", "vertebral_body_height", "DiscLandmarks", "DiscHeight", "VertebralBodyHeight", "HeightIndex",
    "INDICES", "dh_mean", "dhi_adjacent", "dhi_farfan", "dhi_masuda", "percent_of_baseline",
    "detect_disc_landmarks", "LandmarkDetection",
    "PlaneROI", "RoiStats", "SliceStats", "roi_mask", "roi_stats", "roi_area_mm2",
    "signal_ratio", "SignalRatio", "snr", "cnr", "noise_sd", "noise_sigma_from_background", "RAYLEIGH_SD_FACTOR",
    "hypointense_region", "IronRule", "IronResult", "suggested_iron_score",
    "r2star_map", "R2StarMap", "rician_mean",
    "compute_values", "compute_iron", "plane_roi_of", "ruler_length_mm", "angle_deg",
]
