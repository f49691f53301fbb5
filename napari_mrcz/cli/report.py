"""The table that ends a conversion run: files, sizes, ratios, speed, failures and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from napari_mrcz.wording import human_rate, human_size, plural

if TYPE_CHECKING:
    from napari_mrcz.cli.batch import Task


def summary_table(tasks: list[Task], seconds: float, compressed: bool = True) -> str:
    """The final table: one row per file, then the totals and the failures.

    The ratio (input file over output file) is shown for compressed outputs only: a
    plain MRC file has no compression ratio.
    """
    header = ("status", "file", "output", "in", "out", "ratio", "speed")
    rows = []
    for task in tasks:
        done = task.status == "done"
        shown = task.status in ("done", "skipped") and task.targets
        rows.append(
            (
                task.status.upper() if task.status == "failed" else task.status,
                task.source,
                ", ".join(task.targets) if shown else "-",
                human_size(task.source_bytes) if task.source_bytes else "-",
                human_size(task.output_bytes) if done else "-",
                f"{task.source_bytes / task.output_bytes:.2f}"
                if done and compressed and task.output_bytes
                else "-",
                human_rate(task.data_bytes, task.seconds) if done else "-",
            )
        )
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    right = {3, 4, 5, 6}
    lines = [
        "  ".join(
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    ]
    counts = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    finished = [task for task in tasks if task.status == "done"]
    total_in = sum(task.source_bytes for task in finished)
    total_out = sum(task.output_bytes for task in finished)
    total_data = sum(task.data_bytes for task in finished)
    ratio = f" ({total_in / total_out:.2f}x)" if total_out and compressed else ""
    rate = f", {human_rate(total_data, seconds)} of data" if seconds > 0 and total_data else ""
    lines.append(
        ", ".join(f"{count} {status}" for status, count in counts.items())
        + f"; {human_size(total_in)} in, {human_size(total_out)} out{ratio} "
        f"in {seconds:.1f} s{rate}"
    )
    without_json = sum(task.json_left_out for task in tasks)
    if without_json:
        lines.append(
            f"{plural(without_json, 'plain MRC output')} without the JSON metadata of "
            "the input (MRC2014 readers reject it there; --keep-json writes it)"
        )
    deleted = sum(task.source_deleted for task in tasks)
    if deleted:
        lines.append(f"{plural(deleted, 'source file')} deleted after verification")
    for task in tasks:
        if task.status == "failed":
            lines.append(f"FAILED {task.source}: {task.message}")
        elif task.message:
            lines.append(f"note: {task.source}: {task.message}")
    return "\n".join(lines)


class ByteProgress(tqdm):
    """A progress bar over bytes in the units of the summary (KiB, MiB, GiB: powers of 2).

    tqdm's own byte scaling prints SI prefixes ("MB") whatever the divisor, and the
    speed in powers of 10.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            total=0,
            bar_format="{l_bar}{bar}| {done_size}/{total_size} [{elapsed}<{remaining}, {speed}]",
            **kwargs,
        )

    @property
    def format_dict(self) -> dict[str, Any]:
        values = super().format_dict
        done, elapsed = values.get("n") or 0, values.get("elapsed") or 0
        rate = values.get("rate") or (done / elapsed if elapsed else 0)
        values.update(
            done_size=human_size(done),
            total_size=human_size(values.get("total") or 0),
            speed=human_rate(rate, 1.0) if rate else "? B/s",
        )
        return values
