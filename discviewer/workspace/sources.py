"""The index of a project's source files: build it, verify it, relink it after a move.

Owns `index_sources` (one `SourceFile` per unique file of the candidates: absolute path, size,
mtime, SHA-256 of the content, first SOP instance UID, series UID), `verify_sources` (missing /
changed / only touched, with a message the user can act on), `common_root` and `relink` (find moved
files under a new folder, accepted only when their SHA-256 matches).

Rules
- Source files are only ever opened read-only (`open(path, "rb")`); nothing here writes, renames
  or touches a source file. Only content hashes decide identity: a file of the same name and size
  but other content is never relinked.
- Hashes are streamed in 1 MiB blocks (memory stays flat for multi-GB enhanced files).
- Quick verification trusts an unchanged (size, mtime_ns); anything else is hashed. A record without
  a hash (`sha256 == ""`) is ok only when size and mtime are unchanged.

Core module: stdlib only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from discviewer.workspace.data import SourceFile

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]

BLOCK = 1 << 20  # 1 MiB


class IndexCancelled(Exception):
    """`index_sources` was cancelled; no partial index is returned."""


# ---------------------------------------------------------------------------------------------
# hashing and indexing

def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file's content, read-only, streamed in 1 MiB blocks."""
    h = hashlib.sha256()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def _hash_with_stat(path: str) -> tuple[os.stat_result, str]:
    """(stat, sha256) from one read-only open: the stat is of the file that was hashed."""
    h = hashlib.sha256()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return st, h.hexdigest()


def index_sources(candidates: Iterable, *, progress: Progress | None = None,
                  cancel: Cancel | None = None) -> list[SourceFile]:
    """One `SourceFile` per unique file of all candidates' frames (DICOM and NIfTI), in first-seen order.

    Paths are made absolute; `sop_uid` is the first frame's SOP instance UID in the file ("" for
    NIfTI), `series_uid` the candidate's. `progress(done, total)` after each file; `cancel()` is polled
    before each file and raises `IndexCancelled`. A file that cannot be read raises `OSError` naming
    it — an index must never hold a hash of something it did not read.
    """
    todo: dict[str, tuple[str, str]] = {}  # abs path → (sop uid, series uid)
    for c in candidates:
        series_uid = c.info.series_uid
        for fr in c.frames:
            p = os.path.abspath(fr.path)
            if p not in todo:
                todo[p] = (getattr(fr, "sop_uid", "") or "", series_uid)
    out: list[SourceFile] = []
    total = len(todo)
    for i, (p, (sop, series)) in enumerate(todo.items()):
        if cancel is not None and cancel():
            raise IndexCancelled(f"indexing cancelled after {i} of {total} files")
        st, digest = _hash_with_stat(p)
        out.append(SourceFile(path=p, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=digest,
                              sop_uid=sop, series_uid=series))
        if progress is not None:
            progress(i + 1, total)
    return out


# ---------------------------------------------------------------------------------------------
# verification

def common_root(files: Iterable) -> str:
    """The deepest folder holding all files (`SourceFile`s or paths); "" for none or different drives."""
    dirs = {os.path.dirname(os.path.abspath(getattr(f, "path", f))) for f in files}
    if not dirs:
        return ""
    try:
        return os.path.commonpath(sorted(dirs))
    except ValueError:  # different drives (Windows) or mixed absolute/relative
        return ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class SourceReport:
    """What `verify_sources` found. `ok` includes the `touched` files (content unchanged, only the
    modification time differs); `refresh_index` returns the index with their new mtimes."""

    total: int = 0
    ok: list[SourceFile] = field(default_factory=list)
    missing: list[SourceFile] = field(default_factory=list)
    changed: list[SourceFile] = field(default_factory=list)  # content differs from the indexed hash
    touched: list[SourceFile] = field(default_factory=list)  # size/mtime differed, hash equal (also in ok)
    unreadable: list[tuple[SourceFile, str]] = field(default_factory=list)  # (record, reason)
    hashed: int = 0  # how many files were read in full
    _current: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # path → (size, mtime_ns)

    @property
    def all_ok(self) -> bool:
        return not (self.missing or self.changed or self.unreadable)

    def refresh_index(self, files: Sequence[SourceFile]) -> list[SourceFile]:
        """`files` with the touched records' size/mtime updated (so the next quick check needs no hash)."""
        out = []
        for f in files:
            cur = self._current.get(f.path)
            if cur is not None and (f.size, f.mtime_ns) != cur:
                f = dataclasses.replace(f, size=cur[0], mtime_ns=cur[1])
            out.append(f)
        return out

    def summary(self) -> str:
        """One line, e.g. "240 source files: 228 ok (3 touched), 12 missing, 0 changed"."""
        parts = [f"{len(self.ok)} ok" + (f" ({len(self.touched)} touched, content unchanged)" if self.touched else ""),
                 f"{len(self.missing)} missing", f"{len(self.changed)} changed"]
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable")
        return f"{_plural(self.total, 'source file')}: " + ", ".join(parts)

    def message(self) -> str:
        """What the user should know and do, one sentence per kind of problem."""
        if self.all_ok:
            return (f"All {_plural(self.total, 'source file')} are present and unchanged."
                    if self.total else "The project has no indexed source files.")
        out = []
        if self.missing:
            root = common_root(self.missing)
            where = f" under {root}" if root else ""
            were = "is" if len(self.missing) == 1 else "are"
            out.append(f"{len(self.missing)} of {_plural(self.total, 'source file')} {were} missing{where} — "
                       "use Relink… to point to their new folder.")
        if self.changed:
            n = len(self.changed)
            out.append(f"{n} of {_plural(self.total, 'source file')} {'has' if n == 1 else 'have'} changed since "
                       f"{'it was' if n == 1 else 'they were'} indexed (e.g. {self.changed[0].path}) — the images "
                       "may no longer match the project's measurements; re-index only if the change was intended.")
        if self.unreadable:
            f, why = self.unreadable[0]
            n = len(self.unreadable)
            out.append(f"{n} source file{' is' if n == 1 else 's are'} present but cannot be read "
                       f"(e.g. {f.path}: {why}) — check the permissions.")
        return " ".join(out)


