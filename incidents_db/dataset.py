"""Streaming writer and reader of the trajectory dataset (`.npz`, flat arrays with CSR offsets).

Arrays are appended chunk by chunk to temporary files and assembled into the `.npz` at the end, so
memory stays flat however many steps are written. The layout is documented in docs/store.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DATASET_FORMAT = "remediate.trajectories/v1"
_CHUNK = 1 << 20


class ColumnWriter:
    """Collects named 1-D arrays chunk by chunk on disk, then writes them as one `.npz` file."""

    def __init__(self, dtypes: dict[str, str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="remediate-mine-")
        self._dtypes = {name: np.dtype(dtype) for name, dtype in dtypes.items()}
        self._lengths = dict.fromkeys(dtypes, 0)
        self._files = {name: open(Path(self._dir.name) / f"{name}.bin", "wb") for name in dtypes}  # noqa: SIM115
        self._text: dict[str, list[str]] = {}

    def append(self, name: str, values: list[Any] | npt.NDArray[Any]) -> None:
        """Append values to the column `name`."""
        array = np.asarray(values, dtype=self._dtypes[name])
        array.tofile(self._files[name])
        self._lengths[name] += int(array.shape[0])

    def length(self, name: str) -> int:
        """Return how many values the column holds so far."""
        return self._lengths[name]

    def write_npz(self, path: Path, small: dict[str, npt.NDArray[Any]], strings: dict[str, Path]) -> None:
        """Write every column, the small in-memory arrays and the string columns into `path` atomically.

        Args:
            path: the `.npz` file to create.
            small: arrays kept in memory (vocabularies, metadata).
            strings: string columns stored one JSON string per line in a text file.
        """
        for handle in self._files.values():
            handle.close()
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, dtype in self._dtypes.items():
                source = Path(self._dir.name) / f"{name}.bin"
                self._write_member(archive, name, dtype, self._lengths[name], source)
            for name, text_path in strings.items():
                self._write_strings(archive, name, text_path)
            for name, array in small.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
        os.replace(tmp, path)

    @staticmethod
    def _write_member(
        archive: zipfile.ZipFile, name: str, dtype: np.dtype[Any], n: int, source: Path
    ) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n,)}
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member, open(source, "rb") as data:
            np.lib.format.write_array_header_2_0(member, header)
            while chunk := data.read(_CHUNK):
                member.write(chunk)

    @staticmethod
    def _write_strings(archive: zipfile.ZipFile, name: str, source: Path) -> None:
        width, count = 1, 0
        with open(source, encoding="utf-8") as lines:
            for line in lines:
                width = max(width, len(json.loads(line)))
                count += 1
        dtype = np.dtype(f"<U{width}")
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count,)}
        with (
            archive.open(f"{name}.npy", "w", force_zip64=True) as member,
            open(source, encoding="utf-8") as lines,
        ):
            np.lib.format.write_array_header_2_0(member, header)
            chunk: list[str] = []
            for line in lines:
                chunk.append(json.loads(line))
                if len(chunk) >= 10_000:
                    member.write(np.asarray(chunk, dtype=dtype).tobytes())
                    chunk.clear()
            if chunk:
                member.write(np.asarray(chunk, dtype=dtype).tobytes())

    def temp_path(self, name: str) -> Path:
        """Return a path inside the writer's scratch directory."""
        return Path(self._dir.name) / name

    def close(self) -> None:
        """Remove the scratch files."""
        for handle in self._files.values():
            handle.close()
        self._dir.cleanup()


def load_dataset(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Load a mined `.npz` dataset into a dict of arrays (see docs/store.md for the layout)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
