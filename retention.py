"""Retention: delete the kept frames and audio clips that are too old, or the oldest when the disk runs low.

Every tick that changed keeps a JPEG (and with KEEP_AUDIO a .wav); on a parent's Raspberry Pi that fills the
SD card in months, and a full disk stops the monitor. So once per tick, `prune` deletes the files of ticks older
than RETENTION_DAYS, then, while the data dir's disk has less than MIN_FREE_MB free, the oldest remaining ones.
Only files go: each row keeps its states, confidences, sounds and paths, and records when (`media_pruned_ts`).
Never deleted: frames a human labelled (the only ground truth, needed for retraining) and the newest kept JPEG
(the pixel diff's reference for the next tick). Frames the fallback labeller labelled (opt-in) outlive
RETENTION_DAYS, since the retrain trains on them, but go, oldest first, when the disk runs low.

Files are deleted first, then their rows are marked: a crash in between leaves rows whose files are already gone,
which the next pass marks (a missing file is fine); the other order would leak files nobody points at forever.
Each commit of marks is then appended to the JSONL backup (data/ticks.jsonl), so a database rebuilt from it knows
these frames are gone; a backup that cannot be written is reported (its line waits in the database for a later
tick), never a reason to leave rows unmarked.
One pass touches at most MAX_FILES_PER_PASS files, so a first run over a year of frames never stalls a tick.

Files no row points at are swept from today's and yesterday's day folders: a tick killed between writing its frame
and committing its row (a power cut, the OOM killer) leaves its JPEG/.wav, or a half-written .tmp, that nothing
else would ever delete. Only files older than ORPHAN_AGE_S go, so a tick still writing is never raced, and never a
file a line of the JSONL backup names: a database older than its backup (restored from a copy) would otherwise
lose the frames of today and yesterday, labelled ones included, that a rebuild from the backup points at. When
the backup cannot be read, the sweep removes nothing that pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from db import jsonl
from db.store import Store, StoreError, TickRow
from settings import Settings

MAX_FILES_PER_PASS = 1000
ORPHAN_AGE_S = 10 * 60  # a tick writes its files and commits their row within its 2-minute timeout
BATCH_ROWS = 200
MB = 1024 * 1024
DAY_S = 86400


@dataclass
class PruneReport:
    """What one pass did: files removed and bytes freed, per reason, and what it could not do."""

    removed_by_age: int = 0
    removed_by_disk: int = 0
    freed_bytes: int = 0
    ticks_marked: int = 0  # rows now marked pruned (their files removed, or already missing)
    failed: list[str] = field(default_factory=list)  # "path: why" for files left in place (retried next pass)
    free_mb: float | None = None  # free space after the disk check; None when MIN_FREE_MB is 0
    low_disk: bool = False  # still below MIN_FREE_MB after the pass
    hit_bound: bool = False  # stopped at MAX_FILES_PER_PASS: the next pass goes on
    orphans_removed: int = 0  # left-over files of killed ticks (no row points at them)
    unbacked: int = 0  # rows marked in the database whose backup line could not be appended this pass
    backup_error: str | None = None  # why (the first failure of the pass)

    @property
    def removed_files(self) -> int:
        return self.removed_by_age + self.removed_by_disk

    def summary(self, settings: Settings) -> str:
        """One line for the log, e.g. 'removed 12 frames/clips (3.4 MB) older than 30 days'."""
        age = f"older than {settings.retention_days} days"
        disk = f"because the disk had less than {settings.min_free_mb} MB free"
        if self.removed_by_age and self.removed_by_disk:
            reasons = f"({self.removed_by_age} {age}, {self.removed_by_disk} {disk})"
        else:
            reasons = age if self.removed_by_age else disk
        return f"removed {self.removed_files} frames/clips ({self.freed_bytes / MB:.1f} MB) {reasons}"

    def problem(self, settings: Settings) -> str | None:
        """One line for a warning, or None when the pass did all it should."""
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} file(s) could not be removed and are kept (e.g. {self.failed[0]})")
        if self.backup_error:
            parts.append(
                f"{self.unbacked} row(s) marked pruned in the database but not yet in the JSONL backup: "
                f"{self.backup_error}"
            )
        if self.low_disk:
            why = (
                f"the next tick removes more (at most {MAX_FILES_PER_PASS} files a tick)"
                if self.hit_bound
                else "nothing more may be removed: labelled frames and the newest frame are kept"
            )
            parts.append(
                f"the disk still has only {self.free_mb:.0f} MB free (MIN_FREE_MB={settings.min_free_mb}); {why}"
            )
        return "; ".join(parts) or None


def _free_mb(data_dir: Path) -> float:
    return shutil.disk_usage(data_dir).free / MB


def _remove(data_dir: Path, relative: str) -> int | None:
    """Delete one kept file; returns the bytes freed, None if it was already gone. Nothing outside data_dir."""
    root = data_dir.resolve()
    path = (data_dir / relative).parent.resolve() / Path(relative).name
    if root not in path.parents:
        raise OSError(f"outside the data dir {root}, not touched")
    try:
        size = os.lstat(path).st_size
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return size


def _remove_empty_day_folders(data_dir: Path, folders: set[Path]) -> None:
    """Remove the day folders (frames/YYYY-MM-DD) a batch left empty; the frames dir itself stays."""
    frames = (data_dir / "frames").resolve()
    for folder in folders:
        if folder.resolve().parent == frames:
            with contextlib.suppress(OSError):  # not empty (or cannot be removed): it stays, harmlessly
                folder.rmdir()


@dataclass
class _Walk:
    """One pass over prunable ticks, oldest first, sharing the per-tick file budget."""

    store: Store
    data_dir: Path
    backup: Path  # the JSONL backup the marks are appended to
    report: PruneReport
    now: float
    budget: int = MAX_FILES_PER_PASS
    stuck: set[int] = field(default_factory=set)  # ticks with a file that could not be removed: not retried this pass

    def run(self, before_ts: float | None, keep_going: Callable[[], bool]) -> int:
        """Delete the files of prunable ticks while keep_going() and the budget last; returns files removed."""
        removed, after = 0, None
        while self.budget > 0 and keep_going():
            rows = self.store.prunable_media(before_ts, min(BATCH_ROWS, self.budget), after=after)
            if not rows:
                break
            done: list[int] = []
            folders: set[Path] = set()
            for row in rows:
                if self.budget <= 0 or not keep_going():
                    break
                after = (row.ts, row.id)
                if row.id not in self.stuck:
                    removed += self._remove_files(row, folders, done)
            with self.store.atomic():  # after the files: see the module docstring
                self.store.mark_media_pruned(done, self.now)
                if done:
                    jsonl.queue(self.store, self.backup, [jsonl.pruned_record(done, self.now)])
            self.report.ticks_marked += len(done)
            self._back_up(done)
            _remove_empty_day_folders(self.data_dir, folders)
        return removed

    def _back_up(self, ids: list[int]) -> None:
        """Append the committed marks to the backup; a failure is counted for the report, the marks stay queued."""
        if not ids:
            return
        if problem := jsonl.write(self.store, self.backup):
            self.report.unbacked += len(ids)
            self.report.backup_error = self.report.backup_error or problem

    def _remove_files(self, row: TickRow, folders: set[Path], done: list[int]) -> int:
        """Delete one tick's JPEG and .wav; the tick joins `done` only if none is left behind."""
        removed, ok = 0, True
        for relative in filter(None, (row.jpeg_path, row.audio_path)):
            self.budget -= 1
            try:
                freed = _remove(self.data_dir, relative)
            except OSError as exc:
                self.report.failed.append(f"{relative}: {exc.strerror or exc}")
                ok = False
                continue
            folders.add((self.data_dir / relative).parent)
            if freed is not None:
                removed += 1
                self.report.freed_bytes += freed
        if ok:
            done.append(row.id)
        else:
            self.stuck.add(row.id)
        return removed