def verify_sources(files: Sequence[SourceFile], *, full: bool = False,
                   progress: Progress | None = None) -> SourceReport:
    """Check every indexed file: present, and content equal to its indexed SHA-256.

    Quick mode (default): an unchanged (size, mtime_ns) is ok without reading the file; a changed
    size is `changed` without reading; a changed mtime is hashed (equal → `touched`, listed in `ok`
    too). `full=True` hashes every file. `progress(done, total)` after each file.
    """
    rep = SourceReport(total=len(files))
    total = len(files)
    for i, f in enumerate(files):
        _verify_one(f, full, rep)
        if progress is not None:
            progress(i + 1, total)
    return rep


def _verify_one(f: SourceFile, full: bool, rep: SourceReport) -> None:
    try:
        st = os.stat(f.path)
    except FileNotFoundError:
        rep.missing.append(f)
        return
    except OSError as exc:
        rep.unreadable.append((f, exc.strerror or str(exc)))
        return
    if not stat.S_ISREG(st.st_mode):  # a folder now stands where the file was
        rep.missing.append(f)
        return
    same_stat = st.st_size == f.size and st.st_mtime_ns == f.mtime_ns
    if not f.sha256:  # never hashed: the quick check is all we have
        (rep.ok if same_stat else rep.changed).append(f)
        return
    if st.st_size != f.size:  # a different length is different content
        rep.changed.append(f)
        return
    if same_stat and not full:
        rep.ok.append(f)
        return
    try:
        st, digest = _hash_with_stat(f.path)
    except OSError as exc:
        rep.unreadable.append((f, exc.strerror or str(exc)))
        return
    rep.hashed += 1
    if digest != f.sha256:
        rep.changed.append(f)
        return
    rep.ok.append(f)
    if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
        rep.touched.append(f)
        rep._current[f.path] = (st.st_size, st.st_mtime_ns)


# ---------------------------------------------------------------------------------------------
# relinking

@dataclass
class RelinkResult:
    """`files`: the whole index, relinked records with their new path (and mtime); `relinked`: how
    many moved; `unresolved`: records still not found (including the `mismatched` ones);
    `mismatched`: (record, path) where a file of the same name and size exists but its content
    differs — those are never relinked."""

    files: list[SourceFile]
    relinked: int
    unresolved: list[SourceFile] = field(default_factory=list)
    mismatched: list[tuple[SourceFile, str]] = field(default_factory=list)

    def message(self) -> str:
        out = [f"{_plural(self.relinked, 'source file')} relinked."]
        if self.unresolved:
            out.append(f"{len(self.unresolved)} still missing (e.g. {self.unresolved[0].path}).")
        if self.mismatched:
            rec, p = self.mismatched[0]
            out.append(f"{_plural(len(self.mismatched), 'file')} with the right name but different content "
                       f"{'was' if len(self.mismatched) == 1 else 'were'} not used (e.g. {p}).")
        return " ".join(out)


