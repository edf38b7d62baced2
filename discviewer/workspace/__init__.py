"""The project workspace: one `.dvw` HDF5 file per project that never loses a reader's work.

- `data`     — the plain records a workspace stores (`WorkspaceData`)
- `store`    — HDF5 read/write, atomic saves with a backup, corrupt/newer-version handling
- `migrate`  — upgrades of older schema versions
- `lock`     — one writer per workspace (lock file with owner/host/pid, stale detection)
- `sources`  — the index of source files (size, mtime, SHA-256), verify and relink
- `voxels`   — the optional voxel cache beside the workspace
- `history`  — undo/redo of every stored edit, recorded from the models' change signals
- `project`  — the live `Workspace`: study, transform sets, annotations, audit log, autosave paths

Core package: no Qt, no VTK. Submodules are imported on use (h5py is not loaded at start-up).
"""
