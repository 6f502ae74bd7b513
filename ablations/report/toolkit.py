"""The reporting toolkit: what every report of the suite is built from (the ablation report, the claims report,
the suite's index, the comparison of two result sets).

Why one public module: reports that each carry their own table writer or figure canvas drift apart (one escapes
`|` in markdown and another does not, one writes figures atomically and another does not), and a report that
borrows another's private helpers breaks whenever those change. Everything a report needs to *write* is here,
under public names; the reports themselves only decide *what* to say.

* **Numbers as text** (`num`, `signed`, `p_text`, `p_equals`, `interval`, `duration`): one formatting for every
  report: a missing or non-finite value is an em dash, and minus signs are true minus signs.
* **Tables** (`markdown_table`, `html_table`, `to_latex`, `latex_escape`, `write_table`): a formatted frame as
  GitHub markdown, as HTML, and as a booktabs LaTeX table; `write_table` writes the numeric frame as CSV beside
  the formatted one as TeX.
* **The document** (`Document`, `write_document`): headings, paragraphs, lists, tables and figures, rendered to
  markdown (figures linked) and to one self-contained HTML page (figures embedded as data: URIs, inline CSS,
  markdown rendered through markdown-it-py, `ablations.report.markup`).
* **The figure canvas** (`new_figure`, `panel_figure`, `save_figure`, `figure_style`, `palette`, `legend_outside`,
  `draw`): matplotlib `Figure` objects on the Agg canvas, never pyplot, so drawing changes no global state and
  needs no display; PNGs are written atomically; a figure that fails to draw is reported, not fatal.
"""

from __future__ import annotations

import base64
import contextlib
import html as _html
import io
import math
import os
import tempfile
from pathlib import Path

import pandas as pd

from ablations.report.markup import inline_html, to_html
from ablations.store.files import write_text_atomic

__all__ = ["CSS", "DPI", "Document", "draw", "duration", "figure_style", "html_table", "interval", "latex_escape",
           "legend_outside", "markdown_table", "new_figure", "num", "p_equals", "p_text", "palette", "panel_figure",
           "save_figure", "signed", "to_latex", "write_bytes_atomic", "write_document", "write_table"]


# ------------------------------------------------------------------------------------------- numbers as text
def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) or (isinstance(value, float) and not math.isfinite(value))
    except (TypeError, ValueError):
        return False


def num(value, digits: int = 3) -> str:
    """`0.912`, with a true minus sign; `—` for a missing or non-finite value. A value that rounds to zero is
    `0.00`, not `−0.00` (a sign the shown digits cannot back)."""
    if _missing(value):
        return "—"
    text = f"{value:.{digits}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text.replace("-", "−")


def signed(value, digits: int = 3) -> str:
    """`+0.012` / `−0.012`; `—` for a missing or non-finite value."""
    if _missing(value):
        return "—"
    return f"{value:+.{digits}f}".replace("-", "−")


def p_text(value) -> str:
    """A p-value: `0.012`, `<0.001`, or `—`."""
    if _missing(value):
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def p_equals(value) -> str:
    """`p=0.012` or `p<0.001`."""
    text = p_text(value)
    return "p" + (text if text.startswith("<") else "=" + text)


def interval(low, high, digits: int = 2) -> str:
    """`[0.81, 0.93]`, or an empty string when either end is missing."""
    if _missing(low) or _missing(high):
        return ""
    return f"[{num(low, digits)}, {num(high, digits)}]"


