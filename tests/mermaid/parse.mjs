// Mermaid's own parser over the Mermaid blocks of a CI page: a JSON array of block texts on
// stdin, a JSON array of problems on stdout (empty when every block parses). Mermaid expects a
// browser; jsdom gives it the window and document it reads.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const problems = [];
for (const [index, block] of JSON.parse(Buffer.concat(chunks).toString()).entries()) {
  try {
    await mermaid.parse(block);
  } catch (error) {
    problems.push(`block ${index + 1} (${block.split("\n")[0]}): ${String(error.message).split("\n").slice(0, 3).join(" ")}`);
  }
}
process.stdout.write(JSON.stringify(problems));
