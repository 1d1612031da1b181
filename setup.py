"""Package discovery for the split source layout.

The import package ``npuc`` is assembled from four folders (see ``package-dir`` in
pyproject.toml). setuptools cannot discover subpackages across such a mapping from
pyproject.toml alone, so they are listed here; everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {"npuc": "npuc", "npuc.ir": "ir", "npuc.compiler": "compiler", "npuc.targets": "targets"}


def _packages():
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder)]
    return sorted(found)


setup(packages=_packages(), package_dir=ROOTS)
