// Drives headless Chromium through the browser test's page (tests/e2e/test_e2e_browser.py).
// Usage: node drive.cjs PLAYWRIGHT_CORE_DIR CHROMIUM PAGE_URL UPLOAD_FILE USER_DATA_DIR
// Opens the page, picks UPLOAD_FILE in the form's file input, submits the form (a presigned
// POST to relay, which redirects back to the page's origin), waits for the page's script to
// publish window.relayResult, and prints it as one line of JSON.
"use strict";

const [playwrightDir, chromiumPath, pageUrl, uploadFile, userDataDir] = process.argv.slice(2);
const { chromium } = require(playwrightDir);

// Flags that work on a headless, sandbox-less test machine and keep Chromium off the network.
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

(async () => {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: FLAGS,
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const messages = [];
    page.on("console", (message) => messages.push(message.text()));
    await page.goto(pageUrl);
    await page.setInputFiles("input[type=file]", uploadFile);
    await Promise.all([page.waitForURL(/\/done/), page.click("button[type=submit]")]);
    await page.waitForFunction(() => window.relayResult !== undefined, null, { timeout: 60000 });
    const result = await page.evaluate(() => window.relayResult);
    result.console = messages;
    process.stdout.write(JSON.stringify(result) + "\n");
  } finally {
    await context.close();
  }
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
