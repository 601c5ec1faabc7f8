// A code_interpreter run streamed through OpenAI's Node SDK (AssistantStream), for
// tests/test_node_sdk_code_interpreter.py.
//
// Reads BASE_URL (the API, ending in /v1), API_KEY and MODEL from the environment; creates an
// assistant with code_interpreter, a thread with a question, streams a run with
// client.beta.threads.runs.stream and records, in order, the AssistantStream events an
// application sees, then the stream's final run steps, messages and run. Prints one JSON object:
//   {"events": [...], "finalRunSteps": [...], "finalMessages": [...], "finalRun": {...}}
// Any exception (the SDK rejecting an event included) goes to stderr, exit status 1.
//
// The SDK is the npm package "openai" that `make .cache/node/.installed` puts under
// .cache/node/node_modules; NODE_MODULES_DIR overrides that directory. It is loaded through
// createRequire because an ES module resolves bare specifiers from its own location, not from
// NODE_PATH or the working directory.
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.NODE_MODULES_DIR || resolve(here, "..", "..", ".cache", "node", "node_modules");
const require = createRequire(join(nodeModules, "..", "package.json"));

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function output(o) {
  if (o.type === "logs") return { type: "logs", logs: o.logs };
  if (o.type === "image") return { type: "image", file_id: o.image?.file_id };
  return { type: o.type };
}

async function main() {
  const { OpenAI } = require("openai");
  const client = new OpenAI({ baseURL: env("BASE_URL"), apiKey: env("API_KEY"), maxRetries: 0, timeout: 60_000 });
  const assistant = await client.beta.assistants.create({
    model: env("MODEL"),
    tools: [{ type: "code_interpreter" }],
  });
  const thread = await client.beta.threads.create({
    messages: [{ role: "user", content: process.env.QUESTION || "Plot 1, 2, 3 and tell me 6 times 7." }],
  });

  const events = [];
  let lastEvent; // the server's last event, to name the one the SDK rejects, if it does
  const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
  stream
    .on("event", (event) => {
      lastEvent = event;
    })
    .on("toolCallCreated", (call) => events.push({ event: "toolCallCreated", type: call.type }))
    .on("toolCallDelta", (delta) => {
      const recorded = { event: "toolCallDelta", type: delta.type };
      if (delta.type === "code_interpreter" && delta.code_interpreter) {
        if (delta.code_interpreter.input) recorded.input = delta.code_interpreter.input;
        if (delta.code_interpreter.outputs) recorded.outputs = delta.code_interpreter.outputs.map(output);
      }
      events.push(recorded);
    })
    .on("toolCallDone", (call) => events.push({ event: "toolCallDone", type: call.type }))
    .on("runStepDelta", (delta, snapshot) =>
      events.push({ event: "runStepDelta", step_id: snapshot.id, type: delta.step_details?.type }),
    )
    .on("textDelta", (delta) => events.push({ event: "textDelta", value: delta.value }))
    .on("imageFileDone", (image) => events.push({ event: "imageFileDone", file_id: image.file_id }))
    .on("messageDone", (message) =>
      events.push({ event: "messageDone", content: message.content.map((part) => part.type) }),
    );

  let finalRunSteps, finalMessages, finalRun;
  try {
    finalRunSteps = await stream.finalRunSteps();
    finalMessages = await stream.finalMessages();
    finalRun = await stream.finalRun();
  } catch (error) {
    process.stderr.write(`last event received: ${JSON.stringify(lastEvent)}\n`);
    throw error;
  }
  process.stdout.write(`${JSON.stringify({ events, finalRunSteps, finalMessages, finalRun })}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack || error}\n`);
  process.exit(1);
});
