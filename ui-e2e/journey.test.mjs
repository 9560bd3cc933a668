// The admin's first journey through the screens that exist: sign in, the Integrations cards,
// Law Ruler → Configuration (connect to the simulator, the webhook URL, status sync refused, the
// toggles, a webhook from the simulator, status sync on), a phone-width check; then webhooks
// (a refused URL, create one for a receiver, send a test and see its delivery, a second server
// that answers 401, its deliveries failed and listed by status, Replay and Recover), scheduling
// (a wrong key, the simulator's key, agents that can and cannot book), sign out.
//
// The steps run in order against one browser page and one stack (see harness.mjs); a step that
// fails saves a screenshot to artifacts/ and the steps after it are skipped. Append new steps
// with `step(...)` where they belong in the journey.

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

describe('admin journey: sign in, connect Law Ruler, webhooks and deliveries, scheduling', () => {
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

  // What assistive technology reads of the Integrations page before anything is connected: each
  // card is a list item with its name as a heading link, its state and its next step.
  const INTEGRATIONS_ARIA = `
- main:
  - heading "Integrations" [level=1]
  - list:
    - listitem:
      - heading "Law Ruler" [level=2]:
        - link "Law Ruler":
          - /url: /ui/integrations/lawruler
      - text: Not connected
      - paragraph: "Connect Law Ruler: enter the API credentials on the Configuration tab."
    - listitem:
      - heading "SmartAdvocate" [level=2]:
        - link "SmartAdvocate":
          - /url: /ui/integrations/smartadvocate
      - text: Not connected
      - paragraph: "Connect SmartAdvocate: enter the API credentials on the Configuration tab."
    - listitem:
      - heading "Scheduling" [level=2]:
        - link "Scheduling":
          - /url: /ui/scheduling
      - text: Not connected
      - paragraph: Paste the scheduling API key to let agents book appointments.
    - listitem:
      - heading "Webhooks" [level=2]:
        - link "Webhooks":
          - /url: /ui/webhooks
      - text: None yet
      - paragraph: Add a webhook to send platform events to your systems.
`.trim();

  step('the Integrations page\'s accessibility tree is the one committed', async () => {
    assert.equal(await page.locator('main').ariaSnapshot(), INTEGRATIONS_ARIA);
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


  // ---- Webhooks, deliveries, replay and recovery ----
  // Two firm servers (`casebridge sim receiver`): A gets the secret casebridge shows once, as the
  // secret page asks; B keeps a secret of its own at first, so it answers 401 to every delivery.

  /** Reloads the page until `check()` resolves truthy (or `timeoutMs` passes). */
  async function until(what, check, timeoutMs = 30_000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (await check()) return;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 500));
      await page.reload();
    }
  }

  /** Fills the new-webhook form with a name and URL (every event, active) and submits it. */
  async function createWebhook(name, url) {
    await page.getByLabel('Name').fill(name);
    await page.getByLabel('URL', { exact: true }).fill(url);
    return submit(page.getByRole('button', { name: 'Create webhook' }));
  }

  /** The webhook's id, from the detail page's URL. */
  const idFromUrl = () => new URL(page.url()).pathname.split('/').pop();

  const hooks = {};
  step('Webhooks → New webhook: a URL the policy refuses is named next to the URL field', async () => {
    await page.goto(`${stack.base}/ui/integrations`);
    await submit(page.locator('li.card h2 a', { hasText: 'Webhooks' }));
    assert.equal(new URL(page.url()).pathname, '/ui/webhooks');
    assert.equal(await text('h1'), 'Webhooks');
    assert.match(await text('main'), /No webhooks yet/);
    await submit(page.getByRole('link', { name: 'New webhook' }));
    assert.equal(await text('h1'), 'New webhook');
    const resp = await createWebhook('Firm server', 'http://10.1.2.3/x');
    assert.equal(resp.status(), 422);
    const err = page.locator('#url-error');
    assert.ok(await err.isVisible(), 'no error next to URL');
    assert.notEqual((await err.innerText()).trim(), '');
    assert.equal(await page.locator('#f-url').getAttribute('aria-invalid'), 'true');
    assert.match(await page.locator('#f-url').getAttribute('aria-describedby'), /\burl-error\b/);
    assert.equal(await page.locator('#webhook-form #f-url + #f-url-help + #url-error').count(), 1);
    assert.equal(await page.locator('#webhook-form .field-error').count(), 1, 'only the URL is blamed');
    // What was typed stays.
    assert.equal(await page.getByLabel('Name').inputValue(), 'Firm server');
    assert.equal(await page.getByLabel('URL', { exact: true }).inputValue(), 'http://10.1.2.3/x');
  });

  step('with the receiver\'s URL the webhook is created; its secret is shown once and goes to the receiver', async () => {
    const [a] = stack.receivers;
    const resp = await createWebhook('Firm server', `${a.url}/casebridge`);
    assert.equal(resp.status(), 201);
    assert.equal(await text('h1'), 'Webhook created');
    assert.match(await text('main'), /It is shown only now/);
    const secret = await page.locator('#signing-secret').inputValue();
    assert.match(secret, /^whsec_[A-Za-z0-9+/=]+$/);
    assert.notEqual(secret, a.secret);
    // The form cannot set a secret: the firm pastes the one shown into its server.
    await a.restart(secret);
    await submit(page.getByRole('link', { name: 'Continue to the webhook' }));
    assert.equal(await text('h1'), 'Firm server');
    hooks.a = idFromUrl();
    assert.match(await page.locator('dl.facts').innerText(), /Events\s+All, including future/);
    // The secret is not on the webhook's page.
    assert.ok(!(await page.content()).includes(secret), 'the secret is shown again');
    await submit(page.getByRole('link', { name: 'Back to webhooks' }));
    const row = page.locator(`#webhooks tr[data-id="${hooks.a}"]`);
    assert.equal(await row.locator('th').innerText(), 'Firm server');
    assert.equal(await row.locator('.host').innerText(), new URL(a.url).host);
    assert.equal(await row.locator('.events').innerText(), 'All, including future');
    assert.equal(await row.locator('.active').innerText(), 'Active');
    assert.equal(await row.locator('.last').innerText(), 'none yet');
  });

  step('Send test: the delivery page shows the attempt answered 204, and the receiver has it', async () => {
    await page.goto(`${stack.base}/ui/webhooks/${hooks.a}`);
    await submit(page.getByRole('button', { name: 'Send test event' }));
    assert.match(new URL(page.url()).pathname, /^\/ui\/deliveries\/[^/]+$/);
    assert.match(await page.getByRole('status').innerText(), /^A signed webhook\.test event \(\S+\) was queued/);
    assert.equal(await text('h1'), 'Delivery of webhook.test');
    await until('the first attempt', async () => (await page.locator('li.attempt').count()) > 0);
    assert.equal(await text('#delivery-status'), 'succeeded');
    const attempt = page.locator('li.attempt').first();
    assert.equal(await attempt.getAttribute('data-succeeded'), 'true');
    assert.match(await attempt.locator('.attempt-result').innerText(), /succeeded HTTP 204/);
    assert.match(await attempt.locator('h3').innerText(), /^Attempt 1 · test · /);
    assert.equal(await attempt.locator('.request-url').innerText(), `POST ${stack.receivers[0].url}/casebridge`);
    const headers = await attempt.locator('.request-headers tbody th').allInnerTexts();
    for (const h of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) assert.ok(headers.includes(h), `${h} in ${headers}`);
    const eventId = await attempt.locator('.request-headers tr:has(th:text-is("webhook-id")) td').innerText();
    const got = await stack.receivers[0].received();
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.deepEqual(
      { path: got[0].path, type: got[0].event_type, verified: got[0].verified, id: got[0].webhook_id },
      { path: '/casebridge', type: 'webhook.test', verified: true, id: eventId },
    );
    // Delivered: Replay is offered (a pending one has its next attempt queued instead).
    assert.ok(await page.getByRole('button', { name: 'Replay' }).isEnabled());
  });

  step('a second server with the wrong secret answers 401: the test is retried, Replay waits', async () => {
    await page.goto(`${stack.base}/ui/webhooks/new`);
    const resp = await createWebhook('Backup server', `${stack.receivers[1].url}/hooks`);
    assert.equal(resp.status(), 201);
    hooks.bSecret = await page.locator('#signing-secret').inputValue();
    await submit(page.getByRole('link', { name: 'Continue to the webhook' }));
    hooks.b = idFromUrl();
    await submit(page.getByRole('button', { name: 'Send test event' }));
    await until('the first attempt', async () => (await page.locator('li.attempt').count()) > 0);
    const attempt = page.locator('li.attempt').first();
    assert.equal(await attempt.getAttribute('data-succeeded'), 'false');
    assert.match(await attempt.locator('.attempt-result').innerText(), /failed HTTP 401/);
    assert.match(await attempt.locator('.attempt-error').innerText(), /the endpoint answered HTTP 401/);
    assert.equal(await text('#delivery-status'), 'pending');
    assert.notEqual((await text('#next-retry')).trim(), 'none');
    assert.ok(await page.getByRole('button', { name: 'Replay' }).isDisabled());
    assert.equal(await text('#replay-hint'), 'Its next attempt is already queued.');
    const got = await stack.receivers[1].received();
    assert.ok(got.length >= 1 && got.every((r) => !r.verified), JSON.stringify(got));
  });

  // A delivery is `failed` only when it gives up: after 24 hours of retries, on 410 Gone, or when
  // its webhook is off at its next attempt (test events are sent to an off webhook all the same).
  // Two platform events (messages sent, through the API) go to both webhooks; B's are retried
  // about 5 s later, by when B is turned off.
  step('platform events to the failing server: turned off, its deliveries fail; the list filtered by status shows them', async () => {
    const startedAt = new Date(Date.now() - 60_000);
    hooks.since = startedAt;
    for (const body of ['Your intake documents are ready to sign.', 'Your appointment is confirmed.']) {
      const r = await stack.api('POST', '/messages', { channel: 'sms', direction: 'outbound', to: '+1 555 010 2000', body });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await page.goto(`${stack.base}/ui/deliveries?webhook=${hooks.b}&event_type=message_sent`);
    await until('two message_sent deliveries answered 401', async () => {
      const rows = page.locator('#deliveries tbody tr');
      const answers = await rows.locator('td:nth-child(5)').allInnerTexts();
      return answers.length === 2 && answers.every((a) => a.includes('HTTP 401'));
    });
    await page.goto(`${stack.base}/ui/webhooks/${hooks.b}`);
    await page.getByLabel('Active: send events to this webhook').uncheck();
    await submit(page.getByRole('button', { name: 'Save webhook' }));
    assert.equal(await page.getByRole('status').innerText(), 'Webhook saved.');
    assert.match(await page.locator('dl.facts').innerText(), /Status\s+Off/);

    await page.goto(`${stack.base}/ui/deliveries?status=failed&webhook=${hooks.b}`);
    assert.equal(await page.locator('#q-status').inputValue(), 'failed');
    // Normally within seconds (the retry ~5 s after the first attempt); should a slow machine let
    // that retry happen before B was turned off, the next one comes a minute later.
    await until('two failed deliveries', async () => (await page.locator('#deliveries tbody tr').count()) === 2, 100_000);
    const rows = page.locator('#deliveries tbody tr');
    for (const row of await rows.all()) {
      assert.equal(await row.getAttribute('data-status'), 'failed');
      assert.equal(await row.locator('th').innerText(), 'message_sent');
      assert.match(await row.locator('td:nth-child(5)').innerText(), /the webhook is turned off/);
    }
    // A's deliveries of the same events succeeded.
    await page.goto(`${stack.base}/ui/deliveries?status=succeeded&webhook=${hooks.a}&event_type=message_sent`);
    await until('A\'s two succeeded deliveries', async () => (await page.locator('#deliveries tbody tr').count()) === 2);
  });

  step('the firm fixes its secret; Replay from the inspector sends a failed delivery again: 204', async () => {
    await stack.receivers[1].restart(hooks.bSecret);
    await page.goto(`${stack.base}/ui/webhooks/${hooks.b}`);
    await page.getByLabel('Active: send events to this webhook').check();
    await submit(page.getByRole('button', { name: 'Save webhook' }));
    assert.match(await page.locator('dl.facts').innerText(), /Status\s+Active/);

    await page.goto(`${stack.base}/ui/deliveries?status=failed&webhook=${hooks.b}`);
    await submit(page.locator('#deliveries tbody tr').last().locator('th a'));
    assert.equal(await text('#delivery-status'), 'failed');
    assert.equal(await text('#replay-hint'), 'Sends it again with the same event id.');
    const before = await page.locator('li.attempt').count();
    const resp = await submit(page.getByRole('button', { name: 'Replay' }));
    assert.equal(resp.status(), 200);
    assert.match(await page.getByRole('status').innerText(), /^Queued again, with the same event id \S+/);
    await until('the replay answered', async () => (await text('#delivery-status')) === 'succeeded');
    const attempts = page.locator('li.attempt');
    assert.equal(await attempts.count(), before + 1);
    const last = attempts.last();
    assert.match(await last.locator('h3').innerText(), new RegExp(`^Attempt ${before + 1} · manual · `));
    assert.match(await last.locator('.attempt-result').innerText(), /succeeded HTTP 204/);
    const eventId = await last.locator('.request-headers tr:has(th:text-is("webhook-id")) td').innerText();
    assert.equal(await attempts.first().locator('.request-headers tr:has(th:text-is("webhook-id")) td').innerText(), eventId);
    const got = await stack.receivers[1].received();
    const replayed = got.filter((r) => r.webhook_id === eventId);
    assert.equal(replayed.length, 1, JSON.stringify(got));
    assert.ok(replayed[0].verified);
    assert.equal(replayed[0].event_type, 'message_sent');
    await shot('delivery-inspector');
  });

  /** A time as the deliveries filters' datetime-local input takes it, in the company's zone. */
  const localInput = (d) =>
    new Intl.DateTimeFormat('sv-SE', {
      timeZone: stack.company.timezone,
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    }).format(d).replace(' ', 'T');

  step('Recover asks since when, states how many failed deliveries match, and requeues them', async () => {
    await page.goto(`${stack.base}/ui/deliveries?status=failed&webhook=${hooks.b}`);
    assert.equal(await page.locator('#deliveries tbody tr').count(), 1);
    const resp = await submit(page.locator('#recover-link'));
    assert.equal(resp.status(), 200, "asking for a start time is not an error");
    assert.equal(await text('h1'), 'Recover failed deliveries');
    assert.match(await text('#since-error'), /choose since when/);
    // The filters of the list came along.
    assert.equal(await page.locator('#q-status').inputValue(), 'failed');
    assert.equal(await page.locator('#q-webhook').inputValue(), hooks.b);
    await page.getByLabel(/^Created since/).fill(localInput(hooks.since));
    await submit(page.getByRole('button', { name: 'Count the deliveries to recover' }));
    assert.equal(await page.locator('#recover-count').getAttribute('data-count'), '1');
    assert.match(await text('#recover-count'), /^1 failed delivery matches/);
    page.once('dialog', (d) => d.accept());
    await submit(page.getByRole('button', { name: /^Requeue 1 deliver/ }));
    assert.equal(new URL(page.url()).pathname, '/ui/deliveries');
    assert.match(await page.getByRole('status').innerText(), /^1 requeued/);
    await page.goto(`${stack.base}/ui/deliveries?webhook=${hooks.b}&event_type=message_sent`);
    await until('both of B\'s message deliveries succeeded', async () => {
      const s = await page.locator('#deliveries tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.status));
      return s.length === 2 && s.every((x) => x === 'succeeded');
    });
    assert.equal((await stack.receivers[1].received()).filter((r) => r.verified && r.event_type === 'message_sent').length, 2);
    // Nothing is left to recover.
    await page.goto(`${stack.base}/ui/deliveries/recover?webhook=${hooks.b}&since=${encodeURIComponent(localInput(hooks.since))}`);
    assert.equal(await page.locator('#recover-count').getAttribute('data-count'), '0');
    assert.equal(await page.getByRole('button', { name: /^Requeue/ }).count(), 0);
  });

  step('the webhooks list shows both webhooks and their last delivery', async () => {
    await page.goto(`${stack.base}/ui/webhooks`);
    for (const [id, name] of [[hooks.a, 'Firm server'], [hooks.b, 'Backup server']]) {
      const row = page.locator(`#webhooks tr[data-id="${id}"]`);
      assert.equal(await row.locator('th').innerText(), name);
      assert.equal(await row.locator('.events').innerText(), 'All, including future');
      assert.equal(await row.locator('.active').innerText(), 'Active');
    }
    assert.match(await page.locator(`#webhooks tr[data-id="${hooks.a}"] .last`).innerText(), /^succeeded HTTP 204$/);
    await shot('webhooks');
  });

  // ---- Scheduling ----

  step('Scheduling: a wrong key is refused with the message in place', async () => {
    await page.goto(`${stack.base}/ui/integrations`);
    await submit(page.locator('li.card h2 a', { hasText: 'Scheduling' }));
    assert.equal(new URL(page.url()).pathname, '/ui/scheduling');
    assert.equal(await text('h1'), 'Scheduling');
    assert.match(await text('#connection'), /Not connected/);
    await page.getByLabel('API key').fill('cal_not_the_key');
    const resp = await submit(page.getByRole('button', { name: 'Connect' }));
    assert.equal(resp.status(), 422);
    const msg = page.locator('#connection .field-error, #connection [role=alert]');
    assert.equal(await msg.count(), 1, 'no single message in the Connection section');
    assert.notEqual((await msg.innerText()).trim(), '');
    assert.match(await text('#connection'), /Not connected/);
    assert.equal(await page.locator('#agents [role=alert], #agents .field-error').count(), 0);
  });

  step('the simulator\'s key connects; the key is shown masked', async () => {
    await page.getByLabel('API key').fill('cal_sim_demo_key');
    const resp = await submit(page.getByRole('button', { name: 'Connect' }));
    assert.equal(resp.status(), 200);
    assert.equal(await page.getByRole('status').innerText(), 'Connected: the scheduling service accepted the key.');
    assert.match(await text('#connection'), /Connected/);
    const masked = await text('#masked-key');
    assert.notEqual(masked, 'cal_sim_demo_key');
    assert.ok(!(await page.content()).includes('cal_sim_demo_key'), 'the key is on the page');
    assert.equal(await page.getByRole('button', { name: 'Replace key' }).count(), 1);
  });

  step('an agent with booking on and an Event Type ID can book; one without cannot', async () => {
    await page.locator('#new-name').fill('Intake agent');
    await page.locator('#new-booking').check();
    await page.locator('#new-event').fill('1001');
    await submit(page.getByRole('button', { name: 'Add agent' }));
    assert.equal(await page.getByRole('status').innerText(), 'Agent Intake agent added.');
    const legend = page.locator('form.agent legend', { hasText: 'Intake agent' });
    assert.equal(await legend.locator('.badge').innerText(), 'Can book');

    await page.locator('#new-name').fill('After-hours agent');
    await submit(page.getByRole('button', { name: 'Add agent' }));
    const other = page.locator('form.agent fieldset', { has: page.locator('legend', { hasText: 'After-hours agent' }) });
    assert.equal(await other.locator('legend .badge').innerText(), 'Cannot book');
    assert.notEqual((await other.locator('p.hint').innerText()).trim(), '');
    await shot('scheduling');
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
