"""The agent package (issue 21): what ``UpgradeAgent`` installs, built here, checked by the
server at upload and again by the agent before it unpacks.

A package is a zip, laid out like a wheel of the agent's part of ``garrison``:

- ``garrison-agent-package.json``: the manifest (``format``, ``name``, ``version``,
  ``architecture``: ``all`` for this pure-Python code, or one machine);
- ``garrison/__init__.py``, ``garrison/agent/**``, ``garrison/common/**``: the code (the
  server, the admin CLI and the console are not in it);
- ``garrison/_version.py``: written by the builder with the announced version, so that
  ``garrison.__version__`` is the package's once its directory is first on ``sys.path``;
- ``garrison-<version>.dist-info/METADATA``: the same for ``importlib.metadata`` readers.

The third-party libraries (httpx, typer, cryptography…) are not in it: the new code runs on
the installed agent's environment.  The package's authenticity is not in the zip: the
server signs a statement of its hash with the content key (``server.content.packages``).

``python -m garrison.common.agent_package OUT.zip [--version V] [--architecture A]`` builds
one from the installed or source tree.
"""

from __future__ import annotations

import argparse
import io
import json
import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "garrison-agent-package.json"
FORMAT = 1
NAME = "garrison-agent"
ANY_ARCHITECTURE = "all"
MAX_UNPACKED_BYTES = 64 << 20
MAX_MEMBERS = 5000
VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+_-]{0,63}$")
ARCHITECTURE_RE = re.compile(r"^[a-z0-9_]{1,32}$")
# What the agent runs: the package root's __init__ and these subpackages.
INCLUDED = ("garrison/agent/", "garrison/common/")
VERSION_FILE = "garrison/_version.py"
REQUIRED = (
    "garrison/__init__.py",
    VERSION_FILE,
    "garrison/agent/cli.py",
    "garrison/agent/daemon.py",
)


class PackageError(ValueError):
    """A package that is not a well-formed agent package; the message says why."""


@dataclass(frozen=True)
class Manifest:
    version: str
    architecture: str


def check_version(value: object) -> str:
    if not isinstance(value, str) or not VERSION_RE.match(value):
        raise PackageError(f"version {str(value)[:70]!r} is not a version (e.g. 0.2.0)")
    return value


def check_architecture(value: object) -> str:
    if not isinstance(value, str) or not ARCHITECTURE_RE.match(value):
        raise PackageError(
            f"architecture {str(value)[:40]!r} is not 'all' or a machine name (e.g. amd64)"
        )
    return value


def _safe(name: str) -> bool:
    parts = name.split("/")
    return not (
        name.startswith("/")
        or "\\" in name
        or ".." in parts
        or posixpath.normpath(name) != name.rstrip("/")
    )


def read(data: bytes) -> Manifest:
    """The manifest of a package whose every member is readable and sound; PackageError
    otherwise (truncated, not a zip, unsafe names, too large, no agent inside)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise PackageError(f"not a zip archive ({exc}): truncated or not a package") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise PackageError(f"more than {MAX_MEMBERS} members")
        total = 0
        for info in infos:
            if not _safe(info.filename):
                raise PackageError(f"member {info.filename[:100]!r} has an unsafe name")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise PackageError(f"member {info.filename[:100]!r} is a symbolic link")
            total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise PackageError(f"unpacks to {total} bytes, more than {MAX_UNPACKED_BYTES}")
        names = {i.filename for i in infos}
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise PackageError(f"a member cannot be read ({exc})") from None
        if bad is not None:
            raise PackageError(f"member {bad[:100]!r} is damaged (its CRC does not match)")
        if MANIFEST not in names:
            raise PackageError(f"no {MANIFEST}: not an agent package")
        try:
            raw = json.loads(archive.read(MANIFEST))
        except ValueError:
            raise PackageError(f"{MANIFEST} is not JSON") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("name") != NAME:
            raise PackageError(f"{MANIFEST} is not a {NAME} manifest of format {FORMAT}")
        manifest = Manifest(
            check_version(raw.get("version")), check_architecture(raw.get("architecture"))
        )
        missing = [name for name in REQUIRED if name not in names]
        if missing:
            raise PackageError(f"the package lacks {', '.join(missing)}")
        metadata = f"garrison-{manifest.version}.dist-info/METADATA"
        if metadata not in names:
            raise PackageError(f"the package lacks {metadata}")
        if f"Version: {manifest.version}\n" not in archive.read(metadata).decode(
            "utf-8", "replace"
        ):
            raise PackageError(f"{metadata} does not say version {manifest.version}")
        if archive.read(VERSION_FILE).decode("utf-8", "replace") != version_source(
            manifest.version
        ):
            raise PackageError(f"{VERSION_FILE} does not say version {manifest.version}")
    return manifest


def version_source(version: str) -> str:
    """The package's ``garrison/_version.py`` (the one version source, for this build)."""
    doc = '"""The version of this agent package (written by its builder)."""'
    return f'{doc}\n\n__version__ = "{version}"\n'


def _members(root: Path) -> list[tuple[str, Path]]:
    found = [("garrison/__init__.py", root / "garrison" / "__init__.py")]
    for prefix in INCLUDED:
        base = root / prefix
        for path in sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.append((path.relative_to(root).as_posix(), path))
    typed = root / "garrison" / "py.typed"
    if typed.exists():
        found.append(("garrison/py.typed", typed))
    return found


def build(source: Path, version: str, architecture: str = ANY_ARCHITECTURE) -> bytes:
    """A package of the ``garrison`` tree under ``source`` (the directory holding
    ``garrison/``), announcing ``version``."""
    check_version(version)
    check_architecture(architecture)
    out = io.BytesIO()
    manifest = {"format": FORMAT, "name": NAME, "version": version, "architecture": architecture}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        for name, path in _members(source):
            archive.write(path, name)
        archive.writestr(VERSION_FILE, version_source(version))
        archive.writestr(
            f"garrison-{version}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: garrison\nVersion: {version}\n",
        )
    data = out.getvalue()
    read(data)  # what is built must pass the checks it will meet
    return data


def source_root() -> Path:
    """The directory holding this ``garrison`` package."""
    return Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    from garrison import __version__

    parser = argparse.ArgumentParser(prog="python -m garrison.common.agent_package")
    parser.add_argument("out", type=Path, help="the .zip to write")
    parser.add_argument("--version", default=__version__, help=f"default: {__version__}")
    parser.add_argument("--architecture", default=ANY_ARCHITECTURE)
    parser.add_argument("--source", type=Path, default=None, help="the tree holding garrison/")
    args = parser.parse_args(argv)
    try:
        data = build(args.source or source_root(), args.version, args.architecture)
    except PackageError as exc:
        parser.exit(2, f"agent package: {exc}\n")
    args.out.write_bytes(data)
    print(f"{args.out}: garrison-agent {args.version} ({args.architecture}), {len(data)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
