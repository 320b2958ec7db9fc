"""The report's style sheet, inlined in the page (the file opens offline)."""

from __future__ import annotations

CSS = """
:root{--ink:#1d2330;--muted:#667085;--line:#e4e7ec;--chosen:#eaf1fb;--accent:#1f5fbf}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",
"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;color:var(--ink);background:#f7f8fa}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 24px}
header{padding-top:28px}
h1{font-size:1.7rem;margin:0 0 4px}
h2{font-size:1.3rem;margin:0 0 4px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:1.05rem;margin:20px 0 6px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;
margin:18px 0}
.lead{color:var(--muted);margin:4px 0 14px}
.meta,.muted{color:var(--muted)}
nav ol{columns:2;padding-left:20px;margin:10px 0 0}
nav a{color:var(--accent);text-decoration:none}
.badge{background:var(--accent);color:#fff;border-radius:10px;padding:1px 8px;font-size:.8em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;
margin-bottom:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;background:#fcfcfd}
.card .label{color:var(--muted);font-size:.85em}
.card .value{font-size:1.6rem;font-weight:700}
.card .sub{color:var(--muted);font-size:.85em}
.tier-share{font-size:1.05rem;font-weight:600;margin-top:2px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:.9em}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
thead th{background:#f2f4f7}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{font-weight:700;color:#0b6b3a}
td.best::after{content:" ▲";font-size:.7em}
tr.chosen{background:var(--chosen)}
tr.oracle{font-style:italic;color:var(--muted)}
tr.obs-partial,tr.obs-none{color:var(--muted)}
tr.floor{font-style:italic;color:var(--muted)}
tr.total{font-weight:600;border-top:2px solid var(--line)}
h4{font-size:.98rem;margin:16px 0 4px}
.ci{color:var(--muted);font-size:.85em}
.multiples{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:8px}
table.plan-sample td:last-child{min-width:260px}
dl.metrics{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:.9em}
dl.metrics dt{font-weight:600}
dl.metrics dd{margin:0;color:var(--muted)}
figure{margin:10px 0;text-align:center}
figure svg{max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:.85em}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
.note{background:#fff8e6;border-left:4px solid #e6a23c;padding:6px 10px;margin:6px 0}
ul.notes{padding-left:20px}
.tier{border-radius:8px;padding:0 7px;color:#fff;font-size:.85em}
.tier-high{background:#c0392b}.tier-medium{background:#e6a23c}.tier-low{background:#3c9d5d}
table.customers td{min-width:60px}
footer{color:var(--muted);font-size:.85em;padding-bottom:30px}
"""
