// A message created through OpenAI's Node SDK whose first answer is lost, for
// tests/test_idempotency.py.
//
// Reads BASE_URL (the API, ending in /v1), API_KEY and THREAD_ID from the environment. The client
// names the SDK's idempotency header (KeyedOpenAI), and its fetch lets the server answer the first
// POST, reads that answer, then fails as a reset connection would: the SDK retries. Prints one
// JSON object: {"message": <the id the SDK returned>, "keys": [<Idempotency-Key of each POST>]}.
//
// The SDK is the npm package "openai" under NODE_MODULES_DIR (see code_interpreter_stream.mjs).
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.NODE_MODULES_DIR || resolve(here, "..", "..", ".cache", "node", "node_modules");
const require = createRequire(join(nodeModules, "..", "package.json"));
const { OpenAI } = require("openai");

class KeyedOpenAI extends OpenAI {
  idempotencyHeader = "Idempotency-Key";
}

const keys = [];
let lose = 1;
async function losingFetch(url, init) {
  const response = await fetch(url, init);
  if ((init?.method || "GET").toUpperCase() !== "POST") return response;
  keys.push(new Headers(init.headers).get("idempotency-key"));
  if (lose > 0) {
    lose -= 1;
    await response.text(); // the server has done the work
    throw new TypeError("fetch failed (the test lost the answer)");
  }
  return response;
}

const client = new KeyedOpenAI({
  baseURL: process.env.BASE_URL,
  apiKey: process.env.API_KEY,
  fetch: losingFetch,
  maxRetries: 2,
});
const message = await client.beta.threads.messages.create(process.env.THREAD_ID, {
  role: "user",
  content: "say it once",
});
console.log(JSON.stringify({ message: message.id, keys }));
