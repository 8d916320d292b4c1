/* 客诉工作台: the handler's staff page. The queue from GET /v1/queue, sorted by
 * priority (when the API gives one) then due time, with a live countdown of
 * the time left (red once overdue); an order's detail (GET /v1/orders/{no})
 * and history (GET /v1/orders/{no}/history); forms for the workflow actions
 * (POST /v1/orders/{no}/actions), showing the server's own message when an
 * action is refused. The header shows whether the centre (router) is
 * reachable and how many actions wait for it (GET /v1/link): while it is not,
 * actions are recorded and answered at once as pending, and go out when the
 * link is back. Actions the centre refused are listed with its reason
 * (GET /v1/actions?status=refused). The token comes from ?token=… once and is kept in
 * localStorage. Plain DOM, no libraries; every value is set as text. */
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  if (params.get("token")) {
    localStorage.setItem("kesu.token", params.get("token"));
    params.delete("token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  var token = localStorage.getItem("kesu.token") || "";
  var $ = function (id) { return document.getElementById(id); };

  var WF = {
    accepted: "已受理", review: "待审核", dispatched: "已派单", handling: "处理中",
    feedback: "已反馈", answered: "已答复", closed: "已结办", archived: "已归档"
  };
  var LOCAL = { open: "待办", closed: "已结办", moved: "已转出" };
  /* Every action staff may post (SPEC §5); fields: [name, label, type, required, options]. */
  var ACTIONS = [
    { name: "sign", label: "签收", fields: [] },
    { name: "arrive", label: "到达现场", fields: [["reason", "到场说明（报修上门）", "textarea", false]] },
    { name: "return", label: "退单", fields: [["reason", "退单原因", "textarea", true]] },
    { name: "transfer", label: "转派", fields: [["to_unit", "转派至单位（编号）", "text", true],
                                               ["reason", "转派原因", "textarea", true]] },
    { name: "assist", label: "协办", fields: [["to_unit", "协办单位（编号）", "text", true],
                                             ["reason", "协办事项", "textarea", false]] },
    { name: "assist_feedback", label: "协办反馈", fields: [["answer", "协办结果", "textarea", true]] },
    { name: "escalate", label: "升级", fields: [["reason", "升级原因", "textarea", true]] },
    { name: "recommit", label: "重新承诺", fields: [["promised_by", "新承诺时限（北京时间）", "datetime", true],
                                                ["reason", "原因", "textarea", true]] },
    { name: "interim_reply", label: "阶段回复", fields: [["answer", "回复内容", "textarea", true]] },
    { name: "feedback", label: "反馈", fields: [["answer", "处理结果", "textarea", true]] },
    { name: "answer", label: "答复", fields: [["answer", "答复客户内容", "textarea", true]] },
    { name: "close", label: "结办", fields: [["answer", "答复客户内容", "textarea", true],
                                            ["receipt_signed", "客户已签回执（维修单）", "check", false]] },
    { name: "callback", label: "回访", fields: [["satisfaction", "满意度", "select", true,
                                               [["5", "5 非常满意"], ["4", "4 满意"], ["3", "3 一般"],
                                                ["2", "2 不满意"], ["1", "1 非常不满意"]]],
                                              ["at_fault", "处理存在过错（需回访再处理）", "check", false]] },
    { name: "reopen", label: "回访再处理", fields: [["reason", "原因", "textarea", false]] },
    { name: "hq_review", label: "总部审核", fields: [] },
    { name: "conclude", label: "申诉结论", fields: [["conclusion", "结论", "select", true,
                                                 [["company_liable", "企业责任"], ["handled_properly", "先期处理得当"],
                                                  ["withdrawn", "立案撤消"], ["user_fault", "用户原因"]]],
                                                ["responsibility", "责任认定", "text", true],
                                                ["regulator_opinion", "管局意见", "textarea", true]] },
    { name: "archive", label: "归档", fields: [] }
  ];
  var BY_NAME = {};
  ACTIONS.forEach(function (a) { BY_NAME[a.name] = a; });
  /* What usually comes next in each workflow state (highlighted, never enforced:
   * the router decides and its refusal is shown). */
  var NEXT = {
    dispatched: ["sign", "return", "transfer", "escalate"],
    handling: ["feedback", "close", "arrive", "interim_reply", "assist", "assist_feedback", "recommit", "transfer", "escalate", "return"],
    review: ["answer"], feedback: ["answer"], answered: ["close", "hq_review", "conclude"],
    closed: ["callback", "reopen", "archive"]
  };

  function actionLabel(name) { return BY_NAME[name] ? BY_NAME[name].label : (name === "dispatch" ? "派单" : name === "review" ? "复核" : name === "answer_on_spot" ? "现场答复" : name === "reclassify" ? "重新定级" : name); }
  function showError(msg) { $("error").textContent = msg || ""; }

  /* {status, body}; rejects only when the server cannot be reached. */
  function api(method, path, body) {
    var opts = { method: method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
        return { status: r.status, body: j };
      });
    });
  }
  function errorText(res) {
    var e = res.body && res.body.error;
    if (res.status === 401) return "令牌无效或已过期，请用 ?token=… 重新打开本页";
    if (res.status === 403) return (e && e.message) ? "无权操作：" + e.message : "无权操作";
    return (e && e.message ? e.message : "HTTP " + res.status) + (e && e.field ? "（字段 " + e.field + "）" : "");
  }

  function el(tag, text, cls) {
    var n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = String(text);
    if (cls) n.className = cls;
    return n;
  }
  /* "2026-11-23T09:30:00+08:00" -> "11-23 09:30" */
  function shortTime(s) { return s ? s.slice(5, 10) + " " + s.slice(11, 16) : "—"; }
  function fullTime(s) { return s ? s.slice(0, 10) + " " + s.slice(11, 19) : "—"; }
  function duration(sec) {
    var s = Math.abs(sec), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), x = s % 60;
    var pad = function (v) { return (v < 10 ? "0" : "") + v; };
    return (d ? d + "天" : "") + pad(h) + ":" + pad(m) + ":" + pad(x);
  }

  /* ---- queue -------------------------------------------------------------- */
  var queue = [], fetchedAt = 0, selected = null, loading = false, again = false;

  function prioValue(o) {
    var p = o.priority;
    if (typeof p === "number") return p;
    if (typeof p === "string" && p !== "" && !isNaN(Number(p))) return Number(p);
    return null;
  }
  function sortQueue(list) {
    return list.slice().sort(function (a, b) {
      var pa = prioValue(a), pb = prioValue(b);
      if (pa !== pb) {                      /* higher priority first; none last */
        if (pa === null) return 1;
        if (pb === null) return -1;
        return pb - pa;
      }
      var ta = a.time_left_seconds, tb = b.time_left_seconds;
      if (ta !== tb) {                      /* less time left first; no deadline last */
        if (ta === null || ta === undefined) return 1;
        if (tb === null || tb === undefined) return -1;
        return ta - tb;
      }
      return a.order_no < b.order_no ? -1 : a.order_no > b.order_no ? 1 : 0;
    });
  }

  function leftNow(o) {
    if (o.time_left_seconds === null || o.time_left_seconds === undefined) return null;
    return o.time_left_seconds - Math.floor((Date.now() - fetchedAt) / 1000);
  }
  function paintLeft(td, tr, o) {
    var left = leftNow(o);
    if (left === null) { td.textContent = "—"; td.className = "left"; return; }
    if (left < 0) {
      td.textContent = "超时 " + duration(left);
      td.className = "left overdue";
      tr.classList.add("overdue");
    } else {
      td.textContent = duration(left);
      td.className = "left" + (left < 3600 ? " soon" : "");
      tr.classList.remove("overdue");
    }
  }

  var MAX_ROWS = 500; /* the most urgent ones; the rest wait for a refresh */
  function renderQueue() {
    var body = $("queue").tBodies[0];
    body.textContent = "";
    queue.slice(0, MAX_ROWS).forEach(function (o) {
      var tr = document.createElement("tr");
      tr.dataset.orderNo = o.order_no;
      if (o.order_no === selected) tr.classList.add("selected");
      var p = prioValue(o);
      var ptd = el("td");
      /* VIP/3G customers weigh 10, the tier 1–3 (see GET /v1/queue) */
      var badge = el("span", p === null ? "—" : p, "prio" + (p === null ? "" : p >= 10 ? " high" : p >= 2 ? " mid" : ""));
      if (p !== null) badge.title = (p >= 10 ? "VIP 客户，" : "") + "优先级 " + p;
      ptd.appendChild(badge);
      tr.appendChild(ptd);
      tr.appendChild(el("td", o.order_no, "no"));
      tr.appendChild(el("td", o.title || ""));
      tr.appendChild(el("td", o.customer_name || ""));
      tr.appendChild(el("td", o.region || ""));
      tr.appendChild(el("td", o.unit_id || ""));
      tr.appendChild(el("td", shortTime(o.due_at)));
      var left = el("td");
      tr.appendChild(left);
      paintLeft(left, tr, o);
      tr.addEventListener("click", function () { select(o.order_no); });
      body.appendChild(tr);
    });
    $("count").textContent = String(queue.length);
    $("empty").hidden = queue.length !== 0;
    $("more").hidden = queue.length <= MAX_ROWS;
    $("more").textContent = "仅显示最紧急的 " + MAX_ROWS + " 件，共 " + queue.length + " 件";
  }

  function tick() {
    var rows = $("queue").tBodies[0].rows;
    for (var i = 0; i < rows.length && i < queue.length; i++)
      paintLeft(rows[i].cells[7], rows[i], queue[i]);
  }

  function loadQueue() {
    if (loading) { again = true; return Promise.resolve(); }
    loading = true;
    return api("GET", "/v1/queue").then(function (res) {
      if (res.status !== 200) { showError("读取待办失败：" + errorText(res)); return; }
      fetchedAt = Date.now();
      queue = sortQueue(res.body.orders || []);
      renderQueue();
      $("updated").textContent = "更新于 " + new Date().toLocaleTimeString("zh-CN", { hour12: false });
      showError("");
    }, function (e) {
      showError("无法连接服务：" + e.message);
    }).then(function () {
      loading = false;
      if (again) { again = false; loadQueue(); }
    });
  }

  /* ---- one order ---------------------------------------------------------- */
  var current = null, seq = 0;

  function select(no) {
    selected = no;
    var rows = $("queue").tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) rows[i].classList.toggle("selected", rows[i].dataset.orderNo === no);
    $("action-msg").textContent = "";
    $("action-msg").className = "";
    closeForm();
    return loadOrder(no);
  }

  function loadOrder(no) {
    var mine = ++seq;
    var enc = encodeURIComponent(no);
    return Promise.all([api("GET", "/v1/orders/" + enc), api("GET", "/v1/orders/" + enc + "/history")])
      .then(function (rs) {
        if (mine !== seq) return;
        if (rs[0].status !== 200) { showError("读取工单失败：" + errorText(rs[0])); return; }
        current = rs[0].body;
        renderDetail(current, rs[1].status === 200 ? rs[1].body : null);
        if (rs[1].status !== 200) showError("读取流转历史失败：" + errorText(rs[1]));
      }, function (e) { showError("无法连接服务：" + e.message); });
  }

  function field(dl, label, value) {
    dl.appendChild(el("dt", label));
    dl.appendChild(el("dd", value === undefined || value === null || value === "" ? "—" : value));
  }

  /* "a → b", or just "a" when nothing moved */
  function move(from, to, name) {
    if (!from && !to) return "";
    if (from === to) return name(from);
    return (from ? name(from) : "—") + " → " + (to ? name(to) : "—");
  }

  function renderDetail(o, h) {
    var c = o.complaint || {}, cu = c.customer || {};
    $("detail").hidden = false;
    $("d-no").textContent = o.order_no;
    /* The handler learns the workflow state with the first step it sees; an
     * open order it holds without one is one just dispatched to it. */
    var wf = (h && h.wf_state) || o.wf_state || (o.state === "open" ? "dispatched" : "");
    $("d-wf").textContent = (WF[wf] || wf || "") + (o.state === "moved" ? " · " + LOCAL.moved : "");
    $("d-wf").dataset.wf = wf || "";
    $("d-wf").dataset.state = o.state || "";
    var dl = $("d-fields");
    dl.textContent = "";
    field(dl, "标题", c.title);
    field(dl, "处理单位", o.unit_id);
    field(dl, "客户", cu.name);
    field(dl, "电话", cu.phone);
    field(dl, "地址", cu.address);
    field(dl, "客户级别", cu.level);
    field(dl, "区域", o.region);
    field(dl, "受理渠道", c.channel);
    field(dl, "类别", [c.kind, c.stream].filter(Boolean).join(" / "));
    field(dl, "级别", c.tier);
    field(dl, "业务", c.business_type);
    field(dl, "问题类型", c.problem_type);
    field(dl, "受理时间", fullTime(c.accepted_at));
    field(dl, "首问人", c.first_receiver);
    field(dl, "办结时限", fullTime(o.due_at));
    field(dl, "派至本处", fullTime(o.received_at));
    if (o.closed_at) { field(dl, "结办时间", fullTime(o.closed_at)); field(dl, "答复", o.answer); }
    $("d-content").textContent = c.content || "";

    var buttons = $("buttons");
    buttons.textContent = "";
    var next = NEXT[wf] || [];
    ACTIONS.forEach(function (a) {
      var b = el("button", a.label, next.indexOf(a.name) >= 0 ? "suggested" : "");
      b.type = "button";
      b.dataset.action = a.name;
      b.addEventListener("click", function () {
        if (a.fields.length === 0) submit(a, {});
        else openForm(a);
      });
      buttons.appendChild(b);
    });

    var mine = $("mine").tBodies[0];
    mine.textContent = "";
    (o.actions || []).forEach(function (x) {
      var tr = document.createElement("tr");
      tr.appendChild(el("td", shortTime(x.created_at)));
      tr.appendChild(el("td", actionLabel(x.action)));
      tr.appendChild(el("td", x.actor));
      var res = x.status !== "done" ? "等待中心确认" : x.ok ? "成功" : "被拒：" + (x.message || x.code || "");
      tr.appendChild(el("td", res, x.status !== "done" ? "pending" : x.ok ? "ok" : "refused"));
      mine.appendChild(tr);
    });
    if (!(o.actions || []).length) {
      var tr0 = document.createElement("tr");
      var td0 = el("td", "无", "muted"); td0.colSpan = 4; tr0.appendChild(td0); mine.appendChild(tr0);
    }

    var hb = $("history").tBodies[0];
    hb.textContent = "";
    ((h && h.history) || []).forEach(function (s) {
      var tr = document.createElement("tr");
      tr.appendChild(el("td", s.seq));
      tr.appendChild(el("td", shortTime(s.at)));
      tr.appendChild(el("td", actionLabel(s.action)));
      tr.appendChild(el("td", s.actor + (s.actor_unit ? "（" + s.actor_unit + "）" : "")));
      tr.appendChild(el("td", move(s.from_unit, s.to_unit, function (u) { return u; })));
      tr.appendChild(el("td", move(s.from_state, s.to_state, function (x) { return WF[x] || x; })));
      tr.appendChild(el("td", [s.reason, s.answer].filter(Boolean).join(" / ")));
      hb.appendChild(tr);
    });
    var pend = (h && h.pending) || [];
    $("h-pending").textContent = pend.length ? "另有 " + pend.length + " 项操作等待中心确认：" +
      pend.map(function (p) { return actionLabel(p.action); }).join("、") : "";
  }

  /* ---- actions ------------------------------------------------------------ */
  var formAction = null;

  function openForm(a) {
    formAction = a;
    $("form-title").textContent = a.label;
    var box = $("form-fields");
    box.textContent = "";
    a.fields.forEach(function (f) {
      var name = f[0], label = f[1], type = f[2], required = f[3], input;
      var lab = el("label", null, type === "check" ? "check" : "");
      if (type === "check") {
        input = document.createElement("input");
        input.type = "checkbox";
        lab.appendChild(input);
        lab.appendChild(document.createTextNode(label));
      } else {
        lab.appendChild(document.createTextNode(label + (required ? " *" : "")));
        if (type === "textarea") { input = document.createElement("textarea"); input.rows = 3; }
        else if (type === "select") {
          input = document.createElement("select");
          f[4].forEach(function (opt) {
            var o = el("option", opt[1]); o.value = opt[0]; input.appendChild(o);
          });
        } else {
          input = document.createElement("input");
          input.type = type === "datetime" ? "datetime-local" : "text";
        }
        input.required = !!required;
        lab.appendChild(input);
      }
      input.name = name;
      input.dataset.kind = type;
      box.appendChild(lab);
    });
    $("action-form").hidden = false;
    var first = box.querySelector("input, textarea, select");
    if (first) first.focus();
  }
  function closeForm() { formAction = null; $("action-form").hidden = true; }

  function collect() {
    var body = {};
    var inputs = $("form-fields").querySelectorAll("input, textarea, select");
    for (var i = 0; i < inputs.length; i++) {
      var n = inputs[i], kind = n.dataset.kind;
      if (kind === "check") { if (n.checked) body[n.name] = true; continue; }
      var v = n.value.trim();
      if (!v) continue;
      if (kind === "datetime") v = (v.length === 16 ? v + ":00" : v) + "+08:00"; /* Beijing time */
      if (n.name === "satisfaction") v = parseInt(v, 10);
      body[n.name] = v;
    }
    return body;
  }

  function setBusy(busy) {
    var bs = document.querySelectorAll("#buttons button, #form-submit");
    for (var i = 0; i < bs.length; i++) bs[i].disabled = busy;
  }

  function submit(a, fields) {
    if (!current) return;
    var no = current.order_no, body = { action: a.name };
    Object.keys(fields).forEach(function (k) { body[k] = fields[k]; });
    var msg = $("action-msg");
    msg.className = "pending";
    msg.textContent = "正在提交「" + a.label + "」…";
    setBusy(true);
    return api("POST", "/v1/orders/" + encodeURIComponent(no) + "/actions", body).then(function (res) {
      if (res.status === 200) {
        msg.className = "ok";
        msg.textContent = "「" + a.label + "」已完成，工单状态：" +
          (WF[res.body.state] || res.body.state) + (res.body.holder_unit ? "，处理单位：" + res.body.holder_unit : "");
        closeForm();
      } else if (res.status === 202) {
        msg.className = "pending";
        msg.textContent = "「" + a.label + "」已记录，" +
          (res.body && res.body.link === "down" ? "中心暂时无法连接，恢复后将按顺序自动提交" : "等待中心确认") +
          "（" + (res.body && res.body.action_id) + "）";
        closeForm();
        setTimeout(function () { if (current && current.order_no === no) loadOrder(no); }, 3000);
      } else {
        msg.className = "error";
        msg.textContent = "「" + a.label + "」未执行：" + errorText(res);
      }
    }, function (e) {
      msg.className = "error";
      msg.textContent = "无法连接服务：" + e.message;
    }).then(function () {
      setBusy(false);
      msg.dataset.done = String(Date.now());
      loadQueue();
      loadLink();
      if (current && current.order_no === no) return loadOrder(no);
    });
  }

  $("action-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (formAction) submit(formAction, collect());
  });
  $("form-cancel").addEventListener("click", closeForm);
  $("refresh").addEventListener("click", function () {
    loadQueue();
    if (current) loadOrder(current.order_no);
  });

  /* ---- link to the centre, refused actions ------------------------------ */
  var refusedSeen = "";
  function loadLink() {
    if (!token) return Promise.resolve(); /* nothing to ask without a token */
    return Promise.all([api("GET", "/v1/link"), api("GET", "/v1/actions?status=refused&limit=50")])
      .then(function (rs) {
        var l = rs[0], link = $("link");
        if (l.status === 200) {
          var b = l.body;
          link.dataset.up = String(!!b.router_reachable);
          link.dataset.pending = String(b.pending);
          link.textContent = (b.router_reachable ? "中心连接正常" : "中心连接中断，操作将在恢复后自动提交") +
            (b.pending ? " · " + b.pending + " 项待中心确认" : "");
        }
        if (rs[1].status === 200) renderRefused(rs[1].body.actions || []);
      }, function () {
        $("link").dataset.up = "false";
        $("link").textContent = "无法连接工作台服务";
      });
  }
  function renderRefused(list) {
    var key = list.map(function (x) { return x.action_id; }).join(",");
    $("refused-count").textContent = String(list.length);
    $("refused-empty").hidden = list.length !== 0;
    if (key === refusedSeen) return;
    refusedSeen = key;
    var body = $("refused").tBodies[0];
    body.textContent = "";
    list.forEach(function (x) {
      var tr = document.createElement("tr");
      tr.dataset.actionId = x.action_id;
      tr.dataset.orderNo = x.order_no;
      tr.appendChild(el("td", shortTime(x.created_at)));
      var no = el("td", x.order_no, "no");
      no.title = x.title || "";
      no.addEventListener("click", function () { select(x.order_no); });
      tr.appendChild(no);
      tr.appendChild(el("td", actionLabel(x.action)));
      tr.appendChild(el("td", x.actor));
      tr.appendChild(el("td", x.message || x.code || "", "reason"));
      body.appendChild(tr);
    });
  }

  if (!token) showError("缺少访问令牌：请用 ?token=… 打开本页");
  loadQueue();
  loadLink();
  setInterval(loadLink, 5000);
  setInterval(tick, 1000);
  setInterval(function () {
    loadQueue();
    if (current) loadOrder(current.order_no); /* steps taken elsewhere (centre, router) */
  }, 15000);
})();
