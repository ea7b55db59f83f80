"""A small builder for self-contained HTML reports: sections, tables, embedded PNG figures, inline CSS.

The page fetches nothing: no external stylesheet, script, font or image. Figures are PNG bytes embedded as
``data:image/png;base64`` URIs, so the file can be mailed or archived and opens the same anywhere. Every piece
of text is HTML-escaped here; callers pass plain text, never markup, except through the block helpers below
(which return already-escaped fragments).

Each :class:`Section` carries a heading that says what the section shows and a one-line "how to read it", for
readers who never run Python (DESIGN.md "Users"). Section ids are the anchors of the table of contents and
what the browser tests look for.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

STYLESHEET = """
:root { --ink: #1f2933; --muted: #5f6c7b; --line: #d9e2ec; --accent: #1f5f8b; --warn: #b54708; --bad: #b42318;
        --good: #067647; --paper: #ffffff; --shade: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC",
       "Microsoft YaHei", sans-serif; color: var(--ink); background: var(--shade); }
header.report { background: var(--accent); color: #fff; padding: 24px 32px; }
header.report h1 { margin: 0 0 4px; font-size: 26px; }
header.report p { margin: 0; opacity: .9; }
nav.toc { background: var(--paper); border-bottom: 1px solid var(--line); padding: 10px 32px; font-size: 14px;
          display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav.toc a { color: var(--accent); text-decoration: none; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
section.block { background: var(--paper); border: 1px solid var(--line); border-radius: 6px; margin: 18px 0;
                padding: 18px 22px; }
section.block h2 { margin: 0 0 4px; font-size: 20px; }
p.how { margin: 0 0 14px; color: var(--muted); font-style: italic; }
p.how strong { font-style: normal; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--shade); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
figure { margin: 10px 0 16px; display: inline-block; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption { font-size: 13px; color: var(--muted); max-width: 560px; }
.callout { border-left: 4px solid var(--accent); background: var(--shade); padding: 8px 12px; margin: 10px 0; }
.callout.warn { border-color: var(--warn); }
.callout.bad { border-color: var(--bad); }
.callout.good { border-color: var(--good); }
.cards { display: flex; flex-wrap: wrap; gap: 14px; }
.card { flex: 1 1 340px; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; background: #fff; }
.card h3 { margin: 0 0 6px; font-size: 16px; }
.cards.wide .card { flex-basis: 100%; }
.kv th { width: 230px; }
details summary { cursor: pointer; font-weight: 600; margin: 8px 0; }
.flag-ok { color: var(--good); font-weight: 600; }
.flag-warn { color: var(--warn); font-weight: 600; }
.flag-bad { color: var(--bad); font-weight: 600; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 12px; }
@media print { nav.toc { display: none; } section.block { break-inside: avoid; } }
"""


@dataclass(frozen=True)
class Section:
    """One titled part of a report: ``title`` says what it shows, ``how_to_read`` how to read it.

    ``blocks`` are HTML fragments made by the helpers of this module (already escaped).
    """

    id: str
    title: str
    how_to_read: str
    blocks: tuple[str, ...] = ()


@dataclass
class Report:
    """A whole report page: a header, a table of contents and its sections in order."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    lang: str = "en"

    def add(self, section: Section) -> None:
        if any(s.id == section.id for s in self.sections):
            raise ValueError(f"duplicate section id {section.id!r}")
        self.sections.append(section)

    @property
    def section_ids(self) -> list[str]:
        return [s.id for s in self.sections]


def esc(text: object) -> str:
    """Text made safe for HTML (quotes included)."""
    return html.escape("" if text is None else str(text), quote=True)


def render(report: Report, footer: str = "") -> str:
    """The report as one self-contained HTML document (UTF-8)."""
    toc = "\n".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in report.sections)
    body = "\n".join(_render_section(s) for s in report.sections)
    sub = f"<p>{esc(report.subtitle)}</p>" if report.subtitle else ""
    foot = f"<footer>{esc(footer)}</footer>" if footer else ""
    return (
        f'<!DOCTYPE html>\n<html lang="{esc(report.lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # Forbid every network fetch: a report must render from the file alone.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">\n"
        f"<title>{esc(report.title)}</title>\n<style>{STYLESHEET}</style>\n</head>\n<body>\n"
        f'<header class="report"><h1>{esc(report.title)}</h1>{sub}</header>\n'
        f'<nav class="toc">{toc}</nav>\n<main>\n{body}\n</main>\n{foot}\n</body>\n</html>\n'
    )


def _render_section(section: Section) -> str:
    return (
        f'<section class="block" id="{esc(section.id)}">\n<h2>{esc(section.title)}</h2>\n'
        f'<p class="how"><strong>How to read it:</strong> {esc(section.how_to_read)}</p>\n'
        + "\n".join(section.blocks)
        + "\n</section>"
    )


def write_html(text: str, path: Path | str) -> Path:
    """Write the document atomically (a reader never sees half a report); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------------------- blocks
def paragraph(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def bullet_list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def callout(text: str, level: str = "info") -> str:
    """A highlighted note; ``level`` is info, good, warn or bad (border colour)."""
    if level not in ("info", "good", "warn", "bad"):
        raise ValueError(f"callout level must be info, good, warn or bad, got {level!r}")
    return f'<div class="callout {level}">{esc(text)}</div>'


def details(summary: str, blocks: Sequence[str]) -> str:
    """A collapsible part (closed until clicked), for long reference tables."""
    return f"<details><summary>{esc(summary)}</summary>" + "".join(blocks) + "</details>"


def heading(text: str, level: int = 3) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


def figure(png: bytes, alt: str, caption: str = "") -> str:
    """A PNG embedded as a data URI, with alt text and an optional caption."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"figure {alt!r}: the bytes are not a PNG image")
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">{cap}</figure>'


def cards(items: Sequence[str], wide: bool = False) -> str:
    """Cards side by side (each item an HTML fragment, e.g. from :func:`card`); ``wide``: one per row."""
    return f'<div class="cards{" wide" if wide else ""}">' + "".join(items) + "</div>"


def card(title: str, blocks: Sequence[str], card_id: str | None = None) -> str:
    ident = f' id="{esc(card_id)}"' if card_id else ""
    return f'<div class="card"{ident}><h3>{esc(title)}</h3>' + "".join(blocks) + "</div>"


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column table of labels and values."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


@dataclass(frozen=True)
class Cell:
    """A table cell with its own text and HTML attributes (``data-*`` for machine-readable values)."""

    text: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    numeric: bool = False
    style: str = ""


def format_value(value: object, fmt: str | Callable[[object], str] | None = None) -> str:
    """A value as table text: NaN/None as an en dash, floats to 4 significant decimals unless ``fmt`` says."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "–"
    if callable(fmt):
        return fmt(value)
    if fmt is not None:
        return format(value, fmt)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4f}"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


def table(
    frame: pd.DataFrame,
    *,
    formats: Mapping[str, str | Callable[[object], str]] | None = None,
    headers: Mapping[str, str] | None = None,
    caption: str = "",
    table_id: str | None = None,
    shade: Mapping[str, str] | None = None,
) -> str:
    """A frame as an HTML table (index not shown: reset it first when it carries information).

    ``formats`` per column (a format spec like ``".1%"`` or a function), ``headers`` renames columns for display,
    ``shade`` maps a numeric column to a colour: each cell gets a background whose strength follows the value
    (a heat map in the table itself).
    """
    formats = formats or {}
    headers = headers or {}
    shade = shade or {}
    columns = list(frame.columns)
    head = "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in columns)
    scale = {}
    for column, colour in shade.items():
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        top = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0.0
        scale[column] = (colour, values, top)
    body = []
    for i, row in enumerate(frame.itertuples(index=False, name=None)):  # display rows only, never customers
        cells = []
        for column, value in zip(columns, row, strict=True):
            numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            style = ""
            if column in scale:
                colour, values, top = scale[column]
                strength = 0.0 if top == 0 or not np.isfinite(values[i]) else abs(values[i]) / top
                style = f"background: {blend(colour, strength)}"
            cells.append(_cell_html(Cell(format_value(value, formats.get(column)), numeric=numeric, style=style)))
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def cell_table(header: Sequence[str], rows: Sequence[Sequence[Cell | str]], *, caption: str = "",
               table_id: str | None = None) -> str:
    """A table from explicit cells (for values tests read back through ``data-*`` attributes)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(_cell_html(c if isinstance(c, Cell) else Cell(str(c))) for c in row) + "</tr>"
        for row in rows
    )
    ident = f' id="{esc(table_id)}"' if table_id else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell_html(cell: Cell) -> str:
    attrs = "".join(f' {esc(k)}="{esc(v)}"' for k, v in cell.attrs.items())
    klass = ' class="num"' if cell.numeric else ""
    style = f' style="{esc(cell.style)}"' if cell.style else ""
    return f"<td{klass}{attrs}{style}>{esc(cell.text)}</td>"


def blend(hex_colour: str, strength: float) -> str:
    """``hex_colour`` mixed with white: strength 0 is white, 1 the colour at 70% (text stays readable)."""
    colour = hex_colour.lstrip("#")
    if len(colour) != 6:
        raise ValueError(f"shade colour must be #rrggbb, got {hex_colour!r}")
    rgb = [int(colour[i : i + 2], 16) for i in (0, 2, 4)]
    mix = 0.7 * min(max(strength, 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * mix) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"
