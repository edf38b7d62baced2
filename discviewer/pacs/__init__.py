"""PACS connectivity: query / retrieve studies into a local cache and send results back.

Transports: DIMSE (pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) and DICOMweb (QIDO-RS,
WADO-RS, STOW-RS). Modules: `nodes` (RemoteNode + JSON), `records` (filters and result rows),
`cache` (complete series only, atomic rename), `dimse`, `dicomweb`, `client` (the operations below),
`errors` (PacsError family). Core package: no Qt, no VTK.
"""
from .cache import CachedSeries, SeriesCache, default_cache_root
from .client import RetrieveResult, echo, find, retrieve, retrieve_patient, send
from .dimse import StoreResult
from .errors import (CancelledError, IncompleteSeriesError, OperationError, PacsError, PacsTimeoutError,
                     RejectedError, UnreachableError)
from .nodes import RemoteNode, load_nodes, nodes_from_json, nodes_to_json, save_nodes
from .records import InstanceRecord, PatientRecord, QueryFilter, SeriesRecord, StudyRecord

__all__ = ["RemoteNode", "load_nodes", "save_nodes", "nodes_to_json", "nodes_from_json", "QueryFilter",
           "PatientRecord", "StudyRecord", "SeriesRecord", "InstanceRecord", "SeriesCache", "CachedSeries",
           "default_cache_root", "RetrieveResult", "StoreResult", "echo", "find", "retrieve", "retrieve_patient",
           "send", "PacsError", "UnreachableError", "RejectedError", "PacsTimeoutError", "IncompleteSeriesError",
           "CancelledError", "OperationError"]