class _NameIndex:
    """All files under a folder by base name, built by one walk on first use; sizes read lazily
    (only for names that are asked for — cheaper than stat-ing a whole tree up front)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._by_name: dict[str, list[str]] | None = None
        self._size: dict[str, int] = {}

    def _build(self) -> dict[str, list[str]]:
        by_name: dict[str, list[str]] = {}
        for d, dirs, names in os.walk(self.root):
            dirs.sort()
            for n in sorted(names):
                by_name.setdefault(n, []).append(os.path.join(d, n))
        return by_name

    def all_named(self, name: str) -> list[str]:
        if self._by_name is None:
            self._by_name = self._build()
        return self._by_name.get(name, [])

    def candidates(self, name: str, size: int) -> list[str]:
        """The files called `name` whose size is `size`."""
        out = []
        for p in self.all_named(name):
            s = self._size.get(p)
            if s is None:
                try:
                    s = os.stat(p).st_size
                except OSError:
                    s = -1
                self._size[p] = s
            if s == size:
                out.append(p)
        return out


def _suffix_match(a: str, b: str) -> int:
    """How many trailing path components `a` and `b` share."""
    pa, pb = os.path.normpath(a).split(os.sep), os.path.normpath(b).split(os.sep)
    n = 0
    while n < min(len(pa), len(pb)) and pa[-1 - n] == pb[-1 - n]:
        n += 1
    return n


def relink(files: Sequence[SourceFile], new_root, *, progress: Progress | None = None) -> RelinkResult:
    """Find the files that are not at their indexed path under `new_root`.

    For each missing file: first `new_root / <its path relative to the old common root>` (or to an
    ancestor of it — once one file is found that way, the same folder is used for the others), then
    any file of the same name and size under `new_root` (one walk, on first need; the candidates
    sharing the longest path tail with the old path are tried first). A candidate is accepted only if its SHA-256
    equals the indexed one; each new file is used once. Files present at their path are kept as
    they are. `progress(done, total)` after each missing file.
    """
    new_root = os.path.abspath(os.fspath(new_root))
    if not os.path.isdir(new_root):
        raise NotADirectoryError(f"{new_root}: not a folder")
    old_root = common_root(files)
    todo = [i for i, f in enumerate(files) if not os.path.isfile(f.path)]
    out = list(files)
    used = {f.path for f in files if os.path.isfile(f.path)}
    names = _NameIndex(new_root)
    state: dict = {}  # the old folder new_root stands for, once one file was found through it
    relinked = 0
    unresolved: list[SourceFile] = []
    mismatched: list[tuple[SourceFile, str]] = []
    for k, i in enumerate(todo):
        f = files[i]
        found, wrong = _find(f, old_root, new_root, names, used, state)
        if found is not None:
            p, st = found
            out[i] = dataclasses.replace(f, path=p, size=st.st_size, mtime_ns=st.st_mtime_ns)
            used.add(p)
            relinked += 1
        else:
            unresolved.append(f)
            if wrong:
                mismatched.append((f, wrong))
        if progress is not None:
            progress(k + 1, len(todo))
    return RelinkResult(files=out, relinked=relinked, unresolved=unresolved, mismatched=mismatched)


def _anchors(state: dict, old_root: str) -> list[str]:
    """Old folders that `new_root` may stand for: the one that worked before, else the old common
    root and its ancestors (the user may pick the moved study folder, which is often above the
    common root of the files)."""
    if state.get("anchor"):
        return [state["anchor"]]
    out, cur = [], old_root
    while cur:
        out.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    return out


def _find(f: SourceFile, old_root: str, new_root: str, names: _NameIndex, used: set[str], state: dict):
    """((path, stat), "") for the file with f's content, or (None, a same-name path with other content)."""
    if not f.sha256:
        return None, ""
    base = os.path.basename(f.path)
    wrong = ""
    seen: set[str] = set()

    def try_path(p: str):
        nonlocal wrong
        if p in used or p in seen:
            return None
        seen.add(p)
        try:
            st, digest = _hash_with_stat(p)
        except OSError:
            return None
        if digest == f.sha256:
            return p, st
        if not wrong:
            wrong = p
        return None

    for anchor in _anchors(state, old_root):
        rel = os.path.relpath(f.path, anchor)
        direct = os.path.join(new_root, rel)
        if rel.startswith(os.pardir) or not os.path.isfile(direct):
            continue
        try:
            same_size = os.stat(direct).st_size == f.size
        except OSError:
            same_size = False
        if same_size:
            hit = try_path(direct)
            if hit:
                state["anchor"] = anchor
                return hit, ""
        elif not wrong:
            wrong = direct
    cands = names.candidates(base, f.size)
    cands.sort(key=lambda p: -_suffix_match(p, f.path))
    for p in cands:
        hit = try_path(p)
        if hit:
            return hit, ""
    if not wrong:
        wrong = next((p for p in names.all_named(base) if p not in used), "")
    return None, wrong
