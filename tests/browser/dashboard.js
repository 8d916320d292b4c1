// Drives the ops dashboard in Debian's headless Chromium (playwright-core):
// loads it, compares its tiles with the API, submits a complaint through
// intake and waits for the page to show it, saves a screenshot. Prints one
// JSON line with what it saw; the pytest test asserts on it.
//   node tests/browser/dashboard.js <analytics base URL> <intake base URL> <token> <screenshot.png>
"use strict";
const { chromium } = require("playwright-core");

const [base, intake, token, shot] = process.argv.slice(2);

async function api(url, opts = {}) {
  const r = await fetch(url, {
    ...opts,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
  });
  return { status: r.status, body: await r.json() };
}

(async () => {
  const out = { consoleErrors: [], pageErrors: [] };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    await page.goto(base + "/?token=" + encodeURIComponent(token), { waitUntil: "load" });
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById("received").textContent));
    await page.waitForFunction(() => document.getElementById("live").className === "on");
    const api1 = (await api(base + "/v1/kpi/summary")).body;
    out.api = api1;
    out.tiles = await page.evaluate(() =>
      Object.fromEntries(["received", "dispatched", "closed", "warned", "breached"].map(
        (k) => [k, Number(document.getElementById(k).textContent)])));
    out.title = await page.title();
    // A new complaint: the page must update by itself.
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
    await page.waitForFunction((n) => Number(document.getElementById("received").textContent) >= n,
      api1.received + 1, { timeout: 20000 });
    await page.waitForFunction((no) => document.getElementById("feed").textContent.includes(no),
      out.submitted, { timeout: 20000 });
    out.receivedAfter = Number(await page.textContent("#received"));
    out.feedHasOrder = true;
    out.chartDrawn = await page.evaluate(() => !!document.querySelector("#trend canvas"));
    await page.screenshot({ path: shot, fullPage: true });
    out.screenshot = shot;
  } catch (e) {
    out.failure = String(e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
