// Drives the handler's workbench in Debian's headless Chromium (playwright-core):
// opens it with a staff token, finds the order in the queue, opens its detail
// and history, signs it, closes it with an answer, tries a refused action
// (sign after close) and reads the server's message, saves a screenshot; then,
// on a second page with a made-up queue answer (page.route), checks the sort
// (priority, then time left), the red overdue countdown, and (made-up
// /v1/link and /v1/actions answers) how an unreachable centre and a refused
// action are shown. With a second
// order: the refused sign is listed under 被拒操作 with the centre's reason,
// the link status says the centre is reachable, and the second order is
// transferred (转派) with a reason through the form. Prints one JSON line with
// what it saw; tests/test_workbench.py asserts on it.
//   node tests/browser/workbench.js <handler base URL> <token> <order_no> <screenshot.png> [<order_no 2>]
"use strict";
const { chromium } = require("playwright-core");

const [base, token, orderNo, shot, orderNo2] = process.argv.slice(2);

async function actionResult(page) {
  await page.waitForFunction(() => {
    const m = document.getElementById("action-msg");
    return (m.className === "ok" || m.className === "error") && m.dataset.done;
  }, null, { timeout: 20000 });
  const r = await page.evaluate(() => {
    const m = document.getElementById("action-msg");
    const out = { cls: m.className, text: m.textContent };
    delete m.dataset.done;
    return out;
  });
  return r;
}

async function clickAction(page, name) {
  await page.click(`#buttons button[data-action="${name}"]`);
}

