"""A tiny in-tree PEP 517 / PEP 660 build backend, standard library only.

Why not setuptools: pip's isolated build would download setuptools (impossible offline), and
with --no-build-isolation setuptools < 70.1 still needs the separate `wheel` package to build a
wheel, which a stock Python does not have. This backend needs nothing, so
`pip install ./bindings/python` works offline, with or without build isolation.

It packs the `convstate/` directory (sources and py.typed) as a pure wheel; the metadata comes
from pyproject.toml's [project] table.

Bundling the native library: with the config setting `bundle-libdir=DIR`
(`pip install --config-settings bundle-libdir=DIR ./bindings/python`) or the environment variable
CONVSTATE_BUNDLE_LIBDIR=DIR, the wheel also carries DIR's `libconvstate_c.so` and the
`libconvstate.so.N` it needs, side by side inside the package (libconvstate_c finds its
sibling through its `$ORIGIN` RUNPATH), and is tagged for this platform instead of `any`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import re
import subprocess
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "convstate"
TAG = "py3-none-any"


def _project() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # a minimal reader for the simple string keys used here
        project, section = {}, None
        for line in data.decode("utf-8").splitlines():
            m = re.match(r"\s*\[([^\]]+)\]\s*$", line)
            if m:
                section = m.group(1).strip()
                continue
            m = re.match(r'\s*([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"\s*$', line)
            if section == "project" and m:
                project[m.group(1)] = m.group(2)
        return project
    return tomllib.loads(data.decode("utf-8"))["project"]


def _metadata() -> str:
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
    ]
    if p.get("description"):
        lines.append(f"Summary: {p['description']}")
    if p.get("requires-python"):
        lines.append(f"Requires-Python: {p['requires-python']}")
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append(f"License: {lic['text']}")
    for c in p.get("classifiers", []) if isinstance(p.get("classifiers"), list) else []:
        lines.append(f"Classifier: {c}")
    readme = os.path.join(ROOT, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _names() -> tuple[str, str]:
    p = _project()
    name = re.sub(r"[-_.]+", "_", p["name"]).lower()
    return name, p["version"]


def _dist_info() -> str:
    name, version = _names()
    return f"{name}-{version}.dist-info"


def _package_files() -> list[tuple[str, str]]:
    """(archive name, path) of every file of the package, sorted, without caches."""
    out = []
    base = os.path.join(ROOT, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(dirpath, fn)
            out.append((os.path.relpath(path, ROOT).replace(os.sep, "/"), path))
    return out


def _bundle_dir(config_settings) -> str | None:
    d = (config_settings or {}).get("bundle-libdir") or os.environ.get("CONVSTATE_BUNDLE_LIBDIR")
    return d or None


def _needed_sonames(path: str) -> list[str]:
    """The DT_NEEDED entries of a shared object that name libconvstate (via readelf or objdump)."""
    for tool in (["readelf", "-d", path], ["objdump", "-p", path]):
        try:
            out = subprocess.run(tool, check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        return re.findall(r"(libconvstate\.so[.0-9]*)", out)
    raise RuntimeError("convstate_build: bundling needs readelf or objdump (binutils)")


def _bundled_files(libdir: str) -> list[tuple[str, bytes]]:
    """libconvstate_c.so and the libconvstate soname it needs, as package files."""
    c_lib = os.path.join(libdir, "libconvstate_c.so")
    if not os.path.exists(c_lib):
        raise RuntimeError(f"convstate_build: bundle-libdir={libdir!r} holds no libconvstate_c.so")
    files = [(f"{PACKAGE}/libconvstate_c.so", _read(os.path.realpath(c_lib)))]
    for soname in sorted(set(_needed_sonames(c_lib))):
        path = os.path.join(libdir, soname)
        if not os.path.exists(path):
            raise RuntimeError(f"convstate_build: libconvstate_c.so needs {soname}, which {libdir!r} lacks")
        files.append((f"{PACKAGE}/{soname}", _read(os.path.realpath(path))))
    return files


def _platform_tag() -> str:
    machine = platform.machine().lower().replace("-", "_")
    return f"py3-none-{platform.system().lower()}_{machine}"


def _write_wheel(wheel_directory: str, entries: list[tuple[str, bytes]], tag: str = TAG) -> str:
    name, version = _names()
    dist_info = _dist_info()
    wheel_name = f"{name}-{version}-{tag}.whl"
    purelib = "true" if tag == TAG else "false"
    entries = entries + [
        (f"{dist_info}/METADATA", _metadata().encode("utf-8")),
        (f"{dist_info}/WHEEL",
         f"Wheel-Version: 1.0\nGenerator: convstate_build\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n".encode()),
        (f"{dist_info}/top_level.txt", f"{PACKAGE}\n".encode()),
    ]
    record = []
    for arcname, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arcname},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    os.makedirs(wheel_directory, exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel_name


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- PEP 517 ------------------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = os.path.join(metadata_directory, _dist_info())
    os.makedirs(dist_info, exist_ok=True)
    with open(os.path.join(dist_info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return _dist_info()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    entries = [(arc, _read(path)) for arc, path in _package_files()]
    libdir = _bundle_dir(config_settings)
    if libdir is None:
        return _write_wheel(wheel_directory, entries)
    bundled = _bundled_files(libdir)
    names = {arc for arc, _ in bundled}
    entries = [e for e in entries if e[0] not in names] + bundled
    return _write_wheel(wheel_directory, entries, _platform_tag())


def build_sdist(sdist_directory, config_settings=None):
    name, version = _names()
    base = f"{name}-{version}"
    files = ["pyproject.toml", "README.md", "_build/convstate_build.py"]
    files += [arc for arc, _ in _package_files()]
    tests = os.path.join(ROOT, "tests")
    if os.path.isdir(tests):
        files += [f"tests/{fn}" for fn in sorted(os.listdir(tests)) if fn.endswith(".py")]
    os.makedirs(sdist_directory, exist_ok=True)
    sdist_name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, sdist_name), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{base}/{arcname}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tf.addfile(info, io.BytesIO(data))

        for arc in files:
            path = os.path.join(ROOT, arc)
            if os.path.exists(path):
                add(arc, _read(path))
        add("PKG-INFO", _metadata().encode("utf-8"))
    return sdist_name


# -- PEP 660 (pip install -e) -------------------------------------------------------------------


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth", (ROOT + "\n").encode("utf-8"))])
