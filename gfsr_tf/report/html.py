"""report.html: the summary tables, every figure (embedded, so the one file reads offline) and
the run's configuration."""
from __future__ import annotations

import json
from pathlib import Path

from .io import clean
from .markdown import summary_markdown


def _markdown_to_html(text: str) -> str:
    """The subset of Markdown that summary_markdown writes: headings, tables, quotes, paragraphs,
    `code` and **bold**."""
    import html
    import re

    def inline(s):
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    out, table = [], []

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0])
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r)
                                           + "</tr>" for r in cells[1:]) + "</table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("> "):
            out.append(f"<p class='warning'>{inline(line[2:])}</p>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def write_html(report: dict, run_root, figures) -> Path:
    """runs/<name>/report.html: the summary tables, every figure (embedded, so the one file reads
    offline) and the run's configuration."""
    import base64
    import html
    run_root = Path(run_root)
    parts = [_markdown_to_html(summary_markdown(report))]
    for name, caption in figures:
        path = run_root / name
        if path.exists():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{name}'>"
                         f"<figcaption>{html.escape(caption)} ({name})</figcaption></figure>")
    # folded: the full configuration is for the reader who looks for it, not a third of the page
    parts.append("<details><summary>Configuration (the run's <code>config.json</code>)</summary>"
                 "<pre>" + html.escape(json.dumps(clean(report["config"]), indent=2))
                 + "</pre></details>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
             ".warning{background:#fff3cd;padding:6px 10px;border-left:4px solid #e0a800;"
             "overflow-wrap:anywhere}td{overflow-wrap:anywhere}summary{cursor:pointer}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(report['config']['name'])}</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    path = run_root / "report.html"
    path.write_text(page)
    return path
