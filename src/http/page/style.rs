//! The status pages' stylesheet, inlined in every page (nothing is loaded from elsewhere):
//! light and dark colours, the bars, narrow screens.

pub(super) const STYLE: &str = "\
:root{--ok:#2e7d32;--ok2:#66bb6a;--warn:#f9a825;--warn2:#ef6c00;--bad:#c62828;--idle:#9e9e9e;\
--maint:#1565c0;--bg:#fff;--fg:#1d1d1f;--mute:#666;--line:#e2e2e2;--card:#f7f7f8}\
@media (prefers-color-scheme:dark){:root{--bg:#141414;--fg:#ececec;--mute:#a0a0a0;\
--line:#333;--card:#1d1d1d}}\
*{box-sizing:border-box}\
body{margin:0 auto;max-width:980px;padding:16px;background:var(--bg);color:var(--fg);\
font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
a{color:inherit}h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .5em}\
h2 small{font-weight:normal;color:var(--mute);font-size:.8em;margin-left:.5em}\
.banner{padding:12px 16px;border-radius:8px;color:#fff;font-weight:600;margin:.5em 0}\
.banner.up{background:var(--ok)}.banner.down{background:var(--bad)}\
.banner.maint{background:var(--maint)}\
.note,footer,.axis{color:var(--mute);font-size:.85em}footer{margin-top:2em}\
ul.targets{list-style:none;margin:0;padding:0}\
li.target{background:var(--card);border:1px solid var(--line);border-radius:8px;\
padding:10px 12px;margin:0 0 8px}\
.line{display:flex;align-items:center;gap:10px;flex-wrap:wrap}\
.name{font-weight:600;flex:1 1 12em;overflow-wrap:anywhere}\
.rt,.pct{color:var(--mute);font-variant-numeric:tabular-nums;min-width:4.5em;text-align:right}\
.dot{width:10px;height:10px;border-radius:50%;background:var(--idle);flex:none}\
.up .dot{background:var(--ok)}.down .dot{background:var(--bad)}\
.maint .dot{background:var(--maint)}.error .dot{background:var(--warn2)}\
.state{font-size:.85em;font-weight:600}.down .state{color:var(--bad)}\
.held{font-size:.85em;color:var(--mute)}\
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;\
background:var(--idle);font-weight:600;margin:0}\
.badge.up{background:var(--ok)}.badge.down{background:var(--bad)}\
.badge.maint{background:var(--maint)}.badge.error{background:var(--warn2)}\
.bars{display:flex;gap:2px;height:26px;margin-top:8px}\
.bars i{flex:1;border-radius:2px;background:var(--line)}\
.bars i.u4{background:var(--ok)}.bars i.u3{background:var(--ok2)}\
.bars i.u2{background:var(--warn)}.bars i.u1{background:var(--warn2)}\
.bars i.u0{background:var(--bad)}.bars i:hover{opacity:.7}\
.axis{display:flex;justify-content:space-between;margin-top:2px}.axis .last30{display:none}\
table.incidents{border-collapse:collapse;width:100%;font-size:.9em}\
.incidents th,.incidents td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);\
vertical-align:top}.incidents td:last-child{overflow-wrap:anywhere}\
tr.open td{color:var(--bad)}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:1em 0}\
dl.facts dt{color:var(--mute)}dl.facts dd{margin:0;overflow-wrap:anywhere}\
ul.uptimes{list-style:none;padding:0;display:flex;gap:24px;flex-wrap:wrap;margin:0}\
ul.uptimes b{display:block;font-size:1.3em}\
svg.chart{width:100%;height:auto;display:block}\
svg.chart .grid{stroke:var(--line)}svg.chart text{fill:var(--mute);font-size:11px}\
svg.chart .avg{fill:none;stroke:var(--maint);stroke-width:2}\
svg.chart .pt{fill:var(--maint)}svg.chart .fail{fill:var(--bad)}\
svg.chart .hover{fill:transparent}svg.chart .hover:hover{fill:rgba(128,128,128,.15)}\
.back{margin:0}\
@media (max-width:640px){body{padding:10px}.bars i:nth-child(-n+60){display:none}\
.axis .all{display:none}.axis .last30{display:inline}.rt{display:none}\
.incidents th:nth-child(4),.incidents td:nth-child(4){display:none}}";
