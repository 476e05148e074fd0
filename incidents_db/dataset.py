"""Streaming writer and reader of the trajectory dataset (`.npz`, flat arrays with CSR offsets).

Arrays are appended chunk by chunk to temporary files and assembled into the `.npz` at the end, so
memory stays flat however many steps are written. The layout is documented in docs/store.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from incidents_db.schema import OUTCOMES, SEVERITIES
from incidents_db.trajectories import UNMAPPED, Step, Trajectory
from playbooks.catalog import Catalog

DATASET_FORMAT = "remediate.trajectories/v1"
_OUTCOME_INDEX = {name: index for index, name in enumerate(OUTCOMES)}
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

    def write_npz(
        self, path: Path, small: dict[str, npt.NDArray[Any]], strings: dict[str, tuple[Path, int]]
    ) -> None:
        """Write every column, the small in-memory arrays and the string columns into `path` atomically.

        Args:
            path: the `.npz` file to create.
            small: arrays kept in memory (vocabularies, metadata).
            strings: string columns, each a text file of one JSON string per line and the longest
                string's length.
        """
        for handle in self._files.values():
            handle.close()
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, dtype in self._dtypes.items():
                source = Path(self._dir.name) / f"{name}.bin"
                self._write_member(archive, name, dtype, self._lengths[name], source)
            for name, (text_path, width) in strings.items():
                self._write_strings(archive, name, text_path, width)
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
    def _write_strings(archive: zipfile.ZipFile, name: str, source: Path, width: int) -> None:
        with open(source, encoding="utf-8") as lines:
            count = sum(1 for _ in lines)
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


COLUMNS = {
    "traj_severity": "i1",
    "traj_opened_at": "f8",
    "traj_resolved_at": "f8",
    "traj_root_service": "i4",
    "traj_root_fault": "i4",
    "traj_return": "f4",
    "traj_step_offsets": "i8",
    "step_traj": "i4",
    "step_time": "f8",
    "step_dt": "f4",
    "step_action": "i4",
    "step_action_name": "i4",
    "step_target": "i4",
    "step_outcome": "i1",
    "step_impact_minutes": "f4",
    "step_reward": "f4",
    "step_done": "?",
    "step_alert_offsets": "i8",
    "step_metric_offsets": "i8",
    "alert_service": "i4",
    "alert_name": "i4",
    "metric_service": "i4",
    "metric_name": "i4",
    "metric_value": "f4",
}


class Vocabulary:
    """Strings to dense indices, in first-seen order."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, value: str | None) -> int:
        """Return the index of `value` (-1 for None), adding it when new."""
        if value is None:
            return -1
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.index)
        return found

    def array(self) -> np.ndarray[Any, Any]:
        """Return the vocabulary as a string array in index order."""
        return np.asarray(list(self.index), dtype=str) if self.index else np.zeros(0, dtype="<U1")


VOCABULARIES = ("services", "faults", "alert_names", "metric_names", "action_names")
# columns holding vocabulary indices (-1 = none), and the vocabulary each indexes
_VOCAB_COLUMNS = {
    "traj_root_service": "services",
    "traj_root_fault": "faults",
    "step_action_name": "action_names",
    "step_target": "services",
    "alert_service": "services",
    "alert_name": "alert_names",
    "metric_service": "services",
    "metric_name": "metric_names",
}
# offset columns (and step_traj): page-local counts, shifted by the dataset's counts when merged
_OFFSET_OF = {
    "traj_step_offsets": "steps",
    "step_alert_offsets": "alerts",
    "step_metric_offsets": "metrics",
    "step_traj": "trajectories",
}


@dataclass
class PageColumns:
    """A page of trajectories as typed columns with page-local vocabularies (picklable, compact).

    Built where the trajectories are (a mining worker or the mining process) and merged into the
    dataset in page order by `DatasetBuilder.merge`, which maps local vocabulary indices to the
    dataset's; merging pages in order gives the same dataset as adding the trajectories one by one.
    """

    columns: dict[str, npt.NDArray[Any]]
    vocab: dict[str, list[str]]
    ids: list[str]
    trajectories: int
    steps: int
    alerts: int
    metrics: int
    unmapped: int


