"""The table that ends a conversion run: files, sizes, ratios, speed, failures and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari_mrcz.cli.batch import Task


def human_size(nbytes: float) -> str:
    """``nbytes`` in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def summary_table(tasks: list[Task], seconds: float) -> str:
    """The final table: one row per file, then the totals and the failures."""
    header = ("status", "file", "output", "in", "out", "ratio", "MiB/s")
    rows = []
    for task in tasks:
        done = task.status == "done"
        rows.append(
            (
                task.status.upper() if task.status == "failed" else task.status,
                task.source,
                ", ".join(task.targets) if task.status in ("done", "skipped") else "-",
                human_size(task.source_bytes) if task.source_bytes else "-",
                human_size(task.output_bytes) if done else "-",
                f"{task.source_bytes / task.output_bytes:.2f}"
                if done and task.output_bytes
                else "-",
                f"{task.data_bytes / task.seconds / 2**20:.1f}"
                if done and task.seconds > 0
                else "-",
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
    ratio = f" ({total_in / total_out:.2f}x)" if total_out else ""
    rate = (
        f", {total_data / seconds / 2**20:.1f} MiB/s of data" if seconds > 0 and total_data else ""
    )
    lines.append(
        ", ".join(f"{count} {status}" for status, count in counts.items())
        + f"; {human_size(total_in)} in, {human_size(total_out)} out{ratio} "
        f"in {seconds:.1f} s{rate}"
    )
    deleted = sum(task.source_deleted for task in tasks)
    if deleted:
        lines.append(f"{deleted} source file(s) deleted after verification")
    for task in tasks:
        if task.status == "failed":
            lines.append(f"FAILED {task.source}: {task.message}")
        elif task.message:
            lines.append(f"note: {task.source}: {task.message}")
    return "\n".join(lines)
