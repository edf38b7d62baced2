"""Blinded reading sessions (reader studies): questions, sessions and cases, answers with locking,
resume and the re-read gate, blinding rules, exports and agreement reports.

- `questions` — `Question`, answer validation, templates (Pfirrmann, Modic, iron, disc height, …);
- `session`   — `Case`, `ReadingSession` (per-reader deterministic order; the stored JSON document);
- `answers`   — `ReaderProgress`: submit / lock / change / resume / progress / washout gate, audit;
- `blinding`  — neutral titles and the identifying strings a blinded view must never show;
- `export`    — answers (long CSV), unblinding key, rating tables for agreement;
- `agreement` — agreement report per question (κ, Fleiss κ, ICC, Bland–Altman, SEM, SDC).
(`package` — reader packages — is separate.)

Core package: no Qt, no VTK.
"""
from .answers import (AnswerLockedError, CaseOrderError, EmptyAnswersError, MissingAnswersError, ReaderProgress,
                      ReadGateError)
from .questions import TEMPLATES, AnswerError, Option, Question, template
from .session import (Case, HangingOptions, ReadingError, ReadingSession, SessionOptions, UnknownCaseError,
                      UnknownReaderError, cases_from_study, create_session, load_session, sessions_in,
                      store_session)

__all__ = [
    "Question", "Option", "AnswerError", "TEMPLATES", "template",
    "Case", "HangingOptions", "SessionOptions", "ReadingSession", "ReadingError", "UnknownReaderError",
    "UnknownCaseError", "cases_from_study", "create_session", "store_session", "load_session", "sessions_in",
    "ReaderProgress", "AnswerLockedError", "ReadGateError", "CaseOrderError", "MissingAnswersError",
    "EmptyAnswersError",
]
