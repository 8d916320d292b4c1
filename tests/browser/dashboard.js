// Drives the ops dashboard in Debian's headless Chromium (playwright-core):
// loads it as an admin, compares its counters, ranking table and distribution
// chart with the API, checks the CSV links, switches the trend to hours,
// submits a complaint through intake and waits for the page to show it (the
// counters, the feed, the hourly trend); then loads it as a Shanghai viewer
// and reads its regional ranking. Saves screenshots. Prints one JSON line
// with what it saw; the pytest test asserts on it.
//   node tests/browser/dashboard.js <analytics URL> <intake URL> <admin token> <viewer token>
//        <screenshot.png> <viewer screenshot.png>
"use strict";
const { chromium } = require("playwright-core");

const [base, intake, token, viewer, shot, viewerShot] = process.argv.slice(2);

// code → Chinese name, from data/*.csv (code,name,… with a header line)
const fs = require("fs"), path = require("path");
function namesOf(file) {
  const lines = fs.readFileSync(path.join(__dirname, "..", "..", "data", file), "utf8")
    .split(/\r?\n/).filter((l) => l && l[0] !== "#").slice(1);
  return Object.fromEntries(lines.map((l) => l.split(",").slice(0, 2)));
}
const names = namesOf("units.csv"), btNames = namesOf("business_types.csv");

async function api(url, opts = {}, tok = token) {
  const r = await fetch(url, {
    ...opts,
    headers: { Authorization: "Bearer " + tok, "Content-Type": "application/json" },
  });
  return { status: r.status, body: await r.json() };
}

// Polls until the page and the API agree (the page refreshes on its own
// cadence); gives back the last pair either way.
async function agree(readPage, readApi, timeout = 25000) {
  const end = Date.now() + timeout;
  let p, a;
  for (;;) {
    p = await readPage();
    a = await readApi();
    if (JSON.stringify(p) === JSON.stringify(a) || Date.now() > end) return { page: p, api: a };
    await new Promise((res) => setTimeout(res, 300));
  }
}

async function csv(page, sel) {
  const href = await page.$eval(sel, (a) => a.href);
  const r = await fetch(href);
  const text = await r.text();
  return { href, status: r.status, type: r.headers.get("content-type"),
           header: text.replace(/^\ufeff/, "").split("\r\n")[0], lines: text.trim().split("\r\n").length };
}

function watch(page, out) {
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  page.on("request", (r) => { if (new URL(r.url()).pathname.startsWith("/v1/")) out.requests.push(new URL(r.url()).pathname); });
}

const rankRows = (page) => page.$$eval("#rank-table tbody tr", (trs) =>
  trs.filter((tr) => !tr.querySelector("td.empty"))
    .map((tr) => [tr.dataset.key].concat(Array.from(tr.cells).map((td) => td.textContent))));

