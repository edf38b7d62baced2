"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile.

Owns `Deidentifier` (rules applied to a pydicom Dataset), `deidentify_file` (source → new file,
source never modified) and `find_identifying_strings` (the leak check used by tests of reader
packages and exports). Core module: pydicom only; no Qt, no VTK.

What is done (and why)
----------------------
* Every attribute of PS3.15 (2024b) Table E.1-1, Basic Profile column, gets its action (table
  `BASIC_PROFILE_TABLE` below, in the standard's order of action codes). Compound actions are resolved
  for the MR Image IOD (conformance allows the lighter action only where the IOD type needs it):

  ======== ==================================================================================
  D        a dummy value of the VR (text "DEIDENTIFIED", numbers 0, DA 19000101, TM 000000,
           DT 19000101000000 — constant, so no real date survives); sequences and binary values
           are removed (no MR IOD requires them).
  Z, Z/D   zero length (Study Date/Time, Content Date/Time, Birth Date, Sex, Accession Number,
           Study ID, Referring Physician's Name …). Patient's Name and Patient ID get the case code
           the caller gives ("C017"), which the profile allows as a dummy value.
  X, X/Z,  removed: none of these is Type 1 or 2 in the MR Image IOD (Series Date/Time, Acquisition
  X/D,     Date/Time, Institution Name, Station Name, Protocol Name, Operators' Name …).
  X/Z/D
  X/Z/U*   Referenced Image Sequence / Source Image Sequence are kept and their instance UIDs
           remapped (U), so references between images stay valid.
  U        remapped: ``2.25.<first 128 bits of SHA-256(salt, UID) as a version-8 UUID>`` — the same
           UID and salt always give the same new UID, so series, frames of reference and references
           stay consistent across files, series and visits; different salts give unlinkable UIDs.
  ======== ==================================================================================

  **Dates are removed**: no date or time survives (Type 2 ones are emptied, the rest removed), and
  Longitudinal Temporal Information Modified is set to "REMOVED". Serial intervals, when needed, travel
  outside the images (the reading session knows its own case codes, never dates).
* Beyond the table ("retain only what is known to be safe", PS3.15 E.1.1 note 5, and note 4 on
  handling dates by VR): any remaining DA/DT/TM element is removed, any remaining PN emptied, any
  remaining UI that is not a class UID or a UID registered in the standard is remapped, public
  elements unknown to the dictionary are removed, overlay (60xx) and curve (50xx) groups, group
  lengths and private elements are removed (``keep_private=True`` keeps private elements — only for
  data whose private tags the caller knows to be safe; the Retain Safe Private Option code is then
  recorded).
* Kept, because the app needs them: pixel data and the image pixel module, geometry (Image Position /
  Orientation, Pixel Spacing, Slice Thickness, Spacing Between Slices, Slice Location), acquisition
  parameters (Echo/Repetition/Inversion Time, Echo Numbers, Magnetic Field Strength, Sequence Name,
  Image Type …), Modality, Series/Instance/Acquisition Number. Series Description is replaced by the
  neutral text the caller gives ("T2 sagittal") — added by the de-identifier, as E.1.1 (3) allows.
* Added: Patient Identity Removed = YES, De-identification Method (text) and De-identification Method
  Code Sequence with 113100 "Basic Application Confidentiality Profile" only (no option is claimed:
  patient characteristics, device identity, UIDs and dates are not retained). The File Meta Information
  and the preamble are replaced (E.1.1 (7)).
* Burned-in annotation: an image with Burned In Annotation = YES is refused
  (`BurnedInAnnotationError`) unless the caller passes ``allow_burned_in=True``; the result flags it.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pydicom
from pydicom.datadict import dictionary_has_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID_dictionary

import discviewer

# ---------------------------------------------------------------------------------------------
# PS3.15 Table E.1-1 (DICOM 2024b), "Basic Prof." column. One line per attribute: tag, action, name.
# Transcribed from the standard (https://dicom.nema.org/medical/dicom/2024b/output/chtml/part15/
# chapter_E.html#table_E.1-1). Repeating groups (curves 50xx, overlays 60xx) are handled in code.

BASIC_PROFILE_TABLE = """
0018,11BB D Acquisition Field Of View Label
006A,0005 D Annotation Group Label
006A,0003 D Annotation Group UID
0044,0104 D Assertion DateTime
0400,0562 D Attribute Modification DateTime
300C,0127 D Beam Hold Transition DateTime
0400,0115 D Certificate of Signer
0012,0081 D Clinical Trial Protocol Ethics Committee Name
0012,0020 D Clinical Trial Protocol ID
0012,0010 D Clinical Trial Sponsor Name
0012,0040 D Clinical Trial Subject ID
0012,0042 D Clinical Trial Subject Reading ID
0040,0512 D Container Identifier
0040,A730 D Content Sequence
0008,0107 D Context Group Local Version
0008,0106 D Context Group Version
0040,A121 D Date
0040,A120 D DateTime
0018,9701 D Decay Correction DateTime
2100,0140 D Destination AE
3010,002D D Device Label
0400,0105 D Digital Signature DateTime
0068,6226 D Effective DateTime
0042,0011 D Encapsulated Document
3010,0035 D Entity Label
3010,0038 D Entity Long Label
0018,9804 D Exclusion Start DateTime
0034,0002 D Flow Identifier
0034,0001 D Flow Identifier Sequence
0018,9074 D Frame Acquisition DateTime
0034,0007 D Frame Origin Timestamp
0018,9151 D Frame Reference DateTime
0018,9623 D Functional Sync Pulse
0070,0001 D Graphic Annotation Sequence
0072,000A D Hanging Protocol Creation DateTime
003A,0314 D Impedance Measurement DateTime
0068,6270 D Information Issue DateTime
300A,0741 D Interlock DateTime
300A,0742 D Interlock Description
300A,0783 D Interlock Origin Description
0400,0563 D Modifying System
300A,0760 D Override DateTime
0040,1101 D Person Identification Code Sequence
0040,A123 D Person Name
300A,0002 D RT Plan Label
3010,0054 D RT Prescription Label
300A,062A D RT Tolerance Set Label
300A,0619 D Radiation Dose Identification Label
300A,0623 D Radiation Dose In-Vivo Measurement Label
300A,067C D Radiation Generation Mode Label
0400,0565 D Reason for the Attribute Modification
300A,073A D Recorded RT Control Point DateTime
0040,A13A D Referenced DateTime
3008,0162 D Safe Position Exit Date
3008,0164 D Safe Position Exit Time
3008,0166 D Safe Position Return Date
3008,0168 D Safe Position Return Time
0072,005E D Selector AE Value
0072,005F D Selector AS Value
0072,0061 D Selector DA Value
0072,0063 D Selector DT Value
0072,0066 D Selector LO Value
0072,0068 D Selector LT Value
0072,0065 D Selector OB Value
0072,006A D Selector PN Value
0072,006C D Selector SH Value
0072,006E D Selector ST Value
0072,006B D Selector TM Value
0072,006D D Selector UN Value
0072,0071 D Selector UR Value
0072,0070 D Selector UT Value
0018,936A D Source End DateTime
0034,0005 D Source Identifier
0018,9369 D Source Start DateTime
300A,022C D Source Strength Reference Date
300A,022E D Source Strength Reference Time
0040,0551 D Specimen Identifier
3006,0002 D Structure Set Label
0040,A122 D Time
3008,0024 D Treatment Control Point Date
3008,0025 D Treatment Control Point Time
300A,0608 D Treatment Position Group Label
300A,0736 D Treatment Tolerance Violation DateTime
300A,0734 D Treatment Tolerance Violation Description
3010,0033 D User Content Label
3010,0034 D User Content Long Label
0040,A030 D Verification DateTime
0040,A075 D Verifying Observer Name
0040,A073 D Verifying Observer Sequence
0040,A027 D Verifying Organization
0018,9371 D X-Ray Detector ID
0018,9367 D X-Ray Source ID
0008,0050 Z Accession Number
0018,1203 Z Calibration DateTime
0012,0060 Z Clinical Trial Coordinating Center Name
0012,0021 Z Clinical Trial Protocol Name
0012,0030 Z Clinical Trial Site ID
0012,0031 Z Clinical Trial Site Name
0012,0050 Z Clinical Trial Time Point ID
3010,000F Z Conceptual Volume Combination Description
3010,0017 Z Conceptual Volume Description
0008,009C Z Consulting Physician's Name
3010,001B Z Device Alternate Identifier
0040,2017 Z Filler Order Number / Imaging Service Request
3010,007F Z Fractionation Notes
0040,0513 Z Issuer of the Container Identifier Sequence
0040,0562 Z Issuer of the Specimen Identifier Sequence
3010,0043 Z Manufacturer's Device Identifier
0040,A082 Z Participation DateTime
0010,0030 Z Patient's Birth Date
0010,0010 Z Patient's Name
0010,0040 Z Patient's Sex
0040,2016 Z Placer Order Number / Imaging Service Request
3010,007B Z Prescription Notes
3010,0081 Z Prescription Notes Sequence
3006,00A6 Z ROI Interpreter
3006,0026 Z ROI Name
300A,0615 Z RT Accessory Device Slot ID
300A,0611 Z RT Accessory Holder Slot ID
3010,005A Z RT Physician Intent Narrative
300A,067D Z Radiation Generation Mode Description
3010,005C Z Reason for Superseding
0008,0090 Z Referring Physician's Name
300E,0004 Z Review Date
300E,0005 Z Review Time
0400,0564 Z Source of Previous Values
0040,0610 Z Specimen Preparation Sequence
3006,0008 Z Structure Set Date
3006,0009 Z Structure Set Time
0008,0020 Z Study Date
0020,0010 Z Study ID
0008,0030 Z Study Time
3010,007A Z Treatment Technique Notes
0040,A088 Z Verifying Observer Identification Code Sequence
0018,4000 X Acquisition Comments
0018,9424 X Acquisition Protocol Description
0040,4035 X Actual Human Performers Sequence
0010,21B0 X Additional Patient History
0040,A353 X Address (Trial)
0038,0010 X Admission ID
0038,0020 X Admitting Date
0008,1084 X Admitting Diagnoses Code Sequence
0008,1080 X Admitting Diagnoses Description
0038,0021 X Admitting Time
0000,1000 X Affected SOP Instance UID
0010,2110 X Allergies
006A,0006 X Annotation Group Description
0044,0004 X Approval Status DateTime
4000,0010 X Arbitrary
0044,0105 X Assertion Expiration DateTime
0040,A078 X Author Observer Sequence
300A,00C3 X Beam Description
300A,00DD X Bolus Description
0010,1081 X Branch of Service
0014,407E X Calibration Date
0014,407C X Calibration Time
0016,004D X Camera Owner Name
0018,1007 X Cassette ID
0400,0310 X Certified Timestamp
0012,0082 X Clinical Trial Protocol Ethics Committee Approval Number
0012,0072 X Clinical Trial Series Description
0012,0071 X Clinical Trial Series ID
0012,0051 X Clinical Trial Time Point Description
0040,0310 X Comments on Radiation Dose
0040,0280 X Comments on the Performed Procedure Step
300A,02EB X Compensator Description
0040,3001 X Confidentiality Constraint on Patient Data Description
0008,009D X Consulting Physician Identification Sequence
0050,001B X Container Component ID
0040,051A X Container Description
0070,0086 X Content Creator's Identification Code Sequence
0018,1042 X Contrast/Bolus Start Time
0018,1043 X Contrast/Bolus Stop Time
0018,A002 X Contribution DateTime
0018,A003 X Contribution Description
0010,2150 X Country of Residence
2100,0040 X Creation Date
2100,0050 X Creation Time
0040,A307 X Current Observer (Trial)
0038,0300 X Current Patient Location
0008,0025 X Curve Date
0008,0035 X Curve Time
0040,A07C X Custodial Organization Sequence
FFFC,FFFC X Data Set Trailing Padding
0040,A110 X Date of Document or Verbal Transaction (Trial)
0018,1205 X Date of Installation
0018,1200 X Date of Last Calibration
0018,1204 X Date of Manufacture
0018,1012 X Date of Secondary Capture
0018,1202 X DateTime of Last Calibration
0018,937F X Decomposition Description
0008,2111 X Derivation Description
0050,0020 X Device Description
0016,004B X Device Setting Description
FFFA,FFFA X Digital Signatures Sequence
0038,0030 X Discharge Date
0038,0040 X Discharge Diagnosis Description
0038,0032 X Discharge Time
300A,079A X Displacement Reference Label
4008,011A X Distribution Address
4008,0119 X Distribution Name
300A,0016 X Dose Reference Description
3010,0037 X Entity Description
3010,0036 X Entity Name
300A,0676 X Equipment Frame of Reference Description
0012,0087 X Ethics Committee Approval Effectiveness End Date
0012,0086 X Ethics Committee Approval Effectiveness Start Date
0010,2160 X Ethnic Group
0040,4011 X Expected Completion DateTime
003A,032B X Filter Lookup Table Description
0040,A023 X Findings Group Recording Date (Trial)
0040,A024 X Findings Group Recording Time (Trial)
300A,0196 X Fixation Device Description
300A,0072 X Fraction Group Description
0020,9158 X Frame Comments
0016,0070 X GPS Version ID
0016,0071 X GPS Latitude Ref
0016,0072 X GPS Latitude
0016,0073 X GPS Longitude Ref
0016,0074 X GPS Longitude
0016,0075 X GPS Altitude Ref
0016,0076 X GPS Altitude
0016,0077 X GPS Time Stamp
0016,0078 X GPS Satellites
0016,0079 X GPS Status
0016,007A X GPS Measure Mode
0016,007B X GPS DOP
0016,007C X GPS Speed Ref
0016,007D X GPS Speed
0016,007E X GPS Track Ref
0016,007F X GPS Track
0016,0080 X GPS Img Direction Ref
0016,0081 X GPS Img Direction
0016,0082 X GPS Map Datum
0016,0083 X GPS Dest Latitude Ref
0016,0084 X GPS Dest Latitude
0016,0085 X GPS Dest Longitude Ref
0016,0086 X GPS Dest Longitude
0016,0087 X GPS Dest Bearing Ref
0016,0088 X GPS Dest Bearing
0016,0089 X GPS Dest Distance Ref
0016,008A X GPS Dest Distance
0016,008B X GPS Processing Method
0016,008C X GPS Area Information
0016,008D X GPS Date Stamp
0016,008E X GPS Differential
0018,1008 X Gantry ID
0018,1005 X Generator ID
0040,E004 X HL7 Document Effective Time
0040,4037 X Human Performer's Name
0040,4036 X Human Performer's Organization
0088,0200 X Icon Image Sequence
0008,4000 X Identifying Comments
0020,4000 X Image Comments
0028,4000 X Image Presentation Comments
0040,2400 X Imaging Service Request Comments
4008,0300 X Impressions
0008,0015 X Instance Coercion DateTime
0400,0600 X Instance Origin Status
0008,0081 X Institution Address
0008,1040 X Institutional Department Name
0008,1041 X Institutional Department Type Code Sequence
0010,1050 X Insurance Plan Identification
3010,0085 X Intended Fraction Start Time
0040,1011 X Intended Recipients of Results Identification Sequence
4008,0112 X Interpretation Approval Date
4008,0113 X Interpretation Approval Time
4008,0111 X Interpretation Approver Sequence
4008,010C X Interpretation Author
4008,0115 X Interpretation Diagnosis Description
4008,0200 X Interpretation ID
4008,0202 X Interpretation ID Issuer
4008,0100 X Interpretation Recorded Date
4008,0101 X Interpretation Recorded Time
4008,0102 X Interpretation Recorder
4008,010B X Interpretation Text
4008,010A X Interpretation Transcriber
4008,0108 X Interpretation Transcription Date
4008,0109 X Interpretation Transcription Time
0018,0035 X Intervention Drug Start Time
0018,0027 X Intervention Drug Stop Time
0040,2004 X Issue Date of Imaging Service Request
0040,2005 X Issue Time of Imaging Service Request
0038,0011 X Issuer of Admission ID
0038,0014 X Issuer of Admission ID Sequence
0012,0022 X Issuer of Clinical Trial Protocol ID
0012,0073 X Issuer of Clinical Trial Series ID
0012,0032 X Issuer of Clinical Trial Site ID
0012,0041 X Issuer of Clinical Trial Subject ID
0012,0043 X Issuer of Clinical Trial Subject Reading ID
0012,0055 X Issuer of Clinical Trial Time Point ID
0010,0021 X Issuer of Patient ID
0038,0061 X Issuer of Service Episode ID
0038,0064 X Issuer of Service Episode ID Sequence
0010,21D0 X Last Menstrual Date
0016,004F X Lens Make
0016,0050 X Lens Model
0016,0051 X Lens Serial Number
0016,004E X Lens Specification
0050,0021 X Long Device Description
0400,0404 X MAC
0016,002B X Maker Note
0010,2000 X Medical Alerts
0010,1090 X Medical Record Locator
0010,1080 X Military Rank
0400,0550 X Modified Attributes Sequence
0020,3403 X Modified Image Date
0020,3406 X Modified Image Description
0020,3405 X Modified Image Time
0020,3401 X Modifying Device ID
0018,937B X Multi-energy Acquisition Description
0008,1060 X Name of Physician(s) Reading Study
0040,1010 X Names of Intended Recipients of Results
0008,1000 X Network ID
0400,0552 X Nonconforming Data Element Value
0400,0551 X Nonconforming Modified Attributes Sequence
0040,A192 X Observation Date (Trial)
0040,A033 X Observation Start DateTime
0040,A193 X Observation Time (Trial)
0010,2180 X Occupation
0040,2010 X Order Callback Phone Number
0040,2011 X Order Callback Telecom Information
0040,2008 X Order Entered By
0040,2009 X Order Enterer's Location
0400,0561 X Original Attributes Sequence
2100,0070 X Originator
0012,0023 X Other Clinical Trial Protocol IDs Sequence
0010,1000 X Other Patient IDs
0010,1002 X Other Patient IDs Sequence
0010,1001 X Other Patient Names
0008,0024 X Overlay Date
0008,0034 X Overlay Time
0040,A07A X Participant Sequence
0010,4000 X Patient Comments
300A,0794 X Patient Setup Photo Description
0038,0500 X Patient State
0040,1004 X Patient Transport Arrangements
300A,0792 X Patient Treatment Preparation Method Description
300A,078E X Patient Treatment Preparation Procedure Parameter Description
0010,1040 X Patient's Address
0010,1010 X Patient's Age
0010,1005 X Patient's Birth Name
0010,0032 X Patient's Birth Time
0038,0400 X Patient's Institution Residence
0010,0050 X Patient's Insurance Plan Code Sequence
0010,1060 X Patient's Mother's Birth Name
0010,0101 X Patient's Primary Language Code Sequence
0010,0102 X Patient's Primary Language Modifier Code Sequence
0010,21F0 X Patient's Religious Preference
0010,1020 X Patient's Size
0010,2155 X Patient's Telecom Information
0010,2154 X Patient's Telephone Numbers
0010,1030 X Patient's Weight
0040,0243 X Performed Location
0040,0254 X Performed Procedure Step Description
0040,0250 X Performed Procedure Step End Date
0040,4051 X Performed Procedure Step End DateTime
0040,0251 X Performed Procedure Step End Time
0040,0253 X Performed Procedure Step ID
0040,0244 X Performed Procedure Step Start Date
0040,4050 X Performed Procedure Step Start DateTime
0040,0245 X Performed Procedure Step Start Time
0040,0241 X Performed Station AE Title
0040,4030 X Performed Station Geographic Location Code Sequence
0040,0242 X Performed Station Name
0040,4028 X Performed Station Name Code Sequence
0008,1052 X Performing Physician Identification Sequence
0008,1050 X Performing Physician's Name
0040,1102 X Person's Address
0040,1104 X Person's Telecom Information
0040,1103 X Person's Telephone Numbers
4008,0114 X Physician Approving Interpretation
0008,1062 X Physician(s) Reading Study Identification Sequence
0008,1048 X Physician(s) of Record
0008,1049 X Physician(s) of Record Identification Sequence
0018,1004 X Plate ID
3002,0123 X Position Acquisition Template Description
3002,0121 X Position Acquisition Template Name
0040,0012 X Pre-Medication
0010,21C0 X Pregnancy Status
300A,000E X Prescription Description
0070,0082 X Presentation Creation Date
0070,0083 X Presentation Creation Time
3010,0061 X Prior Treatment Dose Description
0040,4052 X Procedure Step Cancellation DateTime
0044,000B X Product Expiration DateTime
0008,1088 X Pyramid Description
0020,0027 X Pyramid Label
3006,004D X ROI Creator Sequence
3006,002D X ROI DateTime
3006,0028 X ROI Description
3006,0038 X ROI Generation Description
3006,004E X ROI Interpreter Sequence
3006,002E X ROI Observation DateTime
3006,0088 X ROI Observation Description
3006,0085 X ROI Observation Label
300A,0004 X RT Plan Description
300A,0003 X RT Plan Name
0018,1078 X Radiopharmaceutical Start DateTime
0018,1072 X Radiopharmaceutical Start Time
0018,1079 X Radiopharmaceutical Stop DateTime
0018,1073 X Radiopharmaceutical Stop Time
300C,0113 X Reason for Omission Description
0040,100A X Reason for Requested Procedure Code Sequence
0032,1030 X Reason for Study
0032,1066 X Reason for Visit
0032,1067 X Reason for Visit Code Sequence
0040,2001 X Reason for the Imaging Service Request
0040,1002 X Reason for the Requested Procedure
0074,1234 X Receiving AE
0400,0402 X Referenced Digital Signature Sequence
0038,0004 X Referenced Patient Alias Sequence
0010,1100 X Referenced Patient Photo Sequence
0008,1120 X Referenced Patient Sequence
0400,0403 X Referenced SOP Instance MAC Sequence
0008,0096 X Referring Physician Identification Sequence
0008,0092 X Referring Physician's Address
0008,0094 X Referring Physician's Telephone Numbers
0010,2152 X Region of Residence
0040,0275 X Request Attributes Sequence
0032,1070 X Requested Contrast Agent
0040,1400 X Requested Procedure Comments
0040,1001 X Requested Procedure ID
0040,1005 X Requested Procedure Location
0018,9937 X Requested Series Description
0074,1236 X Requesting AE
0032,1032 X Requesting Physician
0032,1033 X Requesting Service
0018,9185 X Respiratory Motion Compensation Technique Description
0010,2299 X Responsible Organization
0010,2297 X Responsible Person
4008,4000 X Results Comments
4008,0118 X Results Distribution List Sequence
4008,0040 X Results ID
4008,0042 X Results ID Issuer
0008,0054 X Retrieve AE Title
0100,0420 X SOP Authorization DateTime
0038,001A X Scheduled Admission Date
0038,001B X Scheduled Admission Time
0038,001C X Scheduled Discharge Date
0038,001D X Scheduled Discharge Time
0040,4034 X Scheduled Human Performers Sequence
0038,001E X Scheduled Patient Institution Residence
0040,000B X Scheduled Performing Physician Identification Sequence
0040,0006 X Scheduled Performing Physician's Name
0040,0007 X Scheduled Procedure Step Description
0040,0004 X Scheduled Procedure Step End Date
0040,0005 X Scheduled Procedure Step End Time
0040,4008 X Scheduled Procedure Step Expiration DateTime
0040,0009 X Scheduled Procedure Step ID
0040,0011 X Scheduled Procedure Step Location
0040,4010 X Scheduled Procedure Step Modification DateTime
0040,0002 X Scheduled Procedure Step Start Date
0040,4005 X Scheduled Procedure Step Start DateTime
0040,0003 X Scheduled Procedure Step Start Time
0040,0001 X Scheduled Station AE Title
0040,4027 X Scheduled Station Geographic Location Code Sequence
0040,0010 X Scheduled Station Name
0040,4025 X Scheduled Station Name Code Sequence
0032,1020 X Scheduled Study Location
0032,1021 X Scheduled Study Location AE Title
0032,1000 X Scheduled Study Start Date
0032,1001 X Scheduled Study Start Time
0032,1010 X Scheduled Study Stop Date
0032,1011 X Scheduled Study Stop Time
0008,103E X Series Description
0038,0062 X Service Episode Description
0038,0060 X Service Episode ID
300A,01B2 X Setup Technique Description
300A,01A6 X Shielding Device Description
0040,06FA X Slide Identifier
0010,21A0 X Smoking Status
300A,0216 X Source Manufacturer
0038,0050 X Special Needs
0040,050A X Specimen Accession Number
0040,0602 X Specimen Detailed Description
0040,0600 X Specimen Short Description
0008,0055 X Station AE Title
3006,0006 X Structure Set Description
3006,0004 X Structure Set Name
0032,1040 X Study Arrival Date
0032,1041 X Study Arrival Time
0032,4000 X Study Comments
0032,1050 X Study Completion Date
0032,1051 X Study Completion Time
0008,1030 X Study Description
0032,0012 X Study ID Issuer
0032,0034 X Study Read Date
0032,0035 X Study Read Time
0032,0032 X Study Verified Date
0032,0033 X Study Verified Time
0044,0010 X Substance Administration DateTime
0040,A354 X Telephone Number (Trial)
0040,DB07 X Template Local Version
0040,DB06 X Template Version
4000,4000 X Text Comments
2030,0020 X Text String
0040,A112 X Time of Document Creation or Verbal Transaction (Trial)
0018,1201 X Time of Last Calibration
0018,1014 X Time of Secondary Capture
0008,0201 X Timezone Offset From UTC
0088,0910 X Topic Author
0088,0912 X Topic Keywords
0088,0906 X Topic Subject
0088,0904 X Topic Title
0018,5011 X Transducer Identification Sequence
300A,000B X Treatment Sites
0018,100A X UDI Sequence
0018,1009 X Unique Device Identifier
0040,A352 X Verbal Source (Trial)
0040,A358 X Verbal Source Identifier Code Sequence (Trial)
0038,4000 X Visit Comments
0018,9373 X X-Ray Detector Label
003A,0329 X Waveform Filter Description
0008,0017 U Acquisition UID
0020,9161 U Concatenation UID
3010,0006 U Conceptual Volume UID
3010,0013 U Constituent Conceptual Volume UID
0018,1002 U Device UID
0400,0100 U Digital Signature UID
0020,9164 U Dimension Organization UID
300A,0013 U Dose Reference UID
3010,006E U Dosimetric Objective UID
0008,0058 U Failed SOP Instance UID List
0070,031A U Fiducial UID
0020,0052 U Frame of Reference UID
0008,0014 U Instance Creator UID
0008,3010 U Irradiation Event UID
0028,1214 U Large Palette Color Lookup Table UID
0018,100B U Manufacturer's Device Class UID
0002,0003 U Media Storage SOP Instance UID
003A,0310 U Multiplex Group UID
0040,A402 U Observation Subject UID (Trial)
0040,A171 U Observation UID
0028,1199 U Palette Color Lookup Table UID
300A,0650 U Patient Setup UID
0070,1101 U Presentation Display Collection UID
0070,1102 U Presentation Sequence Collection UID
0008,0019 U Pyramid UID
3010,003B U RT Treatment Phase UID
3010,000B U Referenced Conceptual Volume UID
300A,0083 U Referenced Dose Reference UID
3010,006F U Referenced Dosimetric Objective UID
3010,0031 U Referenced Fiducials UID
3006,0024 U Referenced Frame of Reference UID
0040,4023 U Referenced General Purpose Scheduled Procedure Step Transaction UID
0040,A172 U Referenced Observation UID (Trial)
0008,1155 U Referenced SOP Instance UID
0004,1511 U Referenced SOP Instance UID in File
300A,0785 U Referenced Treatment Position Group UID
3006,00C2 U Related Frame of Reference UID
0000,1001 U Requested SOP Instance UID
0008,0018 U SOP Instance UID
0020,000E U Series Instance UID
3010,0015 U Source Conceptual Volume UID
0064,0003 U Source Frame of Reference UID
0040,0554 U Specimen UID
0088,0140 U Storage Media File-set UID
0020,000D U Study Instance UID
0020,0200 U Synchronization Frame of Reference UID
0018,2042 U Target UID
0040,DB0D U Template Extension Creator UID
0040,DB0C U Template Extension Organization UID
0062,0021 U Tracking UID
0008,1195 U Transaction UID
300A,0609 U Treatment Position Group UID
300A,0700 U Treatment Session UID
0040,A124 U UID
0070,0084 Z/D Content Creator's Name
0008,0023 Z/D Content Date
0008,0033 Z/D Content Time
0018,0010 Z/D Contrast/Bolus Agent
0018,9919 Z/D Instruction Performed DateTime
0010,0020 Z/D Patient ID
0040,0555 X/Z Acquisition Context Sequence
0008,0022 X/Z Acquisition Date
0008,0032 X/Z Acquisition Time
2200,0005 X/Z Barcode Value
2200,0002 X/Z Label Text
0010,2203 X/Z Patient's Sex Neutered
0008,1110 X/Z Referenced Study Sequence
0032,1060 X/Z Requested Procedure Description
300E,0008 X/Z Reviewer Name
3008,0105 X/Z Source Serial Number
300A,00B2 X/Z Treatment Machine Name
0018,1400 X/D Acquisition Device Processing Description
0018,700C X/D Date of Last Detector Calibration
0018,700A X/D Detector ID
0018,9517 X/D End Acquisition DateTime
3008,0054 X/D First Treatment Date
0008,0012 X/D Instance Creation Date
3010,004D X/D Intended Phase End Date
3010,004C X/D Intended Phase Start Date
3008,0056 X/D Most Recent Treatment Date
0040,A032 X/D Observation DateTime
0008,1072 X/D Operator Identification Sequence
0018,1030 X/D Protocol Name
300A,0006 X/D RT Plan Date
300A,0007 X/D RT Plan Time
3010,0056 X/D RT Treatment Approach Label
0008,0021 X/D Series Date
0008,0031 X/D Series Time
0018,9516 X/D Start Acquisition DateTime
0018,700E X/D Time of Last Detector Calibration
3008,0250 X/D Treatment Date
3010,0077 X/D Treatment Site
3008,0251 X/D Treatment Time
0008,002A X/Z/D Acquisition DateTime
0018,1000 X/Z/D Device Serial Number
0008,0013 X/Z/D Instance Creation Time
0008,0082 X/Z/D Institution Code Sequence
0008,0080 X/Z/D Institution Name
0008,1070 X/Z/D Operators' Name
0008,1111 X/Z/D Referenced Performed Procedure Step Sequence
0008,1010 X/Z/D Station Name
0008,1140 X/Z/U* Referenced Image Sequence
0008,2112 X/Z/U* Source Image Sequence
"""


def _parse_table(text: str) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for line in text.strip().splitlines():
        tag_s, action, name = line.split(" ", 2)
        g, e = tag_s.split(",")
        out[int(Tag(int(g, 16), int(e, 16)))] = (action, name)
    return out


#: tag (int) → (action code as in the standard, attribute name)
BASIC_PROFILE: dict[int, tuple[str, str]] = _parse_table(BASIC_PROFILE_TABLE)

# Resolution of the compound codes for the MR Image IOD (see module docstring).
_RESOLVE = {"D": "D", "Z": "Z", "X": "X", "U": "U", "Z/D": "Z", "X/Z": "X", "X/D": "X", "X/Z/D": "X",
            "X/Z/U*": "U*"}

# Attributes whose value the de-identifier sets itself (not by the table)
_PATIENT_NAME = 0x00100010
_PATIENT_ID = 0x00100020
_SERIES_DESCRIPTION = 0x0008103E
_BURNED_IN = 0x00280301

DUMMY_TEXT = "DEIDENTIFIED"
_DUMMY_BY_VR = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y",
                "PN": DUMMY_TEXT, "UI": None}
_NUMERIC_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "UV", "SV"}
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_DATE_VRS = {"DA", "DT", "TM"}
# UIDs that name a class or a definition, never an instance: kept when seen by the catch-all rule
_CLASS_UID_KEYWORD_SUFFIXES = ("ClassUID", "TransferSyntaxUID", "CodingSchemeUID", "MappingResourceUID",
                               "ContextUID", "ApplicationContextName")

CODE_BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")
CODE_RETAIN_SAFE_PRIVATE = ("113111", "DCM", "Retain Safe Private Option")
IMPLEMENTATION_CLASS_UID = "2.25.302212373215906433437227094069914410542"  # discviewer's, fixed
IMPLEMENTATION_VERSION_NAME = ("DISCVIEWER_" + discviewer.__version__.replace(".", ""))[:16]


class DeidentificationError(Exception):
    """A file that cannot be de-identified safely (the message names the file and the reason)."""


class BurnedInAnnotationError(DeidentificationError):
    """The image says identifying text is burned into its pixels (Burned In Annotation = YES)."""


def hashed_uid(uid: str, salt: str) -> str:
    """``2.25.<integer>``: the first 128 bits of SHA-256(salt, uid) as a version-8 (RFC 9562) UUID.

    Deterministic: same uid + same salt → same result; at most 44 characters (DICOM's limit is 64)."""
    digest = hashlib.sha256(f"{salt}\x00{uid.strip()}".encode("utf-8")).digest()
    n = int.from_bytes(digest[:16], "big")
    n &= ~(0xF000 << 64)
    n |= 0x8 << 76  # version 8
    n &= ~(0xC000 << 48)
    n |= 0x8000 << 48  # RFC variant
    return f"2.25.{n}"


@dataclass
class DeidentifiedFile:
    """What `deidentify_file` wrote."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    burned_in_annotation: bool = False


class Deidentifier:
    """The Basic Profile applied with one salt: UIDs map consistently for every file it touches.

    `uid_map` (original → new) is kept in memory for the caller (e.g. to map references); it is
    identifying and must never be written into a de-identified package."""

    def __init__(self, salt: str, *, keep_private: bool = False, allow_burned_in: bool = False,
                 remove: Iterable[str] = ()):
        """`remove`: further attribute keywords to remove wherever they occur (e.g. Manufacturer for
        blinded readers, who should not learn the site from the scanner)."""
        if not salt:
            raise ValueError("a non-empty salt is required (it makes remapped UIDs unlinkable)")
        self.salt = salt
        self.keep_private = keep_private
        self.allow_burned_in = allow_burned_in
        self.remove: set[int] = set()
        for kw in remove:
            tag = tag_for_keyword(kw)
            if tag is None:
                raise ValueError(f"unknown DICOM keyword {kw!r}")
            self.remove.add(int(tag))
        self.uid_map: dict[str, str] = {}

    # -- UIDs -------------------------------------------------------------------------------
    def map_uid(self, uid: str) -> str:
        uid = str(uid).strip().rstrip("\x00")
        if not uid:
            return uid
        new = self.uid_map.get(uid)
        if new is None:
            new = self.uid_map[uid] = hashed_uid(uid, self.salt)
        return new

    def _map_uid_value(self, elem: DataElement) -> None:
        if elem.VM == 0 or elem.value in (None, ""):
            return
        if elem.VM > 1:
            elem.value = [self.map_uid(v) for v in elem.value]
        else:
            elem.value = self.map_uid(elem.value)

    # -- datasets ---------------------------------------------------------------------------
    def deidentify(self, ds: Dataset, *, patient_code: str, series_description: str | None = None,
                   source: str = "dataset") -> Dataset:
        """De-identify `ds` in place and return it (pass a copy to keep the original).

        `patient_code` replaces Patient's Name and Patient ID; `series_description` (neutral text,
        e.g. "T2 sagittal") is written as Series Description, or it is removed when None."""
        if not patient_code or not str(patient_code).strip():
            raise ValueError("patient_code is required (the case code that replaces name and ID)")
        burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
        if burned and not self.allow_burned_in:
            raise BurnedInAnnotationError(
                f"{source}: Burned In Annotation is YES — identifying text may be in the pixels; "
                "refused (clean the pixels first, or pass allow_burned_in=True after checking them)")
        self._clean(ds)
        ds.PatientName = str(patient_code)
        ds.PatientID = str(patient_code)
        if series_description is not None:
            ds.SeriesDescription = str(series_description)
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "REMOVED"
        ds.DeidentificationMethod = [  # LO, VM 1-n: one short statement per value
            f"discviewer {discviewer.__version__}",
            "DICOM PS3.15 Annex E Basic Profile",
            "dates removed",
            "UIDs remapped (2.25 SHA-256)",
            "private tags kept (declared safe)" if self.keep_private else "private tags removed",
        ]
        codes = [CODE_BASIC_PROFILE] + ([CODE_RETAIN_SAFE_PRIVATE] if self.keep_private else [])
        items = []
        for value, scheme, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = scheme
            item.CodeMeaning = meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        self._replace_file_meta(ds)
        ds.preamble = b"\x00" * 128
        return ds

    def _replace_file_meta(self, ds: Dataset) -> None:
        old = getattr(ds, "file_meta", None)
        fm = FileMetaDataset()
        sop_class = ds.get("SOPClassUID") or (old.get("MediaStorageSOPClassUID") if old is not None else None)
        if sop_class:
            fm.MediaStorageSOPClassUID = sop_class
        if "SOPInstanceUID" in ds:
            fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID  # already remapped
        elif old is not None and "MediaStorageSOPInstanceUID" in old:
            fm.MediaStorageSOPInstanceUID = self.map_uid(old.MediaStorageSOPInstanceUID)
        ts = old.get("TransferSyntaxUID") if old is not None else None
        if ts:
            fm.TransferSyntaxUID = ts
        fm.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        fm.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        ds.file_meta = fm

    def _clean(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            tag = Tag(tag)
            elem = ds[tag]  # converts raw elements
            if self._remove_by_rule(tag, elem):
                del ds[tag]
                continue
            entry = BASIC_PROFILE.get(int(tag))
            if entry is not None:
                self._apply(ds, tag, elem, _RESOLVE[entry[0]])
            else:
                self._catch_all(ds, tag, elem)

    def _remove_by_rule(self, tag, elem) -> bool:
        group = tag.group
        if int(tag) in self.remove:
            return True
        if tag.is_private:
            return not self.keep_private
        if tag.element == 0x0000:
            return True  # group lengths (retired; pydicom writes the meta one itself)
        if 0x5000 <= group <= 0x50FF and group % 2 == 0:
            return True  # curves (Curve Data X)
        if 0x6000 <= group <= 0x60FF and group % 2 == 0:
            return True  # overlays (Overlay Data / Comments X): the whole overlay goes
        if not dictionary_has_tag(tag):
            return True  # a public attribute unknown to us: not known to be safe
        return False

    def _apply(self, ds: Dataset, tag, elem: DataElement, action: str) -> None:
        vr = elem.VR
        if action == "X":
            del ds[tag]
        elif action == "Z":
            elem.value = Sequence([]) if vr == "SQ" else None
        elif action == "D":
            if vr == "SQ" or vr in _BINARY_VRS:
                del ds[tag]
            elif vr == "UI":
                self._map_uid_value(elem)
            elif vr in _NUMERIC_VRS:
                elem.value = 0
            else:
                elem.value = _DUMMY_BY_VR.get(vr) or DUMMY_TEXT
        elif action == "U":
            if vr == "SQ":
                self._recurse(elem)
            else:
                self._map_uid_value(elem)
        elif action == "U*":
            if vr == "SQ":
                self._recurse(elem)
            elif vr == "UI":
                self._map_uid_value(elem)
            else:
                del ds[tag]
        else:  # pragma: no cover - table is checked by tests
            raise ValueError(f"unknown action {action!r}")

    def _recurse(self, elem: DataElement) -> None:
        for item in elem.value or []:
            self._clean(item)

    def _catch_all(self, ds: Dataset, tag, elem: DataElement) -> None:
        """Attributes not in Table E.1-1: kept, except dates, person names and instance UIDs."""
        vr = elem.VR
        if vr == "SQ":
            self._recurse(elem)  # K on a sequence: clean its items
        elif vr in _DATE_VRS:
            del ds[tag]
        elif vr == "PN":
            elem.value = None
        elif vr == "UI":
            if not _is_definition_uid(elem):
                self._map_uid_value(elem)
        elif vr == "UN":
            del ds[tag]


def _is_definition_uid(elem: DataElement) -> bool:
    kw = elem.keyword or ""
    if kw.endswith(_CLASS_UID_KEYWORD_SUFFIXES):
        return True
    values = elem.value if elem.VM > 1 else [elem.value]
    return all(str(v) in UID_dictionary for v in values if v)


def deidentify_file(src, dst, deid: Deidentifier, *, patient_code: str,
                    series_description: str | None = None) -> DeidentifiedFile:
    """Read `src` (opened read-only; never modified), de-identify, write a new file at `dst`.

    The destination name is the caller's (never derived from the source's). Written to a temp file
    beside `dst`, then moved into place."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise DeidentificationError(f"{src}: refusing to overwrite the source file")
    try:
        ds = pydicom.dcmread(str(src))
    except Exception as exc:
        raise DeidentificationError(f"{src}: not a readable DICOM file ({str(exc).splitlines()[0][:120]})") from exc
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
    deid.deidentify(ds, patient_code=patient_code, series_description=series_description, source=str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        ds.save_as(str(tmp), enforce_file_format=True)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return DeidentifiedFile(dst, str(ds.get("SOPInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")),
                            str(ds.get("StudyInstanceUID", "")), burned)


# ---------------------------------------------------------------------------------------------
# leak check

class Finding(NamedTuple):
    """One identifying string found: the file, where in it, and the forbidden string."""

    file: str
    where: str
    string: str


_TEXT_SUFFIXES = {".json", ".csv", ".tsv", ".txt", ".md", ".log", ".xml", ".html", ".ini", ".cfg", ".yaml",
                  ".yml", ".toml"}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def date_variants(date) -> list[str]:
    """Common spellings of one date, to pass as forbidden strings: YYYYMMDD, YYYY-MM-DD, YYYY/MM/DD,
    YYYY.MM.DD, DD.MM.YYYY, DD/MM/YYYY, MM/DD/YYYY, DD-MM-YYYY. Accepts a `date`/`datetime` or text
    "YYYYMMDD" / "YYYY-MM-DD" (other separators too). Empty input → []."""
    if date is None or date == "":
        return []
    if isinstance(date, _dt.datetime):
        d = date.date()
    elif isinstance(date, _dt.date):
        d = date
    else:
        digits = "".join(ch for ch in str(date).strip()[:10] if ch.isdigit())
        if len(digits) < 8:
            raise ValueError(f"not a date: {date!r}")
        d = _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    y, m, dd = f"{d.year:04d}", f"{d.month:02d}", f"{d.day:02d}"
    out = [y + m + dd, f"{y}-{m}-{dd}", f"{y}/{m}/{dd}", f"{y}.{m}.{dd}", f"{dd}.{m}.{y}", f"{dd}/{m}/{y}",
           f"{m}/{dd}/{y}", f"{dd}-{m}-{y}"]
    return list(dict.fromkeys(out))


def _name_variants(text: str) -> list[str]:
    """A DICOM person name in the orders people write it ("Doe^John" → "John Doe", "Doe, John" …)."""
    out = [text]
    for group in text.split("="):
        parts = [p.strip() for p in group.split("^")]
        if len(parts) < 2:
            continue
        family, given = parts[0], parts[1]
        middle = parts[2] if len(parts) > 2 else ""
        out += [" ".join(p for p in (given, middle, family) if p), " ".join(p for p in (family, given, middle) if p),
                f"{family}, {given}".strip(", "), " ".join(p for p in (given, family) if p)]
    return [o for o in dict.fromkeys(out) if o]


def _forbidden_norm(forbidden, whole_words: bool = False) -> list[tuple]:
    """(original, lower-case needle, regex or None) triples; person-name spellings with ^ also in
    spoken order. With `whole_words`, a needle that starts / ends with a letter or digit must not
    continue a longer word or number there (the rule of `reading.blinding.find_leaks`)."""
    out = []
    for f in forbidden:
        if f is None:
            continue
        f = str(f).strip()
        if not f:
            continue
        for v in _name_variants(f) if "^" in f else [f]:
            t = v.lower()
            rx = None
            if whole_words:
                pattern = re.escape(t)
                if t[0].isalnum():
                    pattern = r"(?<![0-9a-z])" + pattern
                if t[-1].isalnum():
                    pattern += r"(?![0-9a-z])"
                rx = re.compile(pattern)
            out.append((f, t, rx))
    return out


def _hits(text: str, needles, file: str, where: str, found: list[Finding]) -> None:
    _hits_pairs([(where, text)], needles, file, found)


def _hits_pairs(pairs: list[tuple[str, str]], needles, file: str, found: list[Finding]) -> None:
    """Findings for (where, text) pairs of one file: one pass over all texts joined (a needle never
    spans the NUL separator), then the pieces of the needles that occur at all. One finding per
    (where, string)."""
    if not pairs:
        return
    joined = "\x00".join(t for _, t in pairs).lower()
    present = [n for n in needles if n[1] in joined and (n[2] is None or n[2].search(joined))]
    if not present:
        return
    seen: set[tuple[str, str]] = set()
    for where, text in pairs:
        low = text.lower()
        for orig, needle, rx in present:
            if needle in low and (rx is None or rx.search(low)) and (where, orig) not in seen:
                seen.add((where, orig))
                found.append(Finding(file, where, orig))


def _dataset_texts(ds: Dataset, pairs: list[tuple[str, str]], prefix: str = "") -> None:
    """(where, text) of every element value (sequences recursed, pixel data skipped; person names
    also in spoken order)."""
    for elem in ds:
        where = f"{prefix}{elem.tag} {elem.keyword or 'private'}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                _dataset_texts(item, pairs, prefix=f"{where}[{i}] > ")
            continue
        if int(elem.tag) in _PIXEL_TAGS:
            continue
        value = elem.value
        if value is None:
            continue
        if isinstance(value, (bytes, bytearray)):
            texts = [bytes(value).decode("latin-1")]
        elif elem.VR == "PN":
            vals = value if elem.VM > 1 else [value]
            texts = [t for v in vals for t in _name_variants(str(v))]
        elif isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            texts = ["\\".join(str(v) for v in value)]
        else:
            texts = [str(value)]
        pairs.extend((where, t) for t in texts)


def _pixel_start(raw: bytes) -> int:
    """Offset of the (7FE0,0010) tag (either byte order), or len(raw)."""
    pos = [raw.rfind(b"\xe0\x7f\x10\x00"), raw.rfind(b"\x7f\xe0\x00\x10")]
    pos = [p for p in pos if p >= 0]
    return min(pos) if pos else len(raw)


def _check_bytes(name: str, raw: bytes, needles, found: list[Finding]) -> None:
    suffix = Path(name).suffix.lower()
    if suffix == ".zip" or raw[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                for info in zf.infolist():
                    inner = f"{name}!{info.filename}"
                    _hits(info.filename, needles, inner, "member name", found)
                    if not info.is_dir():
                        _check_bytes(inner, zf.read(info), needles, found)
            return
        except zipfile.BadZipFile:
            pass
    is_dicom = len(raw) >= 132 and raw[128:132] == b"DICM"
    ds = None
    if is_dicom or suffix in (".dcm", ".ima", ".img", ""):
        try:
            ds = pydicom.dcmread(io.BytesIO(raw), force=not is_dicom)
            if not is_dicom and len(ds) == 0:
                ds = None
        except Exception:
            ds = None
    if ds is not None:
        pairs: list[tuple[str, str]] = []
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            _dataset_texts(meta, pairs, prefix="file meta ")
        _dataset_texts(ds, pairs)
        pre = getattr(ds, "preamble", None)
        if pre:
            pairs.append(("preamble", bytes(pre).decode("latin-1")))
        _hits_pairs(pairs, needles, name, found)
        # belt and braces: the raw bytes before the pixel data (whatever the parser did not show)
        head = raw[:_pixel_start(raw)].decode("latin-1")
        before = {(f.file, f.string) for f in found}
        tmp: list[Finding] = []
        _hits(head, needles, name, "raw header bytes", tmp)
        found.extend(f for f in tmp if (f.file, f.string) not in before)
        return
    if suffix in _TEXT_SUFFIXES or _looks_text(raw):
        text = raw.decode("utf-8", errors="replace")
        _hits_pairs([(f"line {i}", line) for i, line in enumerate(text.splitlines(), 1)], needles, name, found)
        # strings written with JSON escapes (e.g. \u00e9) also count
        if suffix == ".json":
            try:
                decoded = json.dumps(json.loads(text), ensure_ascii=False)
                tmp = []
                _hits(decoded, needles, name, "decoded JSON", tmp)
                have = {(f.file, f.string) for f in found}
                found.extend(f for f in tmp if (f.file, f.string) not in have)
            except ValueError:
                pass
        return
    _hits(raw.decode("latin-1"), needles, name, "raw bytes", found)


def _looks_text(raw: bytes) -> bool:
    sample = raw[:4096]
    return b"\x00" not in sample


def find_identifying_strings(path_or_dir, forbidden, *, whole_words: bool = False) -> list[Finding]:
    """Every place an identifying string occurs under `path_or_dir` (a file or a folder), case-insensitively.

    Checks file and folder names (relative paths), every DICOM element value (file meta, sequences,
    person names in any component order, preamble, raw header bytes; pixel data skipped), JSON / CSV /
    text files line by line, zip members (names and contents) and other files as raw bytes.
    `forbidden` are the strings to look for; pass dates through `date_variants`. Matching is by
    substring unless `whole_words` (then "d91" inside "ad91f" is no hit; use it for short generic
    strings such as visit labels and day counts). Returns `Finding(file, where, string)` tuples
    (empty list = clean)."""
    root = Path(path_or_dir)
    needles = _forbidden_norm(forbidden, whole_words)
    found: list[Finding] = []
    if not needles:
        return found
    if root.is_file():
        files = [root]
        base = root.parent
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        base = root
        for d in sorted(p for p in root.rglob("*") if p.is_dir()):
            rel = d.relative_to(base).as_posix()
            _hits(rel, needles, str(d), "folder name", found)
    for f in files:
        rel = f.relative_to(base).as_posix()
        _hits(rel, needles, str(f), "file name", found)
        try:
            raw = f.read_bytes()
        except OSError as exc:
            found.append(Finding(str(f), f"unreadable ({exc})", ""))
            continue
        _check_bytes(str(f), raw, needles, found)
    return found