(async () => {
  const out = { consoleErrors: [], pageErrors: [] };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    await page.goto(base + "/?token=" + encodeURIComponent(token), { waitUntil: "load" });
    out.title = await page.title();
    const row = `#queue tbody tr[data-order-no="${orderNo}"]`;
    await page.waitForSelector(row, { timeout: 20000 });
    out.urlAfterLoad = page.url();
    out.tokenStored = await page.evaluate(() => localStorage.getItem("kesu.token"));
    out.queueRow = await page.$eval(row, (tr) => Array.from(tr.cells, (c) => c.textContent));
    // What the page shows, in its order, against the API's own numbers.
    out.pageOrder = await page.$$eval("#queue tbody tr", (trs) => trs.map((t) => t.dataset.orderNo));
    out.apiQueue = await page.evaluate(async (t) => {
      const r = await fetch("/v1/queue", { headers: { Authorization: "Bearer " + t } });
      return (await r.json()).orders.map((o) => [o.order_no, o.time_left_seconds, o.priority]);
    }, token);
    const left1 = await page.$eval(row, (tr) => tr.cells[7].textContent);
    await page.waitForTimeout(2100);
    const left2 = await page.$eval(row, (tr) => tr.cells[7].textContent);
    out.countdown = [left1, left2];

    out.step = "detail";
    await page.click(row);
    await page.waitForFunction((no) => document.getElementById("d-no").textContent === no,
      orderNo, { timeout: 20000 });
    out.detailTitle = await page.$eval("#d-fields", (dl) => dl.textContent);
    out.stateBefore = await page.$eval("#d-wf", (s) => s.dataset.wf);
    out.historyBefore = await page.$$eval("#history tbody tr", (trs) => trs.map((t) => t.cells[2].textContent));

    out.step = "sign";
    await clickAction(page, "sign");
    out.sign = await actionResult(page);
    await page.waitForFunction(() => document.getElementById("d-wf").dataset.wf === "handling",
      null, { timeout: 20000 });

    out.step = "close";
    await clickAction(page, "close");
    await page.waitForSelector("#action-form:not([hidden]) textarea[name=answer]");
    await page.fill("#action-form textarea[name=answer]", "已为客户修复宽带线路并致电确认，客户表示认可。");
    await page.click("#form-submit");
    out.close = await actionResult(page);
    await page.waitForFunction(() => document.getElementById("d-wf").dataset.wf === "closed",
      null, { timeout: 20000 });
    await page.waitForFunction(() => Array.from(document.querySelectorAll("#history tbody tr"))
      .some((t) => t.cells[2].textContent === "结办"), null, { timeout: 20000 });
    out.historyAfter = await page.$$eval("#history tbody tr", (trs) => trs.map((t) => t.cells[2].textContent));
    out.stateShown = await page.$eval("#d-wf", (s) => s.textContent);
    await page.waitForFunction((no) => !document.querySelector(`#queue tbody tr[data-order-no="${no}"]`),
      orderNo, { timeout: 20000 });
    out.leftQueue = true;

    out.step = "refused";
    await clickAction(page, "sign");
    out.refused = await actionResult(page);

    if (orderNo2) {
      out.step = "refused-list";
      const rrow = `#refused tbody tr[data-order-no="${orderNo}"]`;
      await page.waitForSelector(rrow, { timeout: 20000 });
      out.refusedRow = await page.$eval(rrow, (tr) => Array.from(tr.cells, (c) => c.textContent));
      out.link = await page.$eval("#link", (s) => ({ up: s.dataset.up, text: s.textContent }));

      out.step = "transfer";
      const row2 = `#queue tbody tr[data-order-no="${orderNo2}"]`;
      await page.waitForSelector(row2, { timeout: 20000 });
      await page.click(row2);
      await page.waitForFunction((no) => document.getElementById("d-no").textContent === no,
        orderNo2, { timeout: 20000 });
      await clickAction(page, "transfer");
      await page.waitForSelector("#action-form:not([hidden]) input[name=to_unit]");
      await page.fill("#action-form input[name=to_unit]", "sh-xh");
      await page.fill("#action-form textarea[name=reason]", "用户地址属徐汇区，转徐汇分公司处理");
      await page.click("#form-submit");
      out.transfer = await actionResult(page);
      await page.waitForFunction(() => Array.from(document.querySelectorAll("#history tbody tr"))
        .some((t) => t.cells[2].textContent === "转派"), null, { timeout: 20000 });
      out.transferHistory = await page.$$eval("#history tbody tr", (trs) =>
        trs.map((t) => [t.cells[2].textContent, t.cells[4].textContent, t.cells[6].textContent]));
      out.arriveButton = await page.$eval('#buttons button[data-action="arrive"]', (b) => b.textContent);
    }
    await page.screenshot({ path: shot, fullPage: true });
    out.screenshot = shot;
    await page.close();

    // Sort and overdue colour, against a made-up queue (no change to the shared clock).
    out.step = "fake";
    const fake = await browser.newPage({ viewport: { width: 1400, height: 700 } });
    fake.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
    fake.on("pageerror", (e) => out.pageErrors.push(String(e)));
    await fake.route("**/v1/queue", (route) => route.fulfill({
      status: 200, contentType: "application/json",
      body: JSON.stringify({ count: 4, orders: [
        { order_no: "F-LATE", title: "已超时", customer_name: "甲", region: "310115", unit_id: "u",
          due_at: "2026-01-01T09:00:00+08:00", time_left_seconds: -3725, received_at: null },
        { order_no: "F-LATER", title: "时间充裕", customer_name: "乙", region: "310115", unit_id: "u",
          due_at: "2026-01-03T09:00:00+08:00", time_left_seconds: 90000, received_at: null },
        { order_no: "F-VIP", title: "高优先级", customer_name: "丙", region: "310115", unit_id: "u",
          due_at: "2026-01-03T09:00:00+08:00", time_left_seconds: 100000, priority: 3, received_at: null },
        { order_no: "F-NODUE", title: "无时限", customer_name: "丁", region: "310115", unit_id: "u",
          due_at: null, time_left_seconds: null, received_at: null },
      ] }),
    }));
    // the centre out of reach, as GET /v1/link and /v1/actions would say it
    await fake.route("**/v1/link", (route) => route.fulfill({
      status: 200, contentType: "application/json",
      body: JSON.stringify({ handler_id: "handler-1", router_reachable: false, router_silence_ms: 9000,
        pending: 3, refused: 1, oldest_pending_at: "2026-01-01T09:00:00.000+08:00" }),
    }));
    await fake.route("**/v1/actions?*", (route) => route.fulfill({
      status: 200, contentType: "application/json",
      body: JSON.stringify({ count: 1, actions: [
        { action_id: "00000000-0000-4000-8000-000000000001", order_no: "F-LATE", title: "已超时",
          action: "close", actor: "甲", created_at: "2026-01-01T09:05:00.000+08:00", status: "refused",
          ok: false, code: "forbidden", message: "工单已由「sh-xh」办理，本单位不能操作" } ] }),
    }));
    await fake.goto(base + "/?token=fake", { waitUntil: "load" });
    await fake.waitForSelector('#queue tbody tr[data-order-no="F-LATE"]');
    out.fakeOrder = await fake.$$eval("#queue tbody tr", (trs) => trs.map((t) => t.dataset.orderNo));
    out.overdue = await fake.$eval('#queue tbody tr[data-order-no="F-LATE"] td.left', (td) => ({
      text: td.textContent, cls: td.className, color: getComputedStyle(td).color }));
    out.notOverdue = await fake.$eval('#queue tbody tr[data-order-no="F-LATER"] td.left', (td) => ({
      text: td.textContent, cls: td.className, color: getComputedStyle(td).color }));
    await fake.waitForFunction(() => document.getElementById("link").dataset.up === "false",
      null, { timeout: 10000 });
    out.linkDown = await fake.$eval("#link", (s) => s.textContent);
    await fake.waitForSelector("#refused tbody tr");
    out.fakeRefused = await fake.$$eval("#refused tbody tr", (trs) =>
      trs.map((t) => Array.from(t.cells, (c) => c.textContent)));
    out.queueShot = shot.replace(/\.png$/, "-queue.png");
    await fake.screenshot({ path: out.queueShot });
    await fake.close();
  } catch (e) {
    out.failure = String(e);
    try { out.shownError = await browser.contexts()[0].pages()[0].textContent("#error"); } catch (e2) { /* gone */ }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
