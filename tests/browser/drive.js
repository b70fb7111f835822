'use strict';
// Drives one headless browser through the page of tests/browser/checks.js, for tests/browsers.rs.
//
//   node drive.js <chrome|firefox> <executable> <profile dir> <page url> <timeout ms> [browser args...]
//
// The browser args are added to the command line of the browser (for wss://, Chromium's
// `--ignore-certificate-errors-spki-list=<hash>`).
//
// Chromium is driven over CDP, Firefox over WebDriver BiDi, both by puppeteer-core (which never
// downloads a browser). Prints `VERSION <browser version>`, then every line the page reports
// (`STEP ...`, `DONE`); when the page has not finished within the timeout, `HUNG <what the page
// was waiting for>`. Exits 0 once the page reported DONE, 1 otherwise.

const puppeteer = require('puppeteer-core');

const [kind, executablePath, userDataDir, url, timeoutArg, ...extraArgs] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg) || 180000;

// Nothing but the page may talk to the network: no updates, telemetry, safe browsing, prefetch
// or captive-portal probes (the machine has no route out, and such traffic would only add noise).
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-domain-reliability',
  '--no-pings',
  '--metrics-recording-only',
];
const FIREFOX_PREFS = {
  'app.update.enabled': false,
  'app.update.auto': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.search.update': false,
  'browser.newtabpage.enabled': false,
  'browser.ping-centre.telemetry': false,
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'media.gmp-manager.updateEnabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.http.speculative-parallel-limit': 0,
  'network.prefetch-next': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'network.websocket.extensions.permessage-deflate': true,
};

function out(line) {
  process.stdout.write(line.replace(/\n/g, ' ') + '\n');
}

async function main() {
  const options = {
    browser: kind === 'firefox' ? 'firefox' : 'chrome',
    executablePath,
    userDataDir,
    headless: true,
    protocolTimeout: Math.max(60000, timeoutMs),
    timeout: 60000,
  };
  if (kind === 'firefox') {
    options.args = ['--headless', ...extraArgs];
    options.extraPrefsFirefox = FIREFOX_PREFS;
  } else {
    options.args = [...CHROMIUM_ARGS, ...extraArgs];
    options.pipe = true; // CDP over a pipe: no debugging port, and the browser ends with node
  }
  const browser = await puppeteer.launch(options);
  let finished = false;
  try {
    out(`VERSION ${await browser.version()}`);
    const page = await browser.newPage();
    const done = new Promise((resolve) => {
      page.on('console', (msg) => {
        const text = msg.text();
        if (!text.startsWith('WSX ')) return;
        out(text.slice(4));
        if (text === 'WSX DONE') resolve(true);
      });
    });
    page.on('pageerror', (err) => out(`PAGEERROR ${err && err.message}`));
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    await page.goto(url, { waitUntil: 'load', timeout: 60000 });
    finished = await Promise.race([done, timeout]);
    clearTimeout(timer);
    if (!finished) {
      let waiting = 'unknown';
      try {
        waiting = await page.evaluate(() => window.wsxProgress);
      } catch (e) {
        waiting = `unknown (${e.message})`;
      }
      out(`HUNG after ${timeoutMs} ms, the page was at: ${waiting}`);
    }
  } finally {
    await browser.close();
  }
  process.exit(finished ? 0 : 1);
}

main().catch((err) => {
  out(`DRIVER ERROR ${err && err.stack || err}`);
  process.exit(1);
});
