"""Text that the book's pages show: numbers glued into the Markdown, and the claims ledger as HTML.

- :func:`glue_values` glues a dict of key numbers (``name → value``) at once, so a chapter glues what a library
  function returned in one call; the Markdown cells paste each one by name with myst-nb's ``glue`` role.
- :func:`threshold_text` writes a threshold as the prose does (``1e-6``, not Python's ``1e-06``), so a printed
  or glued threshold reads the same as the text around it.
- :func:`ledger_html` renders a :func:`equiv.claims.claims_ledger` table as the ledger page's HTML table (three
  columns that fit the page without horizontal scrolling).
"""

from __future__ import annotations

import html
from typing import Any, Mapping

import pandas as pd

__all__ = ["glue_values", "threshold_text", "ledger_html", "LEDGER_COLUMNS"]

#: the columns of a :func:`equiv.claims.claims_ledger` table that :func:`ledger_html` shows
LEDGER_COLUMNS = ("claim", "id", "chapter", "evidence", "paper", "scale", "ours", "verdict", "at_this_scale")


def glue_values(values: Mapping[str, Any], prefix: str = "") -> None:
    """Glue every ``name → value`` of ``values`` as ``prefix + name`` (myst-nb's ``glue``, ``display=False``):
    nothing is shown where the call stands, the Markdown shows each value where it names it."""
    from myst_nb import glue

    for name, value in values.items():
        glue(f"{prefix}{name}", value, display=False)


def threshold_text(value: float) -> str:
    """``value`` in ``:g`` notation without the exponent's sign padding: ``1e-06`` → ``"1e-6"``, ``1e-12`` →
    ``"1e-12"``, ``0.5`` → ``"0.5"``."""
    text = f"{value:g}"
    mantissa, sep, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if sep else text


def _chapter_link(name: Any) -> str:
    return f'<a href="{html.escape(name)}.html">{html.escape(name)}</a>' if isinstance(name, str) \
        else "(another part of the book)"


def ledger_html(ledger: pd.DataFrame) -> str:
    """The ledger as one HTML table of three columns — claim and evidence (with a link to its chapter), the
    paper's value beside ours, the verdict with what the rule says at this scale — in a ``<div class="ledger">``,
    as wide as the page and with fixed column widths. Every text from the table is HTML-escaped."""
    missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if missing:
        raise ValueError(f"ledger table lacks column(s) {', '.join(missing)}; it has {', '.join(ledger.columns)}")

    def cell(*parts: str) -> str:
        return "<br>".join(parts)

    shown = pd.DataFrame({
        "claim and evidence": [cell(f"<b>{c}</b> · <i>{i}</i> · {_chapter_link(ch)}", html.escape(w))
                               for c, i, ch, w in zip(ledger["claim"], ledger["id"], ledger["chapter"],
                                                      ledger["evidence"])],
        "paper · ours": [cell(f"<i>paper:</i> {html.escape(p)}", f"<i>ours ({html.escape(s)}):</i> {html.escape(o)}")
                         for p, s, o in zip(ledger["paper"], ledger["scale"], ledger["ours"])],
        "verdict": [cell(f"<b>{html.escape(v)}</b>", html.escape(a))
                    for v, a in zip(ledger["verdict"], ledger["at_this_scale"])],
    })
    table = shown.to_html(index=False, escape=False, col_space={"verdict": "12em"})
    table = table.replace('<table border="1" class="dataframe">',
                          '<table class="dataframe" style="width:100%; table-layout:fixed">')
    return f'<div class="ledger">{table}</div>'