(async () => {
  const out = { consoleErrors: [], pageErrors: [], requests: [] };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    watch(page, out);
    await page.goto(base + "/?token=" + encodeURIComponent(token), { waitUntil: "load" });
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById("received").textContent));
    await page.waitForFunction(() => document.getElementById("live").className === "on");
    const api1 = (await api(base + "/v1/kpi/summary")).body;
    out.api = api1;
    out.tiles = await page.evaluate(() =>
      Object.fromEntries(["received", "dispatched", "closed", "warned", "breached"].map(
        (k) => [k, Number(document.getElementById(k).textContent)])));
    out.title = await page.title();

    // KPI tiles: one per KPI of GET /v1/kpi, green/red where SPEC gives a reference
    await page.waitForFunction(() => document.querySelectorAll("#kpis .tile .cmp").length > 0 &&
      Array.from(document.querySelectorAll("#kpis .tile")).every((t) => t.classList.contains("na") ||
        /环比/.test(t.querySelector(".cmp").textContent)));
    out.kpiCount = (await api(base + "/v1/kpi")).body.kpis.length;
    out.kpiTiles = await page.$$eval("#kpis .tile", (ts) => ts.map((t) => ({
      kpi: t.dataset.kpi, value: t.dataset.value === undefined ? null : t.dataset.value,
      good: t.classList.contains("good"), bad: t.classList.contains("below"),
      text: t.textContent })));
    const otc = (await api(base + "/v1/kpi/on_time_closure_rate?period=month")).body;
    out.apiOnTime = otc.rows[0];
    // the tiles came from one GET /v1/kpis, not one request per KPI
    out.tileRequests = out.requests.filter((p) => p === "/v1/kpis").length;
    out.singleKpiRequests = out.requests.filter((p) => /^\/v1\/kpi\/[a-z_]+$/.test(p) &&
      p !== "/v1/kpi/summary");

    // rankings: the table's first row is the API's first row
    await page.waitForFunction(() => document.querySelectorAll("#rank-table tbody tr").length > 0);
    const rank = await agree(async () => (await rankRows(page))[0], async () => {
      const r = (await api(base + "/v1/rankings?kpi=on_time_closure_rate&by=unit")).body.rows[0];
      return r && [r.unit, String(r.rank), names[r.unit], (r.value * 100).toFixed(1) + "%",
                   r.numerator + "/" + r.denominator];
    });
    out.rankPage = rank.page; out.rankApi = rank.api;

    // distribution: the chart's data are the API's numbers
    const dist = await agree(() => page.evaluate(() => {
      const c = echarts.getInstanceByDom(document.getElementById("dist"));
      const s = c && c.getOption().series;
      return s && s[0] ? s[0].data.map((d) => [d.code, d.name, d.value]) : null;
    }), async () => (await api(base + "/v1/reports/distribution?dim=business_type")).body.rows
      .map((r) => [r.business_type, btNames[r.business_type], r.orders]));
    out.distPage = dist.page; out.distApi = dist.api;

    // the daily trend (the default view): 14 days ending today, the API's numbers
    const days = await agree(() => page.evaluate(() => document.getElementById("trend").dataset.granularity === "day" &&
      JSON.parse(document.getElementById("trend").dataset.rows)),
      async () => (await api(base + "/v1/dashboard/trend?granularity=day")).body.rows);
    out.dayPage = days.page; out.dayApi = days.api;

    // the trend of a chosen KPI, per day then per hour: the chart's series is the API's
    // values (a ratio in per cent)
    const pct = (v) => (v === null ? null : Math.round(v * 100 * 1e6) / 1e6);
    const kpiSeries = () => page.evaluate(() => {
      const c = echarts.getInstanceByDom(document.getElementById("trend"));
      const o = c && c.getOption();
      const t = document.getElementById("trend").dataset;
      return o && t.kpi === "timely_flow_rate" ? { granularity: t.granularity, names: o.series.map((s) => s.name),
        x: o.xAxis[0].data, data: o.series[0].data } : null;
    });
    out.trendKpiOptions = await page.$$eval("#trend-kpi option", (os) => os.map((o) => o.value));
    await page.selectOption("#trend-kpi", "timely_flow_rate");
    for (const gran of ["day", "hour"]) {
      if (gran === "hour") await page.selectOption("#trend-gran", "hour");
      const k = await agree(kpiSeries, async () => {
        const t = (await api(base + "/v1/kpi/timely_flow_rate/trend?granularity=" + gran)).body;
        return { granularity: gran, names: ["工单流转及时率"],
                 x: t.rows.map((r) => (gran === "hour" ? r.t : r.t.slice(5))), data: t.rows.map((r) => pct(r.value)) };
      });
      out["trendKpi_" + gran] = k;
    }
    await page.selectOption("#trend-gran", "day");
    await page.selectOption("#trend-kpi", "");
    await page.waitForFunction(() => document.getElementById("trend").dataset.kpi === "" &&
      document.getElementById("trend").dataset.granularity === "day");
    // breakdown by region: the chart's bars are the API's values
    const bd = await agree(() => page.evaluate(() => {
      const c = echarts.getInstanceByDom(document.getElementById("breakdown"));
      return c ? JSON.parse(document.getElementById("breakdown").dataset.rows || "null") : null;
    }), async () => (await api(base + "/v1/kpi/on_time_closure_rate?period=month&group_by=region"))
      .body.rows.map((x) => [x.region, x.value]));
    out.breakdownPage = bd.page; out.breakdownApi = bd.api;
    // the ledger of one unit, and its supervision records' CSV
    await page.waitForFunction(() => document.getElementById("ledger-unit").options.length > 1);
    await page.selectOption("#ledger-unit", "sh-hp");
    await page.waitForFunction(() => {
      const trs = document.querySelectorAll("#ledger-table tbody tr");
      return trs.length === 1 && trs[0].dataset.key === "sh-hp" &&
        document.getElementById("sup-csv").href.includes("unit=sh-hp");
    });
    out.ledgerRow = await page.$$eval("#ledger-table tbody tr td", (tds) => tds.map((td) => td.textContent));
    out.ledgerApi = (await api(base + "/v1/reports/ledger")).body.rows.find((x) => x.unit === "sh-hp");
    out.csv = { supervision: await csv(page, "#sup-csv"), rank: await csv(page, "#rank-csv"), dist: await csv(page, "#dist-csv"),
                ledger: await csv(page, "#ledger-csv"), breakdown: await csv(page, "#bd-csv") };

    // the trend per hour, then a new complaint: the page updates by itself
    await page.selectOption("#trend-gran", "hour");
    await page.waitForFunction(() => document.getElementById("trend").dataset.granularity === "hour");
    const hours = () => page.evaluate(() => JSON.parse(document.getElementById("trend").dataset.rows));
    const before = await hours();
    out.requestsBefore = out.requests.length;
    const r = await api(intake + "/v1/complaints", {
      method: "POST",
      body: JSON.stringify({
        channel: "website", region: "320102", business_type: "broadband",
        customer: { name: "看板测试", phone: "13700001111", home_region: "320102",
                    address: "南京市玄武区中山路1号" },
        title: "看板实时更新测试", content: "提交后看板应当自动刷新计数并显示事件。",
      }),
    });
    out.submitted = r.body.order_no;
    out.acceptedAt = r.body.accepted_at;
    const hour = r.body.accepted_at.slice(11, 13) + ":00";
    await page.waitForFunction((n) => Number(document.getElementById("received").textContent) >= n,
      api1.received + 1, { timeout: 20000 });
    await page.waitForFunction((no) => document.getElementById("feed").textContent.includes(no),
      out.submitted, { timeout: 20000 });
    const prev = before.find((x) => x.t === hour).received;
    await page.waitForFunction(([h, n]) => {
      const rows = JSON.parse(document.getElementById("trend").dataset.rows);
      return rows.find((x) => x.t === h).received >= n;
    }, [hour, prev + 1], { timeout: 20000 });
    out.trendHour = hour;
    out.trendBefore = prev;
    out.trendAfter = (await hours()).find((x) => x.t === hour).received;
    out.trendApi = (await api(base + "/v1/dashboard/trend?granularity=hour")).body.rows
      .find((x) => x.t === hour).received;
    out.trendChart = await page.evaluate(() => {
      const o = echarts.getInstanceByDom(document.getElementById("trend")).getOption();
      return { categories: o.xAxis[0].data.length, series: o.series.map((s) => s.name) };
    });
    out.receivedAfter = Number(await page.textContent("#received"));
    out.feedHasOrder = true;
    await page.waitForTimeout(1000); // what one event caused, fetched
    out.requestsForEvent = out.requests.slice(out.requestsBefore);
    out.chartDrawn = await page.evaluate(() => !!document.querySelector("#trend canvas"));
    await page.screenshot({ path: shot, fullPage: true });
    out.screenshot = shot;
    await ctx.close();

    // a Shanghai viewer: the API scopes, the page shows only Shanghai
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const vpage = await vctx.newPage();
    watch(vpage, out);
    await vpage.goto(base + "/?token=" + encodeURIComponent(viewer), { waitUntil: "load" });
    await vpage.waitForFunction(() => /^\d+$/.test(document.getElementById("received").textContent));
    await vpage.waitForFunction(() => document.querySelectorAll("#rank-table tbody tr").length > 0);
    await vpage.selectOption("#rank-by", "region");
    const vrank = await agree(async () => (await rankRows(vpage)).map((row) => row[0]), async () =>
      (await api(base + "/v1/rankings?kpi=on_time_closure_rate&by=region", {}, viewer)).body.rows
        .map((x) => x.region));
    out.viewerRankPage = vrank.page; out.viewerRankApi = vrank.api;
    out.viewerRankNames = (await rankRows(vpage)).map((row) => row[2]);
    out.viewerReceived = Number(await vpage.textContent("#received"));
    out.viewerApi = (await api(base + "/v1/kpi/summary", {}, viewer)).body;
    out.viewerDist = await vpage.evaluate(() => document.getElementById("dist").dataset.rows || null);
    await vpage.screenshot({ path: viewerShot, fullPage: true });
    await vctx.close();
  } catch (e) {
    out.failure = String(e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
