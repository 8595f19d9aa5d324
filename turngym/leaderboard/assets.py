"""The leaderboard page's own style sheet and script, and the security policy that allows them.

The page has no other script or style: :func:`content_security_policy` allows exactly these two
by their SHA-256 hashes (no ``'unsafe-inline'``), nothing from other origins, no framing, no
forms and no plugins. The served page sends it as a header along with the other
:data:`SECURITY_HEADERS`; the exported file carries it in a ``<meta>`` element (which cannot
forbid framing: that needs the header).
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSS", "JS", "content_security_policy", "SECURITY_HEADERS"]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#1b1f24;background:#fff}
h1{margin-bottom:.2rem}.meta{color:#57606a;margin-top:0}
nav.metrics a{margin-right:.6rem}nav.metrics a[aria-current]{font-weight:bold;color:#1b1f24}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{padding:.3rem .6rem;border-bottom:1px solid #d0d7de;text-align:left;white-space:nowrap}
td.num,.env-table th:first-child,.env-table th:nth-child(n+4){text-align:right}
td.num{font-variant-numeric:tabular-nums}.ci{color:#57606a}
tbody tr:nth-child(even){background:#f6f8fa}
table.leaderboard th button{all:unset;cursor:pointer}th[data-type=num]{text-align:right}
table.leaderboard th[aria-sort=ascending] button::after{content:" ▲"}
table.leaderboard th[aria-sort=descending] button::after{content:" ▼"}
.breakdown{display:flex;flex-wrap:wrap;gap:0 2rem}.charts{display:flex;flex-wrap:wrap;gap:1rem}
figure.chart{margin:0;width:min(100%,560px)}figcaption{font-weight:bold}
svg.curve-chart{width:100%;height:auto}
.axis{stroke:#57606a}.grid{stroke:#eaeef2}.curve{fill:none;stroke-width:2}
.xtick,.xlabel{text-anchor:middle;font-size:11px;fill:#57606a}
.ytick{text-anchor:end;font-size:11px;fill:#57606a}.ylabel{text-anchor:middle;font-size:11px}
ul.legend{list-style:none;padding:0;margin:.2rem 0}ul.legend li{display:inline-block;
margin-right:1rem}svg.swatch{width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
.empty,.note{color:#57606a;font-style:italic}
"""

# Sorts a leaderboard table by the clicked column; a second click reverses. Numeric columns
# compare the exact numbers kept in data-value, missing values always sort last, and ties fall
# back to the rank so the order is deterministic. Every env set has its own table.
JS = """
(function () {
  function setUp(table) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    function value(row, col, numeric) {
      var cell = row.cells[col];
      if (!numeric) return cell.textContent.trim();
      var raw = cell.getAttribute("data-value");
      return raw === null || raw === "" ? null : Number(raw);
    }
    function sortBy(col) {
      var th = headers[col];
      var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
      var numeric = th.getAttribute("data-type") === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = value(a, col, numeric), y = value(b, col, numeric);
        if (x === null || y === null) return (x === null) - (y === null);
        var c = numeric ? x - y : x.localeCompare(y, undefined, {numeric: true});
        if (dir === "descending") c = -c;
        return c || value(a, 0, true) - value(b, 0, true);
      });
      rows.forEach(function (row) { body.appendChild(row); });
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir);
    }
    headers.forEach(function (th, col) {
      th.addEventListener("click", function () { sortBy(col); });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.leaderboard"), setUp);
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(*, header: bool = True) -> str:
    """The page's Content-Security-Policy: its own script and style only, by hash.

    Args:
        header: Include ``frame-ancestors 'none'`` (only honoured in a header, not a meta).
    """
    policy = (f"default-src 'none'; script-src {_sha256(JS)}; style-src {_sha256(CSS)}; "
              "img-src data:; base-uri 'none'; form-action 'none'; object-src 'none'")  # fmt: skip
    return policy + ("; frame-ancestors 'none'" if header else "")


SECURITY_HEADERS = {
    "Content-Security-Policy": content_security_policy(),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""Headers on every response of ``turngym leaderboard serve``."""