class PageBuilder:
    """Collects trajectories of one page into `PageColumns` (offset columns start after 0)."""

    def __init__(self, action_index: dict[str, int]) -> None:
        """Start an empty page; ``action_index`` maps catalog action ids to their dataset index."""
        self.action_index = action_index
        self._reset()

    def _reset(self) -> None:
        self.vocab = {name: Vocabulary() for name in VOCABULARIES}
        self.cols: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.ids: list[str] = []
        self.trajectories = self.steps = self.alerts = self.metrics = self.unmapped = 0
        # Caches of vocabulary indices: a step's firing alerts (the same sorted tuple for every step
        # until an alert changes, and few distinct ones in a page), and a metrics snapshot's
        # (service, metric names), which repeat the same few. Filled on first sight in the order the
        # vocabularies would see the strings one by one, so the indices are the same.
        self.alert_indices: dict[tuple[tuple[str, str], ...], tuple[list[int], list[int]]] = {}
        self.metric_indices: dict[tuple[str, tuple[str, ...]], tuple[list[int], list[int]]] = {}

    def add(self, trajectory: Trajectory) -> None:
        """Append one trajectory (its steps, alerts and metrics) to the page's columns."""
        self.add_all([trajectory])

    def add_all(self, trajectories: Iterable[Trajectory]) -> None:
        """Append trajectories in order (one loop, its column and vocabulary lookups done once)."""
        c, v = self.cols, self.vocab
        services, faults, action_names = v["services"], v["faults"], v["action_names"]
        service_index, action_name_index = services.index.get, action_names.index.get
        action_index = self.action_index.get
        ids = self.ids
        severity, opened, resolved = c["traj_severity"], c["traj_opened_at"], c["traj_resolved_at"]
        root_service, root_fault, returns = c["traj_root_service"], c["traj_root_fault"], c["traj_return"]
        step_offsets, step_traj, step_time = c["traj_step_offsets"], c["step_traj"], c["step_time"]
        step_dt, step_action, step_action_name = c["step_dt"], c["step_action"], c["step_action_name"]
        step_target, step_outcome = c["step_target"], c["step_outcome"]
        step_impact, step_reward, step_done = c["step_impact_minutes"], c["step_reward"], c["step_done"]
        for trajectory in trajectories:
            steps = trajectory.steps
            ids.append(trajectory.incident_id)
            severity.append(SEVERITIES.index(trajectory.severity) + 1)
            opened.append(trajectory.opened_at)
            resolved.append(trajectory.resolved_at)
            root_service.append(services(trajectory.root_service))
            root_fault.append(faults(trajectory.root_fault))
            # The services vocabulary sees every step's target before any step's alerts and metrics.
            for step in steps:
                step_time.append(step.at)
                step_dt.append(step.dt)
                step_action.append(action_index(step.action, -1))
                name = action_name_index(step.action_name)
                step_action_name.append(action_names(step.action_name) if name is None else name)
                target = service_index(step.target)  # type: ignore[arg-type]  # None: not in the index
                step_target.append(services(step.target) if target is None else target)
                step_outcome.append(_OUTCOME_INDEX.get(step.outcome, 3))
                step_impact.append(step.impact_minutes)
                step_reward.append(step.reward)
                step_done.append(step.done)
                if step.action == UNMAPPED:
                    self.unmapped += 1
            step_traj.extend([self.trajectories] * len(steps))
            self._add_observations(steps)
            self.steps += len(steps)
            self.trajectories += 1
            returns.append(sum(step.reward for step in steps))
            step_offsets.append(self.steps)

    def _add_observations(self, steps: tuple[Step, ...]) -> None:
        """Append the steps' firing alerts and metrics (vocabulary indices, values, offsets)."""
        c, v = self.cols, self.vocab
        services, alert_names, metric_names = v["services"], v["alert_names"], v["metric_names"]
        alert_service, alert_name, alert_offsets = (
            c["alert_service"],
            c["alert_name"],
            c["step_alert_offsets"],
        )
        metric_service, metric_name, metric_value = c["metric_service"], c["metric_name"], c["metric_value"]
        metric_offsets = c["step_metric_offsets"]
        alert_indices, metric_indices = self.alert_indices, self.metric_indices
        alerts, metrics = self.alerts, self.metrics
        for step in steps:
            if step.alerts:
                found = alert_indices.get(step.alerts)
                if found is None:
                    pairs = [(services(service), alert_names(name)) for service, name in step.alerts]
                    found = alert_indices[step.alerts] = ([p[0] for p in pairs], [p[1] for p in pairs])
                alert_service.extend(found[0])
                alert_name.extend(found[1])
                alerts += len(found[0])
            alert_offsets.append(alerts)
            for service, values in step.metrics.items():
                key = (service, tuple(values))
                indices = metric_indices.get(key)
                if indices is None:
                    names = [metric_names(name) for name in key[1]]
                    indices = metric_indices[key] = ([services(service)] * len(names), names)
                metric_service.extend(indices[0])
                metric_name.extend(indices[1])
                metric_value.extend(values.values())
                metrics += len(indices[1])
            metric_offsets.append(metrics)
        self.alerts, self.metrics = alerts, metrics

    def result(self) -> PageColumns:
        """Return the page as typed arrays (and start over empty)."""
        page = PageColumns(
            columns={name: np.asarray(values, dtype=COLUMNS[name]) for name, values in self.cols.items()},
            vocab={name: list(vocab.index) for name, vocab in self.vocab.items()},
            ids=self.ids,
            trajectories=self.trajectories,
            steps=self.steps,
            alerts=self.alerts,
            metrics=self.metrics,
            unmapped=self.unmapped,
        )
        self._reset()
        return page


