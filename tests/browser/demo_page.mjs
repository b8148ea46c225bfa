// lcnet serve's demo page in headless Chromium: load it, pick an example
// page (turned 90 degrees clockwise) in its file input, and read the answer
// the page shows: the label, the probabilities and the page turned upright.
//
//   cargo build && (cd tests/browser && npm ci && node demo_page.mjs [path/to/lcnet])
//
// Needs Debian's chromium (/usr/bin/chromium, or CHROMIUM=...). Leaves a
// screenshot in target/demo-page.png (a test artefact, not committed).

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const lcnet = path.resolve(process.argv[2] ?? path.join(root, "target/debug/lcnet"));

// Start the server on a free loopback port and read where it listens.
const server = spawn(lcnet, ["serve", "--port", "0"], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
const address = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: server.stderr });
  lines.on("line", (line) => {
    const found = line.match(/listening on (http:\/\/\S+)/);
    if (found) resolve(found[1]);
  });
  server.on("exit", (code) => reject(new Error(`lcnet serve exited with ${code}`)));
  setTimeout(() => reject(new Error("lcnet serve did not start in 30 s")), 30000);
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const failed = [];
  page.on("requestfailed", (request) => failed.push(request.url()));
  page.on("pageerror", (error) => failed.push(String(error)));
  await page.goto(address);
  assert.equal(await page.title(), "lcnet serve");

  await page.setInputFiles("#file", path.join(root, "examples/pages/page_90.png"));
  await page.waitForSelector("body[data-done]", { timeout: 30000 });
  assert.equal(await page.getAttribute("body", "data-done"), "yes", await page.textContent("#error"));

  // The label and the probabilities, most probable first, summing to 1.
  assert.match(await page.textContent("#status"), /page_90\.png: 90 \(0\.9\d\d\)/);
  const rows = await page.$$eval("#classes tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.deepEqual(rows.map((r) => r[0]), ["90", "270", "0", "180"].slice(0, rows.length));
  assert.equal(rows.length, 4);
  const total = rows.reduce((sum, r) => sum + Number(r[1]), 0);
  assert.ok(Math.abs(total - 1) < 0.001, `probabilities sum to ${total}`);

  // The page turned upright: the input 1100x850 (landscape) comes back 850x1100.
  assert.equal(await page.getAttribute("body", "data-angle"), "90");
  assert.match(await page.textContent("#upright-caption"), /turned back by 90 degrees/);
  const size = await page.$eval("#upright", (img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight]));
  assert.deepEqual(size, [850, 1100]);

  assert.deepEqual(failed, [], "no failed request or script error");
  await page.screenshot({ path: path.join(root, "target/demo-page.png"), fullPage: true });
  console.log(`demo page: page_90.png -> ${rows[0][0]} (${rows[0][1]}), upright ${size.join("x")}; screenshot target/demo-page.png`);
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