def prune(store: Store, data_dir: Path, settings: Settings, now: float) -> PruneReport:
    """One retention pass: by age, then by disk space. A file that cannot be removed is reported, not raised.

    Raises OSError or StoreError when the disk or the database cannot be read or written; files removed by then
    are marked by the next pass.
    """
    report = PruneReport()
    walk = _Walk(store, data_dir, settings.jsonl_path, report, now)
    if settings.retention_days > 0:
        report.removed_by_age = walk.run(now - settings.retention_days * DAY_S, lambda: True)
    if settings.min_free_mb > 0:
        report.removed_by_disk = walk.run(None, lambda: _free_mb(data_dir) < settings.min_free_mb)
        report.free_mb = _free_mb(data_dir)
        report.low_disk = report.free_mb < settings.min_free_mb
    report.hit_bound = walk.budget <= 0
    report.orphans_removed = _sweep_orphans(store, data_dir, now, settings.jsonl_path)
    return report


def _orphans(store: Store, data_dir: Path, now: float) -> dict[str, Path]:
    """The files in today's and yesterday's day folders that no tick points at and that are older than ORPHAN_AGE_S
    (by the file's real age: files are written in real time), by their path relative to the data dir."""
    found: dict[str, Path] = {}
    today = datetime.fromtimestamp(now).date()
    for day in (today - timedelta(days=1), today):
        folder = data_dir / "frames" / day.isoformat()
        if not folder.is_dir():
            continue
        start = datetime.combine(day, datetime.min.time()).timestamp()
        kept = store.media_paths_between(start - DAY_S, start + 2 * DAY_S)  # a day either side: DST, clock changes
        for path in folder.iterdir():
            relative = f"frames/{day.isoformat()}/{path.name}"
            with contextlib.suppress(OSError):  # gone meanwhile: nothing to sweep
                if relative not in kept and path.is_file() and time.time() - path.stat().st_mtime > ORPHAN_AGE_S:
                    found[relative] = path
    return found


def _sweep_orphans(store: Store, data_dir: Path, now: float, backup: Path) -> int:
    """Delete the orphans (`_orphans`) that no line of the JSONL backup names either. Returns how many went."""
    orphans = _orphans(store, data_dir, now)
    try:
        named = jsonl.named_in(backup, orphans)
    except OSError:  # the backup cannot be read: it may name any of them, so none goes this pass
        return 0
    removed = 0
    for relative, path in orphans.items():
        if relative not in named:
            with contextlib.suppress(OSError):  # gone meanwhile, or not removable: the next pass tries again
                path.unlink()
                removed += 1
    return removed


_tick_log = logging.getLogger("bilbo.tick")  # the tick's steps log as the tick


def apply_retention(settings: Settings, store: Store, now: float) -> None:
    """Delete old frames/clips (RETENTION_DAYS, MIN_FREE_MB); a problem is one warning, never a failed tick."""
    try:
        report = prune(store, settings.data_dir, settings, now)
    except (OSError, StoreError) as exc:
        _tick_log.warning("retention did not finish this tick (the next tick tries again): %s", exc)
        return
    if report.removed_files:
        _tick_log.info("retention: %s", report.summary(settings))
    if report.orphans_removed:
        _tick_log.info(
            "retention: removed %d file(s) no tick points at (left by a killed tick)", report.orphans_removed
        )
    if problem := report.problem(settings):
        _tick_log.warning("retention: %s", problem)
