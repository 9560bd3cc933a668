// The admin's first journey through the screens that exist: sign in, the Integrations cards,
// Law Ruler → Configuration (connect to the simulator, the webhook URL, status sync refused, the
// toggles, a webhook from the simulator, status sync on), a phone-width check, sign out.
//
// The steps run in order against one browser page and one stack (see harness.mjs); a step that
// fails saves a screenshot to artifacts/ and the steps after it are skipped. Append new steps
// (webhooks, deliveries, scheduling) with `step(...)` where they belong in the journey.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { artifacts, CHROMIUM, CHROMIUM_ARGS, startStack } from './harness.mjs';

mkdirSync(artifacts, { recursive: true });

let stack;
let browser;
let context;
let page;
let failed = null;
/** What the browser reported as errors (CSP violations, script errors), with the page's path. */
const browserErrors = [];

/** Saves a full-page screenshot of `p` as artifacts/<name>.png. */
async function shot(name, p = page) {
  await p.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

/** One step of the journey: skipped once a step before it failed; a screenshot if it fails. */
function step(name, fn) {
  it(name, async (t) => {
    if (failed) {
      t.skip(`an earlier step failed: ${failed}`);
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      failed = name;
      const file = `failure-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
      if (page) await shot(file).catch(() => {});
      throw e;
    }
  });
}

/** The page's response to a navigation or submit, with its status. */
async function submit(locator) {
  const [resp] = await Promise.all([page.waitForNavigation(), locator.click()]);
  return resp;
}

const text = (sel) => page.locator(sel).innerText();

describe('admin journey: sign in, connect Law Ruler, first webhook, settings', () => {
  before(async () => {
    stack = await startStack();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.base });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    const where = () => new URL(page.url()).pathname;
    page.on('pageerror', (e) => browserErrors.push(`${where()}: ${e}`));
    page.on('console', (m) => {
      // A 401 or 422 answer is logged as "Failed to load resource"; those are expected here.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        browserErrors.push(`${where()}: ${m.text()}`);
      }
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stack?.stop();
  });

  step('a page without a session asks to sign in', async () => {
    await page.goto(`${stack.base}/ui/integrations`);
    const url = new URL(page.url());
    assert.equal(url.pathname, '/ui/login');
    assert.equal(url.searchParams.get('next'), '/ui/integrations');
    assert.equal(await text('h1'), 'Sign in to casebridge');
    await shot('login');
  });

  step('a wrong password is refused with the message in place, the email kept', async () => {
    await page.getByLabel('Email').fill(stack.admin.email);
    await page.getByLabel('Password').fill('not the password at all');
    const resp = await submit(page.getByRole('button', { name: 'Sign in' }));
    assert.equal(resp.status(), 401);
    assert.equal(new URL(page.url()).pathname, '/ui/login');
    const alert = page.getByRole('alert');
    assert.match(await alert.innerText(), /The email or password is not right/);
    // The message sits above the form it is about.
    assert.equal(await page.locator('.form-error + form[action="/ui/login"]').count(), 1);
    assert.equal(await page.getByLabel('Email').inputValue(), stack.admin.email);
    assert.equal(await page.getByLabel('Password').inputValue(), '');
  });

  step('the right password signs in to the page asked for: Integrations', async () => {
    await page.getByLabel('Password').fill(stack.admin.password);
    const resp = await submit(page.getByRole('button', { name: 'Sign in' }));
    assert.equal(resp.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/ui/integrations');
    assert.equal(await text('h1'), 'Integrations');
    const header = await text('header.top');
    assert.ok(header.includes(stack.company.name), header);
    assert.ok(header.includes(stack.company.timezone), header);
    assert.ok(header.includes(stack.admin.email), header);
    assert.equal(await page.locator('nav[aria-label=Sections] a[aria-current=page]').innerText(), 'Integrations');
  });

  step('each integration has a card with a badge and its next step', async () => {
    const cards = page.locator('li.card');
    const names = await cards.locator('h2').allInnerTexts();
    for (const name of ['Law Ruler', 'SmartAdvocate', 'Scheduling', 'Webhooks']) {
      assert.ok(names.includes(name), `no ${name} card in ${names}`);
    }
    const lr = cards.filter({ has: page.locator('h2', { hasText: 'Law Ruler' }) });
    assert.equal(await lr.locator('.badge').innerText(), 'Not connected');
    assert.match(await lr.locator('.next-step').innerText(), /^Connect Law Ruler/);
    for (const card of await cards.all()) {
      assert.notEqual((await card.locator('.badge').innerText()).trim(), '');
      assert.notEqual((await card.locator('.next-step').innerText()).trim(), '');
    }
    // The stylesheet is loaded (the CSP allows it): cards are laid out, not a bare list.
    assert.equal(await cards.first().evaluate((e) => getComputedStyle(e).listStyleType), 'none');
    await shot('integrations');
  });

  step('on a phone (390 px) the integrations page does not scroll sideways', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      storageState: await context.storageState(),
    });
    try {
      const p = await phone.newPage();
      await p.goto(`${stack.base}/ui/integrations`);
      assert.equal(await p.locator('h1').innerText(), 'Integrations');
      const { scrollWidth, innerWidth } = await p.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
      }));
      await shot('integrations-phone', p);
      assert.ok(scrollWidth <= innerWidth, `scrollWidth ${scrollWidth} > innerWidth ${innerWidth}`);
    } finally {
      await phone.close();
    }
  });

  step('the Law Ruler card opens its Configuration tab', async () => {
    await submit(page.getByRole('link', { name: 'Law Ruler', exact: true }));
    assert.equal(new URL(page.url()).pathname, '/ui/integrations/lawruler');
    assert.equal(await text('h1'), 'Law Ruler');
    assert.equal(await page.locator('nav.tabs a[aria-current=page]').innerText(), 'Configuration');
    assert.match(await text('#connection'), /Not connected/);
    const done = await page.locator('.checklist li').evaluateAll((lis) => lis.map((l) => l.dataset.done));
    assert.deepEqual(done, ['false', 'false', 'false', 'false']);
    // Each value says where to find it.
    assert.match(await text('#f-key-help'), /Setup → 3rd Party Integrations/);
  });

  /** Fills the connect form (the secrets always; the rest unless `keepRest`); submits it. */
  async function connect(key, { keepRest = false } = {}) {
    if (!keepRest) {
      await page.getByLabel('Client Root').fill(stack.lawruler);
      await page.getByLabel('Username').fill('demo');
    }
    await page.getByLabel('Password', { exact: true }).fill('demo-password');
    await page.getByLabel('Client Secret').fill('demo-secret');
    await page.getByLabel('Key', { exact: true }).fill(key);
    return submit(page.locator('#connect-form button[type=submit]'));
  }

  step('a wrong key is named next to the Key field, and nothing is connected', async () => {
    const resp = await connect('not-the-key');
    assert.equal(resp.status(), 422);
    const err = page.locator('#key-error');
    assert.ok(await err.isVisible(), 'no error next to Key');
    assert.notEqual((await err.innerText()).trim(), '');
    assert.equal(await page.locator('#f-key').getAttribute('aria-invalid'), 'true');
    assert.match(await page.locator('#f-key').getAttribute('aria-describedby'), /\bkey-error\b/);
    // Right after the Key field and its help, inside the connect form.
    assert.equal(await page.locator('#connect-form #f-key + #f-key-help + #key-error').count(), 1);
    // Only the Key is blamed.
    assert.equal(await page.locator('#connect-form .field-error').count(), 1);
    assert.match(await text('#connection'), /Not connected/);
    // What was typed stays, except the secrets, which are never sent back.
    assert.equal(await page.getByLabel('Client Root').inputValue(), stack.lawruler);
    assert.equal(await page.getByLabel('Username').inputValue(), 'demo');
    for (const label of ['Password', 'Client Secret', 'Key']) {
      assert.equal(await page.getByLabel(label, { exact: true }).inputValue(), '', label);
    }
  });

  step('the right values connect to the simulator', async () => {
    const resp = await connect('demo-key', { keepRest: true });
    assert.equal(resp.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/ui/integrations/lawruler');
    assert.equal(await page.getByRole('status').innerText(), 'Connected to Law Ruler: the credentials were verified.');
    assert.match(await text('#connection'), /Connected since/);
    assert.equal(await page.locator('.checklist li', { hasText: 'Connected' }).getAttribute('data-done'), 'true');
    // Secrets are masked, never rendered.
    const html = await page.content();
    for (const secret of ['demo-password', 'demo-secret', 'demo-key']) {
      assert.ok(!html.includes(secret), `${secret} is on the page`);
    }
    assert.equal(await page.locator('#connect-form button[type=submit]').innerText(), 'Reconnect');
  });

  let webhookUrl;
  step('the webhook URL is shown and Copy copies it', async () => {
    webhookUrl = await page.locator('#webhook-url').inputValue();
    assert.ok(webhookUrl.startsWith(`${stack.base}/hooks/lawruler/`), webhookUrl);
    const copy = page.locator('button[data-copy=webhook-url]');
    assert.equal(await copy.innerText(), 'Copy');
    await copy.click();
    await page.waitForFunction((b) => b.textContent === 'Copied', await copy.elementHandle());
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), webhookUrl);
    // The label goes back after a moment.
    await page.waitForFunction((b) => b.textContent === 'Copy', await copy.elementHandle(), { timeout: 5_000 });
    assert.match(await text('#webhook'), /Last webhook received: never/);
  });

  step('status sync cannot be turned on before statuses are mapped: said in place', async () => {
    assert.match(await text('#status-sync'), /Off/);
    const resp = await submit(page.getByRole('button', { name: 'Turn status sync on' }));
    assert.equal(resp.status(), 422);
    const msg = page.locator('#status-sync [role=alert]');
    assert.equal(await msg.count(), 1, 'no message in the Status sync section');
    assert.match(await msg.innerText(), /map statuses before turning on status sync/);
    assert.match(await text('#status-sync'), /Off/);
    // The Connection section does not carry it too.
    assert.equal(await page.locator('#connection [role=alert]').count(), 0);
  });

  step('the toggles form saves Enable Integration and Receive', async () => {
    // Each toggle says which others it needs, by their labels.
    assert.match(await text('#t-send_messages-d'), /Needs: Enable Integration, Send data to the CRM\.$/);
    await page.getByLabel('Enable Integration').check();
    await page.getByLabel('Receive data from the CRM').check();
    const resp = await submit(page.getByRole('button', { name: 'Save settings' }));
    assert.equal(resp.status(), 200);
    assert.equal(await page.getByRole('status').innerText(), 'Settings saved.');
    assert.equal(new URL(page.url()).hash, '#toggles');
    assert.ok(await page.getByLabel('Enable Integration').isChecked());
    assert.ok(await page.getByLabel('Receive data from the CRM').isChecked());
    assert.ok(!(await page.getByLabel('Send data to the CRM').isChecked()));
    assert.equal(await page.locator('.checklist li', { hasText: 'Sync enabled' }).getAttribute('data-done'), 'true');
  });

  // The toggles come before the first webhook: while Enable Integration or Receive is off, a
  // webhook is answered `ignored` and does not count as received (no "Last webhook received",
  // no checklist tick), although the page's next step asks for the webhook first.
  step('a webhook from Law Ruler (the simulator) shows as received', async () => {
    const leads = await (await fetch(`${stack.lawruler}/_sim/leads`)).json();
    const lead = leads[0].leadId;
    const r = await fetch(`${stack.lawruler}/_sim/leads/${lead}/status`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'Qualified – Intake Completed', target_url: webhookUrl }),
    });
    const sent = await r.json();
    assert.equal(r.status, 200, JSON.stringify(sent));
    assert.ok(sent.webhook.status >= 200 && sent.webhook.status < 300, JSON.stringify(sent.webhook));
    assert.doesNotMatch(sent.webhook.response_body ?? '', /ignored/, sent.webhook.response_body);
    await page.reload();
    const line = await page.locator('#webhook p', { hasText: 'Last webhook received' }).innerText();
    assert.ok(!line.includes('never'), line);
    assert.match(line, /Last webhook received: \d{4}-\d\d-\d\d \d\d:\d\d/);
    assert.match(await page.locator('#health dt:has-text("Last webhook received") + dd').innerText(), /^\d{4}-/);
    assert.equal(await page.locator('.checklist li', { hasText: 'First webhook received' }).getAttribute('data-done'), 'true');
    assert.match(await page.locator('.checklist li', { hasText: 'First webhook received' }).innerText(), /^✓/);
    assert.match(await text('#webhook'), /Records received: 1\./);
    // Its case type and status were linked from the webhook.
    assert.equal(await page.locator('.checklist li', { hasText: 'Case types linked' }).getAttribute('data-done'), 'true');
    await shot('lawruler-configuration');
  });

  step('with the statuses the webhook linked, status sync turns on', async () => {
    // The first webhook linked its case type and status (the checklist's "Case types linked").
    const resp = await submit(page.getByRole('button', { name: 'Turn status sync on' }));
    assert.equal(resp.status(), 200);
    assert.equal(await page.getByRole('status').innerText(), 'Status sync is on.');
    assert.match(await text('#status-sync'), /On\s+Status changes are sent to Law Ruler/);
    assert.equal(await page.getByRole('button', { name: 'Turn status sync off' }).count(), 1);
  });

  step('no page broke the CSP or threw a script error', async () => {
    assert.deepEqual(browserErrors, []);
  });

  step('sign out ends the session', async () => {
    await submit(page.getByRole('button', { name: 'Sign out' }));
    assert.equal(new URL(page.url()).pathname, '/ui/login');
    await page.goto(`${stack.base}/ui/integrations/lawruler`);
    assert.equal(new URL(page.url()).pathname, '/ui/login');
  });
});