def duration(seconds: float) -> str:
    """`1 h 02 min (3720 s)`, `1 min 20 s (80 s)`, `12 s (12 s)`, or `unknown`."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")
    return f"{text} ({seconds} s)"


# ------------------------------------------------------------------------------------------------------ tables
def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table; the index is the first column when it is named (pandas' to_markdown
    would need the optional `tabulate`). Pipes are escaped and newlines flattened, so a cell never breaks the
    table."""
    def clean(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = ([frame.index.name or ""] if frame.index.name else []) + [clean(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        values = ([clean(index)] if frame.index.name else []) + [clean(v) for v in row]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def html_table(frame: pd.DataFrame) -> str:
    """The same table as HTML; every cell is inline markdown (so `code` and links render as in report.md)."""
    header = ([frame.index.name] if frame.index.name else []) + list(frame.columns)
    rows = ["<tr>" + "".join(f"<th>{inline_html(str(h))}</th>" for h in header) + "</tr>"]
    for index, row in frame.iterrows():
        values = ([index] if frame.index.name else []) + list(row)
        rows.append("<tr>" + "".join(f"<td>{inline_html(str(v))}</td>" for v in values) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"▲": r"$\blacktriangle$", "▼": r"$\blacktriangledown$", "✗": r"$\times$", "±": r"$\pm$",
                  "≈": r"$\approx$", "·": r"$\cdot$", "×": r"$\times$", "⚠": "(!)",
                  "−": "$-$", "Δ": r"$\Delta$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "≥": r"$\geq$",
                  "≤": r"$\leq$", "—": "--", "–": "--", "…": r"\ldots{}", "<": r"$<$", ">": r"$>$"}


def latex_escape(text) -> str:
    """Text safe inside a LaTeX table: TeX's special characters escaped, the report's symbols as math."""
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return "".join(_LATEX_SYMBOLS.get(ch, ch) for ch in text)


def to_latex(frame: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs table (needs \\usepackage{booktabs,amssymb}); numbers are formatted to 4 significant digits."""
    frame = frame.reset_index() if frame.index.name else frame

    def cell(value) -> str:
        if isinstance(value, float):
            return "--" if not math.isfinite(value) else f"{value:.4g}"
        return latex_escape(value)

    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = ["% generated by ablations.report; needs \\usepackage{booktabs,amssymb}", "\\begin{table}[ht]",
             "\\centering", "\\small"]
    if caption:
        lines.append(f"\\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(f"\\label{{{label}}}")
    lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
              " & ".join(latex_escape(c) for c in frame.columns) + " \\\\", "\\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(cell(v) for v in row) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def write_table(directory: Path, name: str, numeric: pd.DataFrame, formatted: pd.DataFrame, caption: str,
                written: dict) -> None:
    """`tables/<name>.csv` (the numbers, for analysis) and `tables/<name>.tex` (the formatted table, for a
    paper), atomically; both paths are added to `written` under their file names."""
    buffer = io.StringIO()
    numeric.to_csv(buffer, index=False)
    write_text_atomic(Path(directory) / "tables" / f"{name}.csv", buffer.getvalue())
    write_text_atomic(Path(directory) / "tables" / f"{name}.tex", to_latex(formatted, caption, f"tab:{name}"))
    written[f"{name}.csv"] = Path(directory) / "tables" / f"{name}.csv"
    written[f"{name}.tex"] = Path(directory) / "tables" / f"{name}.tex"


# ---------------------------------------------------------------------------------------------- the document
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #eee}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px;font-size:90%}
table{border-collapse:collapse;margin:.6em 0;font-size:90%}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f6f6}tr:nth-child(even) td{background:#fbfbfb}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:90%}ul.findings li{margin:.3em 0}
details summary{cursor:pointer;color:#0550ae;margin:.5em 0}
"""


class Document:
    """A small document model, written once and rendered both to markdown and to self-contained HTML, so that
    report.md and report.html can never say different things.

    Text is markdown (inline syntax in headings, list items, table cells and captions; block syntax in
    paragraphs). A figure is a PNG path: linked relative to the report's directory in markdown, embedded in the
    HTML."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def items(self, items: list[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, frame: pd.DataFrame, collapsed: str | None = None) -> None:
        """A table; `collapsed` puts it in the HTML behind a summary line with that text (long tables)."""
        self.blocks.append(("table", frame, collapsed))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("fig", Path(path), caption))

    def markdown(self, root: Path) -> str:
        """The document as markdown, figures linked relative to `root` (the directory the .md is written in)."""
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append("#" * block[1] + " " + block[2])
            elif kind == "p":
                out.append(block[1])
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in block[1]))
            elif kind == "table":
                out.append(markdown_table(block[1]))
            elif kind == "fig":
                rel = Path(os.path.relpath(block[1].resolve(), Path(root).resolve())).as_posix()
                out.append(f"![{block[2]}]({rel})\n\n*{block[2]}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        """The document as one HTML page with its figures embedded: it can be mailed or archived alone."""
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append(f"<h{block[1]}>{inline_html(block[2])}</h{block[1]}>")
            elif kind == "p":
                out.append(to_html(block[1]).strip())
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                table = html_table(block[1])
                out.append(f"<details><summary>{inline_html(block[2])}</summary>{table}</details>" if block[2]
                           else table)
            elif kind == "fig":
                data = base64.b64encode(block[1].read_bytes()).decode("ascii")
                out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_html.escape(block[2])}">'
                           f"<figcaption>{inline_html(block[2])}</figcaption></figure>")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_html.escape(title)}"
                f"</title>\n<style>{CSS}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n")


def write_document(document: Document, directory: Path, stem: str, title: str) -> tuple[Path, Path]:
    """`<directory>/<stem>.md` and `<directory>/<stem>.html`, atomically; returns their paths."""
    directory = Path(directory)
    md_path, html_path = directory / f"{stem}.md", directory / f"{stem}.html"
    write_text_atomic(md_path, document.markdown(directory))
    write_text_atomic(html_path, document.html(title))
    return md_path, html_path


# ------------------------------------------------------------------------------------------ the figure canvas
DPI = 120


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a temporary file renamed over it), readable as an ordinary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make the figures private
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def new_figure(width: float, height: float):
    """A matplotlib Figure (inches) on its own Agg canvas with constrained layout: titles, tick labels and a
    legend placed `outside` are fitted without overlapping, and no pyplot state is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def panel_figure(n: int, *, per_row: int = 3, width: float = 4.6, height: float = 3.4):
    """A figure for `n` panels, `per_row` to a row: (figure, rows, columns)."""
    ncols = max(1, min(per_row, n))
    nrows = max(1, math.ceil(n / ncols))
    return new_figure(width * ncols + 2.0, height * nrows + 0.6), nrows, ncols


def save_figure(figure, path: Path) -> Path:
    """Render `figure` as PNG and write it atomically to `path`; returns the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")  # constrained layout fits everything in
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def figure_style():
    """seaborn's whitegrid style, as a context manager (`with figure_style(): ...`), leaving the global rc
    parameters as they were."""
    import seaborn as sns

    return sns.axes_style("whitegrid")


def palette(variants: list[str], baseline: str) -> dict[str, tuple]:
    """One colour per variant, the same in every figure of a report: the baseline black, the others tab10."""
    import seaborn as sns

    others = [v for v in variants if v != baseline]
    colours = sns.color_palette("tab10", max(len(others), 1))
    mapping = {v: colours[i % len(colours)] for i, v in enumerate(others)}
    mapping[baseline] = (0.1, 0.1, 0.1)
    return mapping


def legend_outside(figure, axes, title: str | None = None, order: list[str] | None = None, *,
                   loc: str = "outside right upper") -> None:
    """One legend for the whole figure, right of the plots, from every axes' labelled artists (the labels in
    `order` first, in that order); the axes' own legends are removed. `loc="outside right center"` keeps a
    long legend clear of a figure title that reaches over the plots."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels and not label.startswith("_"):
                handles.append(handle)
                labels.append(label)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if order:
        rank = {label: i for i, label in enumerate(order)}
        pairs = sorted(zip(handles, labels), key=lambda p: (rank.get(p[1], len(rank)), labels.index(p[1])))
        handles, labels = [h for h, _ in pairs], [lab for _, lab in pairs]
    if handles:
        figure.legend(handles, labels, loc=loc, title=title, frameon=False)


def draw(name: str, func, *args, **kwargs) -> tuple[Path | None, str | None]:
    """(path, None) from `func(*args, **kwargs)`, or (None, a one-line error): a figure that cannot be drawn is
    reported in the report's findings, never fatal to the report."""
    try:
        return func(*args, **kwargs), None
    except Exception as error:  # noqa: BLE001
        return None, f"figure {name} could not be drawn: {type(error).__name__}: {error}"
