"""A report as data (headings, paragraphs, tables, images), rendered to Markdown and HTML.

>>> doc = Document("Run")
>>> doc.table([{"policy": "full", "fits": True}])
>>> print(doc.markdown().splitlines()[2:5])
['| policy | fits |', '| --- | --- |', '| full | yes |']
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from edgetrain.io.atomic import write_text


def format_cell(value) -> str:
    """How a value appears in a table: booleans as yes/no, floats with 4 significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def table(self, rows: list[dict]) -> None:
        self.blocks.append(("table", rows))

    def image(self, path: str, caption: str) -> None:
        self.blocks.append(("image", (path, caption)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            out += _MARKDOWN[kind](value) + [""]
        return "\n".join(out)

    def html(self) -> str:
        body = "\n".join(_HTML[kind](value) for kind, value in self.blocks)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>"
                f"{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write report.md and report.html into folder (atomically)."""
        folder = Path(folder)
        return (write_text(folder / "report.md", self.markdown()),
                write_text(folder / "report.html", self.html()))


def _md_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(format_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return lines


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(format_cell(r.get(c, '')))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_MARKDOWN = {
    "heading": lambda t: [f"## {t}"],
    "paragraph": lambda t: [t],
    "code": lambda t: ["```", t, "```"],
    "table": _md_table,
    "image": lambda v: [f"![{v[1]}]({v[0]})"],
}

_HTML = {
    "heading": lambda t: f"<h2>{html.escape(t)}</h2>",
    "paragraph": lambda t: f"<p>{html.escape(t)}</p>",
    "code": lambda t: f"<pre>{html.escape(t)}</pre>",
    "table": _html_table,
    "image": lambda v: (f"<figure><img src='{html.escape(v[0])}' alt='{html.escape(v[1])}'>"
                        f"<figcaption>{html.escape(v[1])}</figcaption></figure>"),
}

_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
        "text-align:right}th{background:#eee}img{max-width:100%}pre{background:#f6f6f6;"
        "padding:.5em}")
