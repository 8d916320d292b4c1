/* 客诉运营看板: counters from GET /v1/kpi/summary, live events from the SSE
 * stream GET /v1/stream (resumes by itself with Last-Event-ID), a per-minute
 * trend chart (ECharts). The token comes from ?token=… once and is kept in
 * localStorage; EventSource cannot send headers, so the stream takes it as
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
  var FIELDS = ["received", "dispatched", "closed", "warned", "breached"];

  function showError(msg) { $("error").textContent = msg || ""; }

  function api(path) {
    return fetch(path, { headers: { Authorization: "Bearer " + token } }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error((j.error && j.error.message) || ("HTTP " + r.status));
        return j;
      });
    });
  }

  var refreshing = false, again = false;
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    api("/v1/kpi/summary" + (region ? "?region=" + encodeURIComponent(region) : ""))
      .then(function (s) {
        FIELDS.forEach(function (f) { $(f).textContent = String(s[f]); });
        showError("");
        refreshKpis();
      })
      .catch(function (e) { showError("读取计数失败：" + e.message); })
      .then(function () { refreshing = false; if (again) { again = false; refresh(); } });
  }

  /* KPI tiles: this month (server clock) from GET /v1/kpi/{name}, with the
   * SPEC reference value where there is one and the previous month (环比). */
  var KPIS = ["on_time_closure_rate", "first_contact_closure_rate", "valid_flow_rate",
    "promised_completion_rate", "order_timeliness_rate", "escalated_resolution_rate",
    "avg_handling_time", "avg_delay"];
  function fmt(k, v) {
    if (v === null || v === undefined) return "–";
    if (k.unit === "seconds") return (v / 3600).toFixed(1) + " 小时";
    return (v * 100).toFixed(1) + "%";
  }
  function tileFor(name) {
    var id = "kpi-" + name, tile = $(id);
    if (!tile) {
      tile = document.createElement("div"); tile.className = "tile"; tile.id = id;
      var l = document.createElement("div"); l.className = "label"; l.textContent = name;
      var v = document.createElement("div"); v.className = "value"; v.textContent = "–";
      var r = document.createElement("div"); r.className = "ref";
      tile.append(l, v, r);
      $("kpis").appendChild(tile);
    }
    return tile;
  }
  function refreshKpis() {
    KPIS.forEach(tileFor);
    var q = "?period=month" + (region ? "&region=" + encodeURIComponent(region) : "");
    KPIS.forEach(function (name) {
      api("/v1/kpi/" + name + q).then(function (k) {
        var row = k.rows[0] || {};
        var tile = tileFor(name), l = tile.querySelector(".label");
        l.textContent = k.title;
        l.title = k.formula;
        tile.querySelector(".value").textContent = fmt(k, row.value);
        var ref = k.reference !== null ? "参考值 " + fmt(k, k.reference) + " · " : "";
        tile.querySelector(".ref").textContent = ref + "上月 " + fmt(k, (row.previous || {}).value) +
          " · " + (row.numerator !== undefined ? row.numerator : 0) + "/" + (row.denominator || 0);
        tile.classList.toggle("below", k.reference !== null && row.value !== null &&
          row.value < k.reference);
      }).catch(function (e) { showError("读取指标失败：" + e.message); });
    });
  }

  /* Trend: events per minute and type since the page opened. */
  var chart = window.echarts ? echarts.init($("trend")) : null;
  var minutes = [], counts = {};
  Object.keys(LABELS).forEach(function (k) { counts[k] = []; });
  function bump(type, when) {
    var m = when.slice(11, 16);
    if (minutes[minutes.length - 1] !== m) {
      minutes.push(m);
      Object.keys(counts).forEach(function (k) { counts[k].push(0); });
      if (minutes.length > 60) { minutes.shift(); Object.keys(counts).forEach(function (k) { counts[k].shift(); }); }
    }
    if (counts[type]) counts[type][counts[type].length - 1]++;
  }
  function draw() {
    if (!chart) return;
    chart.setOption({
      tooltip: { trigger: "axis" },
      legend: { data: Object.keys(LABELS).map(function (k) { return LABELS[k]; }) },
      grid: { left: 40, right: 20, top: 40, bottom: 30 },
      xAxis: { type: "category", data: minutes.slice() },
      yAxis: { type: "value", minInterval: 1 },
      series: Object.keys(LABELS).map(function (k) {
        return { name: LABELS[k], type: "line", smooth: true, data: counts[k].slice() };
      })
    });
  }

  function addFeed(type, d) {
    var li = document.createElement("li");
    var t = document.createElement("span"); t.className = "t"; t.textContent = (d.occurred_at || "").slice(11, 19);
    var k = document.createElement("span"); k.className = "k"; k.textContent = LABELS[type] || type;
    var n = document.createElement("span"); n.className = "n"; n.textContent = d.order_no || "";
    var r = document.createElement("span"); r.className = "r"; r.textContent = d.region || "";
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
        bump(type, d.occurred_at || new Date().toISOString());
        if (!pending) pending = setTimeout(function () { pending = null; refresh(); draw(); }, 300);
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

  if (!token) { showError("请在地址后加上 ?token=<查看令牌> 打开看板"); return; }
  refresh();
  draw();
  connect();
})();
