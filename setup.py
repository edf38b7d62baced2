"""Packaging hook (metadata and dependencies live in pyproject.toml).

Ships the top-level `resources/` folder (hanging protocols, application icon, desktop entry, MIME type)
inside the package as `discviewer/_resources/`, where `discviewer.resources.resources_dir()` finds it in
an installed wheel. A checkout or an editable install uses `resources/` itself. Declared here because
pyproject.toml cannot add a mapped folder to an automatic package search.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
RESOURCES = HERE / "resources"
# resources/ and each of its sub-folders as a data package (setuptools warns about unlisted data folders)
resource_packages = ["discviewer._resources"] + [
    "discviewer._resources." + ".".join(p.relative_to(RESOURCES).parts)
    for p in sorted(RESOURCES.rglob("*")) if p.is_dir() and p.name != "__pycache__"]

setup(
    packages=find_packages(include=["discviewer", "discviewer.*"]) + resource_packages,
    package_dir={"discviewer._resources": "resources"},
    package_data={"discviewer": ["py.typed"], **{pkg: ["*"] for pkg in resource_packages}},
)
