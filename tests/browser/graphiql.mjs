// GraphiQL in headless Chromium, as a new user meets it: `node graphiql.mjs <base URL>
// <admin key>` against a server whose GraphiQL is pre-filled with that key. Fails (exit 1,
// the reason on stderr) on any console error, failed request or missing behaviour:
//  1. the schema loads on first load (Docs explorer, autocomplete);
//  2. the Customer 360 example tab runs and answers data;
//  3. the live `events` subscription runs over /graphql/ws and shows a new event;
//  4. a key typed later into the headers editor fetches the schema again with it.
// With GRAPHIQL_SCREENSHOT=<file>, a screenshot of the 360 answer is written there
// (docs/graphiql.png).
import puppeteer from 'puppeteer-core';

const [base, key] = process.argv.slice(2);
if (!base || !key) {
  console.error('usage: node graphiql.mjs <base URL> <admin key>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

function fail(message) {
  throw new Error(message);
}

// Names the step a failure happened in (a timeout alone does not say which wait ran out).
async function step(name, action) {
  try {
    return await action();
  } catch (error) {
    throw new Error(`${name}: ${error.message}`);
  }
}

// Waits for `predicate` in the page, doing `attempt` again every few seconds meanwhile, as a
// person would press a key again when nothing happened (GraphiQL hands the fetched schema
// to its editors a moment after the response, later still on a loaded machine).
async function retryUntil(page, attempt, predicate, timeout = 30000) {
  const until = Date.now() + timeout;
  for (;;) {
    await attempt();
    const left = until - Date.now();
    if (left <= 0) fail('never happened');
    try {
      await page.waitForFunction(predicate, { timeout: Math.min(3000, left) });
      return;
    } catch (error) {
      if (Date.now() >= until) throw error;
    }
  }
}

// The text of the CodeMirror editor matched by `selector` (GraphiQL's editors).
async function editorText(page, selector) {
  return page.$eval(selector, (el) => el.CodeMirror.getValue());
}

async function waitForText(page, selector, predicate, what, timeout = 15000) {
  const until = Date.now() + timeout;
  let text = '';
  while (Date.now() < until) {
    text = await editorText(page, selector).catch(() => '');
    if (predicate(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`${what}: never came (last: ${text.slice(0, 500)})`);
}

const RESULT = '.graphiql-response .CodeMirror';
const QUERY = '.graphiql-query-editor .CodeMirror';

function isIntrospection(response) {
  const body = response.request().postData() || '';
  return response.url().endsWith('/graphql') && body.includes('IntrospectionQuery');
}

async function openTab(page, index) {
  const tabs = await page.$$('.graphiql-tab-button');
  if (tabs.length < 6) fail(`expected the six example tabs, found ${tabs.length}`);
  await tabs[index].click();
  // As a person would: GraphiQL reads the tab's document a moment after showing it.
  await new Promise((r) => setTimeout(r, 500));
}

async function execute(page) {
  await page.click('.graphiql-execute-button');
}

const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const problems = [];
let strict = true;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  page.on('console', (msg) => {
    if (msg.type() === 'error' && strict) problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    if (strict) problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400 && strict) {
      problems.push(`HTTP ${response.status()}: ${response.url()}`);
    }
  });

  // 1. The schema on first load, with the pre-filled key.
  const introspected = page.waitForResponse(isIntrospection, { timeout: 30000 });
  await step('the first load', () => page.goto(`${base}/`, { waitUntil: 'networkidle0', timeout: 60000 }));
  const first = await step('the first introspection', () => introspected);
  if (first.status() !== 200) fail(`the first introspection answered ${first.status()}`);
  const schema = await first.json();
  if (!schema.data || !schema.data.__schema) fail('the first introspection returned no schema');
  await step('the Docs explorer', () =>
    retryUntil(
      page,
      async () => {
        const open = await page.$('.graphiql-doc-explorer');
        if (!open) await page.click('button[aria-label="Show Documentation Explorer"]');
      },
      () => document.querySelector('.graphiql-doc-explorer')?.innerText.includes('Query'),
    ),
  );
  const errorShown = await page.evaluate(() => document.body.innerText.includes('Error fetching schema'));
  if (errorShown) fail('GraphiQL shows "Error fetching schema"');
  // Autocomplete knows the schema's fields.
  await step('autocomplete', () =>
    retryUntil(
      page,
      async () => {
        await page.$eval(QUERY, (el) => {
          el.CodeMirror.setValue('{ vie');
          el.CodeMirror.setCursor({ line: 0, ch: 5 });
          el.CodeMirror.focus();
        });
        await page.keyboard.down('Control');
        await page.keyboard.press('Space');
        await page.keyboard.up('Control');
      },
      () => [...document.querySelectorAll('.CodeMirror-hint')].some((h) => h.innerText.trim() === 'viewer'),
    ),
  );
  await page.keyboard.press('Escape');

  // 2. The Customer 360 tab.
  await openTab(page, 1);
  await execute(page);
  const answer = await waitForText(page, RESULT, (t) => t.includes('"customers"'), 'the 360 answer');
  const parsed = JSON.parse(answer);
  if (parsed.errors) fail(`the 360 answered errors: ${answer}`);
  if (!parsed.data.customers.nodes.length || !parsed.data.customers.nodes[0].name) {
    fail(`the 360 answered no customer: ${answer}`);
  }
  if (process.env.GRAPHIQL_SCREENSHOT) {
    await page.screenshot({ path: process.env.GRAPHIQL_SCREENSHOT });
  }

  // 3. The live subscription: started, then an event made by another client shows up.
  await openTab(page, 5);
  await execute(page);
  await new Promise((r) => setTimeout(r, 1000));
  const email = `browser-${Date.now()}@example.com`;
  const made = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify({
      query: 'mutation($e: String!) { upsertCustomer(input: { email: $e, name: "Browser" }) { userErrors { code } } }',
      variables: { e: email },
    }),
  });
  if (made.status !== 200) fail(`the mutation answered ${made.status}`);
  await waitForText(page, RESULT, (t) => t.includes('customer.upserted'), 'the subscription event', 20000);
  await execute(page); // stops the subscription

  // 4. A key typed later: the schema is fetched again, with it.
  strict = false; // the wrong key's 401 is expected
  const refused = page.waitForResponse((r) => isIntrospection(r) && r.status() === 401, {
    timeout: 30000,
  });
  await page.$$eval('.graphiql-editor-tool .CodeMirror', (editors) => {
    const headers = editors.find((el) => el.CodeMirror.getValue().includes('Authorization'));
    headers.CodeMirror.setValue(JSON.stringify({ Authorization: 'Bearer gg_admin_wrong' }));
  });
  await refused.catch(() => fail('a wrong key did not fetch the schema again'));
  const accepted = page.waitForResponse(
    (r) => isIntrospection(r) && r.status() === 200 && r.request().headers().authorization === `Bearer ${key}`,
    { timeout: 30000 },
  );
  await page.$$eval(
    '.graphiql-editor-tool .CodeMirror',
    (editors, key) => {
      const headers = editors.find((el) => el.CodeMirror.getValue().includes('Authorization'));
      headers.CodeMirror.setValue(JSON.stringify({ Authorization: `Bearer ${key}` }));
    },
    key,
  );
  await accepted.catch(() => fail('the right key typed later did not fetch the schema'));
  await step('the schema fetched again', () =>
    page.waitForFunction(() => !document.body.innerText.includes('Error fetching schema'), {
      timeout: 30000,
    }),
  );
  strict = true;
  await new Promise((r) => setTimeout(r, 500));
  if (problems.length) fail(problems.join('\n'));
  console.log('graphiql: schema, autocomplete, the 360 tab, a live subscription, a key typed later: ok');
} catch (error) {
  console.error(error.message);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
