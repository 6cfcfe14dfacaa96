"""faust-streaming's own example apps, run unchanged on ``nats://`` (an outside check).

Nothing of faust's is committed here. :func:`example` takes the example from the installed faust
if it ships its examples, else from faust's source distribution on PyPI for the installed version
(``pip download``, kept in pytest's cache), and copies it into the test's directory.

Run as a program, this module runs an example as faust's CLI would (``<example> worker``), with
the broker pointed at NATS. The examples hard-code ``broker='kafka://localhost:9092'`` when they
make their app, so the runner makes ``faust.App`` set the broker it is given at that moment; the
example's code runs as it is written::

    python -m testkit.faust_examples <example.py> nats://127.0.0.1:4222 worker -l info
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

__all__ = ["example", "main"]

_DISTRIBUTION = "faust-streaming"


def example(name: str, cache_dir: Path, dest_dir: Path) -> Path:
    """A copy of faust's ``examples/<name>`` in ``dest_dir``.

    Raises RuntimeError, saying why, when it cannot be had (no PyPI, no such example).
    """
    version = importlib.metadata.version(_DISTRIBUTION)
    shipped = _shipped(name)
    dest = dest_dir / name
    if shipped is not None:
        shutil.copyfile(shipped, dest)
        return dest
    archive = _sdist(version, cache_dir)
    member = f"faust_streaming-{version}/examples/{name}"
    with tarfile.open(archive) as tar:
        try:
            source = tar.extractfile(member)
        except KeyError:
            raise RuntimeError(f"{archive.name} has no {member}") from None
        assert source is not None
        dest.write_bytes(source.read())
    return dest


def _shipped(name: str) -> Path | None:
    for file in importlib.metadata.files(_DISTRIBUTION) or ():
        if file.parts[-2:] == ("examples", name):
            return Path(str(file.locate()))
    return None


def _sdist(version: str, cache_dir: Path) -> Path:
    archive = cache_dir / f"faust_streaming-{version}.tar.gz"
    if archive.exists():
        return archive
    cache_dir.mkdir(parents=True, exist_ok=True)
    # --no-binary for faust alone: its build requirements still come as wheels (seconds, not minutes).
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", _DISTRIBUTION, f"{_DISTRIBUTION}=={version}", "--dest", str(cache_dir),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0 or not archive.exists():
        raise RuntimeError(f"pip could not download {archive.name}: {done.stderr.strip()[-2000:]}")
    return archive


def main(argv: list[str]) -> None:
    path, broker, *faust_args = argv
    import faust

    class OnBroker(faust.App):
        def __init__(self, *args: Any, **options: Any) -> None:
            options["broker"] = broker
            super().__init__(*args, **options)

    faust.App = OnBroker  # type: ignore[misc]
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    sys.argv = [path, *faust_args]
    module.app.main()


if __name__ == "__main__":
    main(sys.argv[1:])