class DatasetBuilder:
    """Merges pages of trajectory columns, in order, into a dataset's scratch files."""

    def __init__(self, catalog: Catalog) -> None:
        """Start an empty dataset whose action indices follow `catalog`."""
        self.catalog = catalog
        self.action_index = {action_id: index for index, action_id in enumerate(catalog.ids)}
        self.writer = ColumnWriter(COLUMNS)
        self.ids = open(self.writer.temp_path("traj_incident.txt"), "w", encoding="utf-8")  # noqa: SIM115
        self.vocab = {name: Vocabulary() for name in VOCABULARIES}
        self.page = PageBuilder(self.action_index)
        self.trajectories = 0
        self.steps = 0
        self.alerts = 0
        self.metrics = 0
        self.unmapped = 0
        self.id_width = 1
        for name in ("traj_step_offsets", "step_alert_offsets", "step_metric_offsets"):
            self.writer.append(name, [0])

    def add(self, trajectory: Trajectory) -> None:
        """Append one trajectory (buffered in the current page until `flush`)."""
        self.page.add(trajectory)

    def add_all(self, trajectories: Iterable[Trajectory]) -> None:
        """Append trajectories in order (buffered in the current page until `flush`)."""
        self.page.add_all(trajectories)

    def merge(self, page: PageColumns) -> None:
        """Append a page built elsewhere: map its vocabulary indices to the dataset's, shift its offsets."""
        maps = {
            name: np.asarray([self.vocab[name](value) for value in page.vocab[name]] + [-1], dtype=np.int64)
            for name in VOCABULARIES
        }
        for name, column in page.columns.items():
            if not column.shape[0]:
                continue
            if name in _VOCAB_COLUMNS:
                column = maps[_VOCAB_COLUMNS[name]][column]  # -1 (none) indexes the trailing -1
            elif name in _OFFSET_OF:
                column = column + getattr(self, _OFFSET_OF[name])
            self.writer.append(name, column)
        for incident_id in page.ids:
            self.ids.write(json.dumps(incident_id) + "\n")
            self.id_width = max(self.id_width, len(incident_id))
        self.trajectories += page.trajectories
        self.steps += page.steps
        self.alerts += page.alerts
        self.metrics += page.metrics
        self.unmapped += page.unmapped

    def flush(self) -> None:
        """Merge the trajectories added since the last flush into the scratch files."""
        if self.page.trajectories:
            self.merge(self.page.result())

    def finish(self, path: Path, meta: dict[str, Any]) -> None:
        """Write the dataset to `path` with the vocabularies and `meta` (JSON) inside."""
        self.flush()
        self.ids.close()
        small = {name: vocab.array() for name, vocab in self.vocab.items()}
        small["catalog_actions"] = np.asarray(self.catalog.ids, dtype=str)
        small["outcome_names"] = np.asarray(OUTCOMES, dtype=str)
        small["severity_names"] = np.asarray(("", *SEVERITIES), dtype=str)
        small["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
        self.writer.write_npz(
            path, small, {"traj_incident": (self.writer.temp_path("traj_incident.txt"), self.id_width)}
        )

    def close(self) -> None:
        """Remove the scratch files."""
        self.ids.close()
        self.writer.close()


def load_dataset(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Load a mined `.npz` dataset into a dict of arrays (see docs/store.md for the layout)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
