// posthog-node, the oracle for the calls PostHog's Python SDK lacks (tests/node_support.py): makes
// the calls of a JSON file ({"options": {...}, "calls": [{"call": "name", "args": [...]}]}) on a
// client of POSTHOG_API_KEY at POSTHOG_HOST, flushes, and prints what each call returned (one
// JSON array; undefined is null, an Error is {"error": message}).
import { readFileSync } from "node:fs";
import { PostHog } from "posthog-node";

const { options, calls } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const client = new PostHog(process.env.POSTHOG_API_KEY, {
  host: process.env.POSTHOG_HOST, flushAt: 1, flushInterval: 0, ...(options || {}),
});
const results = [];
for (const { call, args } of calls) {
  try {
    const value = await client[call](...(args || []));
    results.push(value === undefined ? null : value);
  } catch (error) {
    results.push({ error: String(error && error.message) });
  }
}
await client.shutdown();
console.log(JSON.stringify(results));
