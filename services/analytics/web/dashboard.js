/* 客诉运营看板: counters from GET /v1/kpi/summary, live events from the SSE
 * stream GET /v1/stream (resumes by itself with Last-Event-ID), KPI tiles
 * (GET /v1/kpi, then all of them in one GET /v1/kpis), the trend per day or
 * hour of the complaint counts (GET /v1/dashboard/trend) or of a chosen KPI
 * (GET /v1/kpi/{name}/trend), rankings (GET /v1/rankings), a breakdown by
 * region/channel/business type (GET /v1/kpi/{name}?group_by=), distributions,
 * hot issues, the ledger and supervision records (GET /v1/reports/…), each
 * with its CSV export. Every view is one fetch per refresh and never has two
 * in flight; the API scopes everything to the token's region.
 * The token comes from ?token=… once and is kept in localStorage;
 * EventSource and the CSV links cannot send headers, so they carry it as
 * ?access_token=. */
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  if (params.get("token")) localStorage.setItem("kesu.token", params.get("token"));
  var token = localStorage.getItem("kesu.token") || "";
  var region = params.get("region") || localStorage.getItem("kesu.region") || "";
  var $ = function (id) { return document.getElementById(id); };
  var LABELS = {
    ComplaintReceived: "受理", WorkOrderCreated: "建单", WorkOrderDispatched: "派单",
    WorkOrderClosed: "结办", SlaWarning: "预警", SlaBreached: "超时", SlaEscalated: "升级"
  };
  var DIM_LABELS = { region: "地区", channel: "渠道", business_type: "业务类型", unit: "责任单位" };
  var STEP_LABELS = { accept: "整理", review: "复核", handle: "处理", feedback: "反馈", answer: "答复",
    callback: "回访", arrive: "上门", fix: "修复" };
  var EVENT_LABELS = { warning: "预警", breached: "超时", escalated: "升级" };
  /* Names for the codes the API answers with: channels, tiers, streams here;
   * units, regions, business and problem types from the reference data
   * (GET /v1/dashboard/names/…, loaded once). */
  var NAMES = {
    channel: { hotline: "热线", gm_hotline: "总经理热线", hall: "营业厅", face_to_face: "当面",
      club: "俱乐部", account_manager: "客户经理", letter: "信函", fax: "传真", website: "网站",
      app: "客户端", sms: "短信", email: "电子邮件", comment_box: "意见箱", media: "媒体",
      upper_referral: "上级转办", regulator: "管局", consumer_association: "消协", agent: "代理商",
      employee: "员工" },
    tier: { general: "一般", provincial: "省级", national: "集团级" },
    stream: { ordinary: "普通", escalated: "升级", appeal: "申诉" },
    unit: {}, region: { "000000": "全国" }, business_type: {}, problem_type: {}
  };
  function label(dim, code) {
    if (code === "" || code === null || code === undefined) return "（未填）";
    var n = NAMES[dim] && NAMES[dim][code];
    return n ? n : String(code);
  }
  function loadNames() {
    return Promise.all([["unit", "units"], ["region", "regions"], ["business_type", "business_types"],
      ["problem_type", "problem_types"]]
      .map(function (x) {
        return fetch("/v1/dashboard/names/" + x[1], { headers: { Authorization: "Bearer " + token } })
          .then(function (r) { return r.ok ? r.text() : ""; })
          .then(function (text) {
            /* plain CSV without quoting: code,name,…; '#' lines are comments */
            text.split(/\r?\n/).filter(function (l) { return l && l[0] !== "#"; }).slice(1)
              .forEach(function (l) { var f = l.split(","); if (f.length > 1) NAMES[x[0]][f[0]] = f[1]; });
          });
      })).catch(function () { /* codes stay codes */ });
  }
  var FIELDS = ["received", "dispatched", "closed", "warned", "breached"];
  var SLOW_MS = 15000; /* the heavier views refresh on events at most this often */

  function showError(msg) { $("error").textContent = msg || ""; }

  function api(path) {
    return fetch(path, { headers: { Authorization: "Bearer " + token } }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error((j.error && j.error.message) || ("HTTP " + r.status));
        return j;
      });
    });
  }
  function qs(o) {
    var p = new URLSearchParams();
    if (region) p.set("region", region);
    Object.keys(o || {}).forEach(function (k) { if (o[k] !== undefined && o[k] !== "") p.set(k, o[k]); });
    var s = p.toString();
    return s ? "?" + s : "";
  }
  function csvHref(path, o) {
    var q = Object.assign({}, o || {}, { format: "csv", access_token: token });
    return path + qs(q);
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function fillTable(id, rows, cols, empty, key) {
    var tb = $(id).tBodies[0];
    tb.textContent = "";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      if (key) tr.dataset.key = key(r);
      cols.forEach(function (c) { cell(tr, typeof c === "function" ? c(r) : r[c]); });
      tb.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      cell(tr, empty || "暂无数据", "empty").colSpan = cols.length;
      tb.appendChild(tr);
    }
  }
  function chartOn(id) {
    if (!window.echarts) return null;
    return echarts.getInstanceByDom($(id)) || echarts.init($(id));
  }

  /* A view: one fetch per refresh, never two in flight (a refresh asked for
   * meanwhile runs once after). */
  function view(name, load) {
    var busy = false, again = false;
    function run() {
      if (busy) { again = true; return; }
      busy = true;
      Promise.resolve().then(load)
        .catch(function (e) { showError(name + "读取失败：" + e.message); })
        .then(function () { busy = false; if (again) { again = false; run(); } });
    }
    return run;
  }

  /* --- counters -------------------------------------------------------- */
  var refreshCounters = view("计数", function () {
    return api("/v1/kpi/summary" + qs()).then(function (s) {
      FIELDS.forEach(function (f) { $(f).textContent = String(s[f]); });
    });
  });

  /* --- KPI definitions, tiles ------------------------------------------ */
  var defs = [], defByName = {};
  /* the dimensions a KPI can be grouped by (loaded-data KPIs have fewer) */
  function dimsOf(k) {
    if (k.name === "complaint_rate") return ["region", "business_type"];
    if (k.name === "hotline_service_level" || k.name.indexOf("agent_") === 0) return ["region", "unit"];
    return ["region", "unit", "channel", "business_type"];
  }
  /* keeps the dimension select to what the chosen KPI supports */
  function fitDims(kpiSel, bySel) {
    var k = defByName[$(kpiSel).value];
    if (!k) return;
    var ok = dimsOf(k), sel = $(bySel);
    Array.prototype.forEach.call(sel.options, function (o) { o.disabled = ok.indexOf(o.value) < 0; });
    if (ok.indexOf(sel.value) < 0) sel.value = ok[0];
  }
  function lowerIsBetter(k) {
    return k.unit === "seconds" || k.unit === "count" || k.name === "complaint_rate";
  }
  function fmt(k, v) {
    if (v === null || v === undefined) return "–";
    if (k.unit === "seconds") return (v / 3600).toFixed(1) + " 小时";
    if (k.unit === "count") return String(v) + " 件";
    if (v > 0 && v < 0.001) return "百万分之" + (v * 1e6).toFixed(2);
    return (v * 100).toFixed(1) + "%";
  }
  function change(k, cur, old) {
    if (cur === null || cur === undefined || old === null || old === undefined) return "–";
    var d = cur - old;
    var tiny = k.unit === "ratio" && Math.max(Math.abs(cur), Math.abs(old)) < 0.001;
    var s = tiny ? "百万分之" + (Math.abs(d) * 1e6).toFixed(2)
      : k.unit === "ratio" ? (Math.abs(d) * 100).toFixed(1) + "个百分点"
      : k.unit === "seconds" ? (Math.abs(d) / 3600).toFixed(1) + " 小时" : String(Math.abs(d)) + " 件";
    return d === 0 ? "持平" : (d > 0 ? "↑" : "↓") + s;
  }
  function tileFor(k) {
    var id = "kpi-" + k.name, tile = $(id);
    if (!tile) {
      tile = document.createElement("div"); tile.className = "tile"; tile.id = id;
      tile.dataset.kpi = k.name;
      var l = document.createElement("div"); l.className = "label"; l.textContent = k.title; l.title = k.formula;
      var v = document.createElement("div"); v.className = "value"; v.textContent = "–";
      var r = document.createElement("div"); r.className = "ref";
      var c = document.createElement("div"); c.className = "ref cmp";
      tile.append(l, v, r, c);
      $("kpis").appendChild(tile);
    }
    return tile;
  }
  /* res: the KPI's answer as GET /v1/kpi/{name} gives it, or {name, error} */
  function showTile(k, res) {
    var tile = tileFor(k);
    if (res.error) {
      tile.classList.add("na");
      tile.querySelector(".value").textContent = "–";
      tile.querySelector(".ref").textContent = "读取失败：" + res.error.message;
      return;
    }
    tile.classList.remove("na");
    var row = res.rows[0] || {}, prev = row.previous || {}, ly = row.last_year || {};
    tile.querySelector(".value").textContent = fmt(k, row.value);
    tile.dataset.value = row.value === null || row.value === undefined ? "" : String(row.value);
    tile.querySelector(".ref").textContent =
      (k.reference !== null ? "参考值 " + (lowerIsBetter(k) ? "≤ " : "≥ ") + fmt(k, k.reference) + " · " : "") +
      (row.numerator !== undefined ? row.numerator : 0) + "/" + (row.denominator || 0);
    tile.querySelector(".cmp").textContent = "环比 " + change(k, row.value, prev.value) +
      " · 同比 " + change(k, row.value, ly.value);
    var has = k.reference !== null && row.value !== null && row.value !== undefined;
    var bad = has && (lowerIsBetter(k) ? row.value > k.reference : row.value < k.reference);
    tile.classList.toggle("below", bad);
    tile.classList.toggle("good", has && !bad);
  }
  /* All tiles from one GET /v1/kpis (this month, 环比/同比) per refresh, on the
   * slow cadence. */
  var refreshTiles = view("指标", function () {
    defs.filter(function (k) { return !k.computable; }).forEach(function (k) {
      var tile = tileFor(k);
      tile.classList.add("na");
      tile.querySelector(".value").textContent = "暂不可计算";
      tile.querySelector(".ref").textContent = k.not_yet_computable || "";
    });
    var names = defs.filter(function (k) { return k.computable; }).map(function (k) { return k.name; });
    if (!names.length) return Promise.resolve();
    return api("/v1/kpis" + qs({ period: "month", names: names.join(",") })).then(function (res) {
      res.kpis.forEach(function (one) { if (defByName[one.name]) showTile(defByName[one.name], one); });
    });
  });

  /* --- trend ----------------------------------------------------------- */
  /* The count of complaints (received / closed / closed in limit, the default)
   * or one KPI (GET /v1/kpi/{name}/trend), per day or per hour. */
  function scaleOf(k) { return k.unit === "ratio" ? 100 : k.unit === "seconds" ? 1 / 3600 : 1; }
  function trendValue(k, v) {
    return v === null || v === undefined ? null : Math.round(v * scaleOf(k) * 1e6) / 1e6;
  }
  var refreshTrend = view("趋势", function () {
    var gran = $("trend-gran").value, k = defByName[$("trend-kpi").value];
    if (k) {
      return api("/v1/kpi/" + k.name + "/trend" + qs({ granularity: gran })).then(function (t) {
        var chart = chartOn("trend");
        $("trend").dataset.granularity = t.granularity;
        $("trend").dataset.kpi = k.name;
        $("trend").dataset.rows = JSON.stringify(t.rows);
        if (!chart) return;
        var unit = k.unit === "ratio" ? "%" : k.unit === "seconds" ? "小时" : "件";
        var s = { name: k.title, type: gran === "hour" ? "bar" : "line", connectNulls: false,
                  data: t.rows.map(function (r) { return trendValue(k, r.value); }) };
        if (k.reference !== null)
          s.markLine = { symbol: "none", data: [{ yAxis: trendValue(k, k.reference), name: "参考值" }],
                         label: { formatter: "参考值 {c}" + unit } };
        chart.setOption({
          tooltip: { trigger: "axis" },
          legend: { data: [k.title] },
          grid: { left: 50, right: 20, top: 40, bottom: 30 },
          xAxis: { type: "category", data: t.rows.map(function (r) { return gran === "hour" ? r.t : r.t.slice(5); }) },
          yAxis: { type: "value", name: unit },
          series: [s]
        }, true);
      });
    }
    return api("/v1/dashboard/trend" + qs({ granularity: gran })).then(function (t) {
      var chart = chartOn("trend");
      $("trend").dataset.granularity = t.granularity;
      $("trend").dataset.kpi = "";
      $("trend").dataset.rows = JSON.stringify(t.rows);
      if (!chart) return;
      var series = [["received", "受理"], ["closed", "已结办"], ["closed_in_limit", "按时办结"]];
      chart.setOption({
        tooltip: { trigger: "axis" },
        legend: { data: series.map(function (s) { return s[1]; }) },
        grid: { left: 40, right: 20, top: 40, bottom: 30 },
        xAxis: { type: "category", data: t.rows.map(function (r) { return gran === "hour" ? r.t : r.t.slice(5); }) },
        yAxis: { type: "value", minInterval: 1 },
        series: series.map(function (s) {
          return { name: s[1], type: gran === "hour" ? "bar" : "line", data: t.rows.map(function (r) { return r[s[0]]; }) };
        })
      }, true);
    });
  });

  /* --- rankings -------------------------------------------------------- */
  var refreshRankings = view("排名", function () {
    var k = defByName[$("rank-kpi").value], by = $("rank-by").value;
    if (!k) return;
    var q = { kpi: k.name, by: by };
    $("rank-csv").href = csvHref("/v1/rankings", q);
    return api("/v1/rankings" + qs(q)).then(function (res) {
      fillTable("rank-table", res.rows, ["rank", function (r) { return label(by, r[by]); },
        function (r) { return fmt(k, r.value); },
        function (r) { return r.numerator + "/" + r.denominator; }], null,
        function (r) { return r[by]; });
    });
  });

  /* --- breakdown ------------------------------------------------------- */
  var refreshBreakdown = view("分项", function () {
    var k = defByName[$("bd-kpi").value], by = $("bd-by").value;
    if (!k) return;
    var q = { period: "month", group_by: by };
    $("bd-csv").href = csvHref("/v1/kpi/" + k.name, q);
    return api("/v1/kpi/" + k.name + qs(q)).then(function (res) {
      var chart = chartOn("breakdown");
      $("breakdown").dataset.rows = JSON.stringify(res.rows.map(function (r) { return [r[by], r.value]; }));
      if (!chart) return;
      var scale = k.unit === "ratio" ? 100 : k.unit === "seconds" ? 1 / 3600 : 1;
      chart.setOption({
        tooltip: { trigger: "axis" },
        legend: { data: ["本月", "上月"] },
        grid: { left: 50, right: 20, top: 40, bottom: 40 },
        xAxis: { type: "category", data: res.rows.map(function (r) { return label(by, r[by]); }), name: DIM_LABELS[by] },
        yAxis: { type: "value", name: k.unit === "ratio" ? "%" : k.unit === "seconds" ? "小时" : "件" },
        series: [
          { name: "本月", type: "bar", data: res.rows.map(function (r) { return r.value === null ? null : +(r.value * scale).toFixed(2); }) },
          { name: "上月", type: "bar", data: res.rows.map(function (r) { var v = (r.previous || {}).value; return v === null || v === undefined ? null : +(v * scale).toFixed(2); }) }
        ]
      }, true);
    });
  });

  /* --- distribution ---------------------------------------------------- */
  var refreshDist = view("分布", function () {
    var dim = $("dist-dim").value, q = { dim: dim };
    $("dist-csv").href = csvHref("/v1/reports/distribution", q);
    return api("/v1/reports/distribution" + qs(q)).then(function (res) {
      var data = res.rows.map(function (r) {
        return { name: r.label || label(dim, r[dim]), value: r.orders, code: r[dim] };
      });
      $("dist").dataset.dim = dim;
      $("dist").dataset.rows = JSON.stringify(data);
      var chart = chartOn("dist");
      if (!chart) return;
      chart.setOption({
        tooltip: { trigger: "item", formatter: "{b}：{c} 件（{d}%）" },
        legend: { type: "scroll", orient: "vertical", left: 0, top: 10 },
        series: [{ name: res.columns[dim] || dim, type: "pie", radius: ["35%", "65%"], center: ["62%", "50%"], data: data }]
      }, true);
    });
  });

  /* --- hot issues ------------------------------------------------------ */
  var refreshHot = view("热点", function () {
    var q = { limit: 10 };
    $("hot-csv").href = csvHref("/v1/reports/hot_issues", q);
    return api("/v1/reports/hot_issues" + qs(q)).then(function (res) {
      fillTable("hot-table", res.rows, [function (r) { return r.type === "keyword" ? "关键词" : "问题类型"; },
        function (r) { return r.type === "keyword" ? r.issue : label("problem_type", r.issue); }, "orders"]);
    });
  });

  /* --- ledger and supervision ------------------------------------------ */
  var refreshLedger = view("台账", function () {
    var q = { month: $("ledger-month").value };
    $("ledger-csv").href = csvHref("/v1/reports/ledger", q);
    return api("/v1/reports/ledger" + qs(q)).then(function (res) {
      if (!$("ledger-month").value) $("ledger-month").value = res.month;
      var sel = $("ledger-unit"), cur = sel.value;
      var units = res.rows.map(function (r) { return r.unit; });
      if (cur && units.indexOf(cur) < 0) units.push(cur);
      sel.length = 1;
      units.forEach(function (u) { sel.add(new Option(label("unit", u), u)); });
      sel.value = cur;
      var rows = cur ? res.rows.filter(function (r) { return r.unit === cur; }) : res.rows;
      fillTable("ledger-table", rows, [function (r) { return label("unit", r.unit); }, "orders", "closed", "closed_in_limit",
        function (r) { return r.on_time_closure_rate === null ? "–" : (r.on_time_closure_rate * 100).toFixed(1) + "%"; },
        "warnings", "breaches", "escalations"], null, function (r) { return r.unit; });
    });
  });
  var refreshSupervision = view("督办", function () {
    var q = { month: $("ledger-month").value, unit: $("ledger-unit").value };
    $("sup-csv").href = csvHref("/v1/reports/supervision", q);
    return api("/v1/reports/supervision" + qs(q)).then(function (res) {
      fillTable("sup-table", res.rows.slice(-200).reverse(), ["order_no",
        function (r) { return EVENT_LABELS[r.event] || r.event; }, function (r) { return STEP_LABELS[r.step] || r.step; },
        function (r) { return label("unit", r.unit); }, function (r) { return r.to_unit ? label("unit", r.to_unit) : ""; },
        function (r) { return (r.at || "").slice(0, 16).replace("T", " "); },
        function (r) { return (r.due_at || "").slice(0, 16).replace("T", " "); }], "本月无督办记录");
    });
  });

  function refreshSlow() {
    refreshTiles(); refreshRankings(); refreshBreakdown(); refreshDist(); refreshHot();
    refreshLedger(); refreshSupervision();
  }
  var lastSlow = 0, slowTimer = null;
  function slowSoon() {
    if (slowTimer) return;
    var wait = Math.max(0, lastSlow + SLOW_MS - Date.now());
    slowTimer = setTimeout(function () { slowTimer = null; lastSlow = Date.now(); refreshSlow(); }, wait);
  }

  /* --- live feed -------------------------------------------------------- */
  function addFeed(type, d) {
    var li = document.createElement("li");
    var t = document.createElement("span"); t.className = "t"; t.textContent = (d.occurred_at || "").slice(11, 19);
    var k = document.createElement("span"); k.className = "k"; k.textContent = LABELS[type] || type;
    var n = document.createElement("span"); n.className = "n"; n.textContent = d.order_no || "";
    var r = document.createElement("span"); r.className = "r"; r.textContent = d.region ? label("region", d.region) : "";
    li.append(t, k, n, r);
    var feed = $("feed");
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > 50) feed.removeChild(feed.lastChild);
  }

  var pending = null;
  function connect() {
    var url = "/v1/stream?access_token=" + encodeURIComponent(token) +
      (region ? "&region=" + encodeURIComponent(region) : "");
    var es = new EventSource(url);
    es.onopen = function () { $("live").className = "on"; $("live").textContent = "● 实时"; };
    es.onerror = function () { $("live").className = "off"; $("live").textContent = "● 重连中"; };
    Object.keys(LABELS).forEach(function (type) {
      es.addEventListener(type, function (ev) {
        var d;
        try { d = JSON.parse(ev.data); } catch (e) { return; }
        addFeed(type, d);
        if (!pending) pending = setTimeout(function () {
          pending = null; refreshCounters(); refreshTrend(); slowSoon();
        }, 300);
      });
    });
  }

  $("region").value = region;
  $("scope-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var v = $("region").value.trim();
    if (v && !/^[0-9]{6}$/.test(v)) { showError("区域须为6位行政区划代码"); return; }
    localStorage.setItem("kesu.region", v);
    location.search = v ? "?region=" + v : "";
  });
  $("trend-gran").addEventListener("change", refreshTrend);
  $("trend-kpi").addEventListener("change", refreshTrend);
  $("rank-kpi").addEventListener("change", function () { fitDims("rank-kpi", "rank-by"); refreshRankings(); });
  $("rank-by").addEventListener("change", refreshRankings);
  $("bd-kpi").addEventListener("change", function () { fitDims("bd-kpi", "bd-by"); refreshBreakdown(); });
  $("bd-by").addEventListener("change", refreshBreakdown);
  $("dist-dim").addEventListener("change", refreshDist);
  $("ledger-month").addEventListener("change", function () { refreshLedger(); refreshSupervision(); });
  $("ledger-unit").addEventListener("change", function () { refreshLedger(); refreshSupervision(); });
  window.addEventListener("resize", function () {
    ["trend", "breakdown", "dist"].forEach(function (id) { var c = window.echarts && echarts.getInstanceByDom($(id)); if (c) c.resize(); });
  });

  if (!token) { showError("请在地址后加上 ?token=<查看令牌> 打开看板"); return; }
  refreshCounters();
  refreshTrend();
  connect();
  Promise.all([api("/v1/kpi"), loadNames()]).then(function (both) {
    var list = both[0];
    defs = list.kpis;
    defs.forEach(function (k) { defByName[k.name] = k; tileFor(k); });
    defs.filter(function (k) { return k.computable && k.trend; }).forEach(function (k) {
      $("trend-kpi").add(new Option(k.title, k.name));
    });
    ["rank-kpi", "bd-kpi"].forEach(function (id) {
      var sel = $(id);
      defs.filter(function (k) { return k.computable; }).forEach(function (k) { sel.add(new Option(k.title, k.name)); });
      sel.value = "on_time_closure_rate";
    });
    lastSlow = Date.now();
    refreshSlow();
  }).catch(function (e) { showError("读取指标列表失败：" + e.message); });
})();
