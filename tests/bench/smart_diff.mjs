// Time api-smart-diff on two OpenAPI JSON files, for tests/bench/diff_large.py.
// Usage: node tests/bench/smart_diff.mjs <path to api-smart-diff/dist/index.mjs> OLD.json NEW.json
// Prints one JSON line: seconds (apiDiff call only), parse_seconds (read + JSON.parse of both),
// changes (number of diffs), breaking (diffs classified "breaking") and the count of every type.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [modulePath, oldPath, newPath] = process.argv.slice(2);
const { apiDiff } = await import(pathToFileURL(modulePath).href);

const t0 = performance.now();
const before = JSON.parse(readFileSync(oldPath, "utf8"));
const after = JSON.parse(readFileSync(newPath, "utf8"));
const t1 = performance.now();
const diffs = apiDiff(before, after);
const t2 = performance.now();

const types = {};
for (const diff of diffs) types[diff.type] = (types[diff.type] ?? 0) + 1;
console.log(JSON.stringify({
  seconds: (t2 - t1) / 1000,
  parse_seconds: (t1 - t0) / 1000,
  changes: diffs.length,
  breaking: types.breaking ?? 0,
  types,
}));
