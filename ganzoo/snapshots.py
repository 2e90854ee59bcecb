"""What happens at a snapshot besides the checkpoint, as callbacks the trainer runs in order
(in the spirit of stylegan3's progress callbacks): the sample grid and progress GIF, the
training metrics, the HTML report.

Each callback says whether it runs before the checkpoint is written (the metrics: a run
killed during them resumes and scores again), on rank 0 only, and whether its time counts as
training time (the metrics' does not: sec/kimg compares training speed).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ganzoo.run_dir import RunDirectory
from ganzoo.viz import ProgressGif, grid_image

if TYPE_CHECKING:
    from ganzoo.trainer import Trainer


class SnapshotCallback:
    before_save: ClassVar[bool] = True
    main_only: ClassVar[bool] = True
    training_time: ClassVar[bool] = True

    def __call__(self, trainer: "Trainer", final: bool) -> None:
        raise NotImplementedError


class SampleGrids(SnapshotCallback):
    """The fixed-seed grid: samples/fakesKKKKKK.KKK.png, final.png at the end, progress.gif
    (a resumed run's GIF starts from the grids already there)."""

    def __init__(self, files: RunDirectory, resumed: bool):
        self.files = files
        self.resumed = resumed
        self.gif: ProgressGif | None = None

    def _open_gif(self) -> ProgressGif:
        # Read at the first snapshot, not at construction: every rank constructs its
        # callbacks while rank 0 may still be rewinding (deleting) the grids of a resumed run.
        gif = ProgressGif()
        if self.resumed:
            gif.add_files(self.files.grids())
        return gif

    def __call__(self, trainer: "Trainer", final: bool) -> None:
        if self.gif is None:
            self.gif = self._open_gif()
        img = grid_image(trainer.sample_grid(), trainer.grid_cols,
                         col_titles=trainer.grid_titles())
        self.files.save_grid(img, trainer.progress.kimg, final)
        self.gif.add(img)
        self.gif.write(self.files.path / "progress.gif")


class Metrics(SnapshotCallback):
    """--metrics at the snapshots --metrics-every picks (ganzoo/metrics/training.py)."""

    main_only = False            # every rank generates its share of the samples
    training_time = False

    def __init__(self, metrics):
        self.metrics = metrics

    def __call__(self, trainer: "Trainer", final: bool) -> None:
        self.metrics.maybe_run(trainer, final)


class Report(SnapshotCallback):
    """report.html, rewritten after each checkpoint (milliseconds: it reads the run
    directory only)."""

    before_save = False

    def __call__(self, trainer: "Trainer", final: bool) -> None:
        from ganzoo.report import write_report
        try:
            write_report(trainer.run_dir)
        except Exception as e:  # noqa: BLE001 - a report problem must not stop training
            trainer.view.message(f"warning: report.html not written: {type(e).__name__}: {e}")
