"""The page's inline style sheet and its Content-Security-Policy (nothing may be fetched)."""

from __future__ import annotations

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --fg: #1d2330; --muted: #5b6474; --line: #d5d9e0; --panel: #f6f7f9;
  --ok: #2e7d32; --bad: #c62828; --warn: #b26a00; --info: #1565c0; --fold: #ef6c00; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: #fff; margin: 0 auto; padding: 24px; max-width: 1180px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
code, td { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 12.5px; }
.prose, td.why { font-family: inherit; font-size: 13px; }
.meta { color: var(--muted); margin: 2px 0; }
.verdict { border-left: 6px solid var(--info); background: var(--panel);
  padding: 10px 14px; margin: 12px 0; }
.verdict.double-fault, .verdict.triple-fault, .verdict.guest-exited { border-color: var(--bad); }
.verdict.hardware-interrupt-on-vector-8, .verdict.reset-requested,
.verdict.kernel-never-started { border-color: var(--warn); }
.verdict.no-fault { border-color: var(--ok); }
.verdict .outcome { font-weight: 700; text-transform: uppercase; letter-spacing: .04em;
  font-size: 12px; }
.verdict .text { font-size: 16px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th { text-align: left; font-size: 12px; color: var(--muted);
  border-bottom: 2px solid var(--line); padding: 4px 6px; }
td { border-bottom: 1px solid var(--line); padding: 3px 6px; vertical-align: top; }
tr.dim td { color: #9aa1ad; }
tr.problem.error td, tr.problem.matters td { background: #ffebee; }
tr.problem.warning td { background: #fff8e1; }
tr.problem.info td { background: #e3f2fd; }
.sev { font-weight: 700; font-size: 11px; text-transform: uppercase; }
.sev.error, .sev.matters { color: var(--bad); }
.sev.warning { color: var(--warn); }
.sev.info, .sev.harmless { color: var(--ok); }
.badge { display: inline-block; border-radius: 3px; padding: 0 5px; font-size: 11px;
  font-weight: 700; border: 1px solid currentColor; margin: 0 4px 2px 0; white-space: nowrap; }
.badge.stop { color: var(--bad); }
.badge.folded { color: var(--fold); }
.badge.delivered { color: var(--ok); }
.badge.context { color: var(--muted); }
.badge.conflict { color: var(--bad); }
.badge.triple { color: #fff; background: var(--bad); border-color: var(--bad); }
ol.causes > li { margin-bottom: 12px; }
.cause-id { font-family: ui-monospace, monospace; color: var(--info); font-weight: 700; }
.fix { border-left: 4px solid var(--ok); background: #f1f8e9; padding: 4px 10px;
  margin: 4px 0; }
ul.evidence { margin: 4px 0; padding-left: 20px; }
.chips code { background: var(--panel); border: 1px solid var(--line); border-radius: 3px;
  padding: 0 4px; margin-right: 4px; }
svg { max-width: 100%; height: auto; display: block; margin: 6px 0; }
svg text { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 6px 0; font-size: 12.5px; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px;
  margin-right: 4px; border: 1px solid #607d8b; }
.first-failure { border-left: 4px solid var(--bad); background: #ffebee; padding: 4px 10px;
  margin: 4px 0; }
h3 { font-size: 14px; margin: 14px 0 2px; }
tr.check.ok td:first-child { color: var(--ok); font-weight: 700; }
tr.check.problem td:first-child { color: var(--bad); font-weight: 700; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""
