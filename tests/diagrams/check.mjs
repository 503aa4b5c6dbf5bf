// Parses every ```mermaid block of the Markdown files given with Mermaid's own parser
// (in a jsdom window, as in a browser); exits 1 naming the file and the error when one
// does not parse, or when a file named has no diagram at all.
import { JSDOM } from 'jsdom';
import fs from 'fs';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
const mermaid = (await import('mermaid')).default;
mermaid.initialize({ startOnLoad: false });

let failed = 0;
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  const blocks = [...text.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]);
  if (blocks.length === 0) {
    failed++;
    console.log(`${file}: no mermaid diagram`);
  }
  for (const [i, block] of blocks.entries()) {
    try {
      const parsed = await mermaid.parse(block);
      console.log(`${file}: diagram ${i + 1} parses (${parsed.diagramType})`);
    } catch (e) {
      failed++;
      console.log(`${file}: diagram ${i + 1} does not parse: ${e.message ?? e}`);
    }
  }
}
process.exit(failed ? 1 : 0);
