"""Verified files on disk: a cache folder whose manifest is checked at every use, built once under a
lock, and installed package files checked against their wheel's RECORD.

* ``cached_folder(root, name, sources, build)`` returns ``root/name`` when every file in it matches its
  ``manifest.json`` (size and sha256 of every file, the packages and versions it was built from, the
  ``CACHE_FORMAT``); otherwise it (re)builds it with ``build(folder)`` under the lock file
  ``root/<name>.lock``, into a private folder that gets its manifest last and is then renamed into
  place, and says on stderr why it rebuilt. The build runs with the global random generators saved
  and restored, so a cold cache does not shift a run's seeded initialisation.
* ``verify_record(dist, name, relative)`` checks installed files against the sha256 in RECORD.
* ``sha256_file`` hashes a file once per process for each (inode, size, mtime, ctime).

Problems are ``CacheError`` with a one-line message naming the file and the fix.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata as md
import json
import os
import random
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


class CacheError(RuntimeError):
    """A cached folder or an installed package file cannot be trusted or built; the message says why."""


def installed_version(dist_name: str) -> str | None:
    try:
        return md.version(dist_name)
    except md.PackageNotFoundError:
        return None


DIGESTS: dict[tuple, bytes] = {}


def sha256_file(path: Path) -> bytes:
    """SHA-256 of a file, hashed once per process for each (device, inode, size, mtime, ctime)."""
    st = path.stat()
    # No path in the key: a build folder renamed into place keeps its files' identity and digests.
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        DIGESTS[key] = digest.digest()
    return DIGESTS[key]


def verify_record(dist: md.Distribution, dist_name: str, relative: str) -> None:
    """Check the installed files at or under ``relative`` against the wheel's RECORD: sizes, then sha256.

    Files that RECORD does not hash (or an install without RECORD) are not checked.
    """
    folder = relative.rstrip("/") + "/"
    entries = [(Path(str(dist.locate_file(f))), f) for f in dist.files or []
               if f.hash is not None and f.hash.mode == "sha256" and (str(f) == relative or str(f).startswith(folder))]
    fix = f"fix: pip install --force-reinstall --no-deps {dist_name}=={dist.version}"
    for path, entry in entries:
        if not path.is_file():
            raise CacheError(f"'{path}' is missing from package '{dist_name}' (damaged install); {fix}")
        if entry.size is not None and path.stat().st_size != entry.size:
            raise CacheError(f"'{path}' has {path.stat().st_size} bytes, the RECORD of package '{dist_name}' "
                                f"says {entry.size} (damaged install); {fix}")
    for path, entry in entries:
        if base64.urlsafe_b64encode(sha256_file(path)).rstrip(b"=").decode() != entry.hash.value:
            raise CacheError(f"'{path}' does not match the sha256 in the RECORD of package '{dist_name}' "
                                f"(damaged install); {fix}")


MANIFEST = "manifest.json"
CACHE_FORMAT = 1  # bump when a conversion changes: caches written by older code are then rebuilt


@contextlib.contextmanager
def global_rng_untouched() -> Iterator[None]:
    """Leave torch's, Python's and numpy's global RNG as they were: runs seed before loading their backbone,
    so a conversion that initialises a model must not shift the head's init on a cold cache only."""
    import numpy
    import torch

    python_state, numpy_state = random.getstate(), numpy.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python_state)
        numpy.random.set_state(numpy_state)


def write_manifest(folder: Path, built_from: dict[str, str]) -> None:
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p).hex()}
             for p in sorted(folder.rglob("*")) if p.is_file()}
    manifest = {"format": CACHE_FORMAT, "built_from": built_from, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def cache_problem(folder: Path, name: str) -> str | None:
    """Why the cached ``folder`` cannot be trusted, or None when every file matches its manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        expected = {rel: (int(v["size"]), str(v["sha256"])) for rel, v in manifest["files"].items()}
        built_from = dict(manifest["built_from"])
        version = manifest["format"]
    except FileNotFoundError:
        return f"{name}/{MANIFEST} missing (half-built, or written by an older version)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{name}/{MANIFEST} unreadable (cache damaged)"
    if version != CACHE_FORMAT:
        return f"{name} was built by another version of the harness (cache format {version}, now {CACHE_FORMAT})"
    for package, built in built_from.items():
        installed = installed_version(package)
        if installed is not None and installed != built:
            return f"{name} was built from {package} {built}, installed is {installed}"
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()} - {MANIFEST}
    for rel in sorted(present - expected.keys()):
        return f"{name}/{rel} is not in the manifest (cache altered)"
    for rel, (size, _) in expected.items():
        path = folder / rel
        if not path.is_file():
            return f"{name}/{rel} missing (cache damaged)"
        if path.stat().st_size != size:
            return f"{name}/{rel} has {path.stat().st_size} bytes, the manifest says {size} (cache damaged)"
    for rel, (_, digest) in expected.items():
        if sha256_file(folder / rel).hex() != digest:
            return f"{name}/{rel} checksum mismatch (cache damaged)"
    return None


def discard(path: Path) -> None:
    """Remove a cache entry (a link is removed, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def cached_folder(root: Path, name: str, sources: str, build: Callable[[Path], dict[str, str]]) -> Path:
    """``root/name``: used when its manifest verifies, otherwise (re)built by ``build(folder)``.

    ``build`` writes a new folder and returns the packages and versions it read; ``sources`` names them
    in messages. The build runs under a lock file, into a private folder that gets its manifest last and is
    then renamed into place, so concurrent processes and interrupted builds never leave a half-built cache.
    """
    target = root / name
    if target.is_dir() and cache_problem(target, name) is None:
        return target
    try:
        from filelock import FileLock, Timeout
    except ImportError:
        raise CacheError(f"building the {name} cache needs 'filelock'; fix: pip install 'filelock>=3.12'") from None
    lock = FileLock(str(root / f"{name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"cache: waiting for another process building {name} (lock {lock.lock_file})", file=sys.stderr,
              flush=True)
        lock.acquire()
    try:
        if target.exists() or target.is_symlink():
            problem = cache_problem(target, name) if target.is_dir() else f"{name} is not a folder"
            if problem is None:  # another process built it while this one waited
                return target
            print(f"cache: {problem}; rebuilding from {sources}", file=sys.stderr, flush=True)
            discard(target)
        # Only the lock holder builds, so any build folder still here was left by a build that died.
        for stale in [root / f"{name}.tmp", *root.glob(f".{name}.tmp-*")]:
            discard(stale)
        tmp = root / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with global_rng_untouched():
                built_from = build(tmp)
            write_manifest(tmp, built_from)
            tmp.rename(target)
        finally:
            discard(tmp)
    finally:
        lock.release()
    return target
