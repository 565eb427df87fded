// graphql-http's audit of the GraphQL-over-HTTP spec against a running server:
// `node audit.mjs <base URL> <API key>`. Prints one line per audit that did not pass and
// the tally; exits 1 on any warning or error (a notice is a MAY the server does not do).
import { auditServer } from 'graphql-http';

const [base, key] = process.argv.slice(2);
if (!base || !key) {
  console.error('usage: node audit.mjs <base URL> <API key>');
  process.exit(2);
}
// The server answers callers with a key only: the audit's requests carry one.
const fetchFn = (url, init = {}) =>
  fetch(url, { ...init, headers: { ...(init.headers || {}), authorization: `Bearer ${key}` } });
const results = await auditServer({ url: `${base}/graphql`, fetchFn });
const tally = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  tally[result.status] += 1;
  if (result.status !== 'ok') {
    console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason}`);
  }
}
console.log(
  `graphql-http audit: ${tally.ok} ok, ${tally.notice} notices, ${tally.warn} warnings, ${tally.error} errors`,
);
process.exitCode = tally.warn === 0 && tally.error === 0 ? 0 : 1;
