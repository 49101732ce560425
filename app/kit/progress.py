"""A progress bar for the command line: rich's bar on a terminal, plain counter lines when
the output goes to a file or a pipe (logs, CI), so both stay readable."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class ProgressBar:
    """`with ProgressBar("Stopping servers") as bar: bar.update(done, total)`."""

    def __init__(self, label: str, *, console: Console | None = None) -> None:
        self.label = label
        self.console = console or Console()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._shown: tuple[int, int] | None = None

    def __enter__(self) -> ProgressBar:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=None)
        return self

    def update(self, done: int, total: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total)
            return
        if (done, total) != self._shown:
            self._shown = (done, total)
            print(f"  {self.label}: {done}/{total}", flush=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
