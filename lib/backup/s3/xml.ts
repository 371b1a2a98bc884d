/**
 * A minimal XML reader for the few S3 responses the client reads
 * (ListObjectsV2, DeleteObjects results, `<Error>` bodies, Object Lock
 * configuration). Elements, text and the five named entities plus numeric
 * character references; attributes, comments, CDATA and processing
 * instructions are skipped. Not a general XML parser: it trusts the server
 * to send well-formed documents and fails on anything else.
 *
 * @module
 */

/** One element: its name (without namespace prefix), text and child elements. */
export interface XmlElement {
  /** Local name. */
  name: string;
  /** Concatenated text of the element itself (not of its children), entities decoded. */
  text: string;
  /** Child elements in document order. */
  children: XmlElement[];
}

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

/** Decode the entities and character references of XML text. */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? m;
  });
}

/** Escape text for an XML element body. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${Object.keys(ENTITIES).find((k) => ENTITIES[k] === c)};`);
}

/**
 * Parse `xml` into its root element. Throws `SyntaxError` on mismatched or
 * missing tags.
 *
 * @example Read the code of an S3 error
 * ```ts
 * import { child, parseXml } from "./xml.ts";
 * const root = parseXml("<Error><Code>SlowDown</Code></Error>");
 * console.log(child(root, "Code")?.text); // "SlowDown"
 * ```
 */
export function parseXml(xml: string): XmlElement {
  const stack: XmlElement[] = [{ name: "#document", text: "", children: [] }];
  const tag =
    /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[^>]*?)?)(\/?)>|<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!\[CDATA\[([\s\S]*?)\]\]>|<![^>]*>/g;
  let last = 0;
  for (let m = tag.exec(xml); m !== null; m = tag.exec(xml)) {
    const top = stack[stack.length - 1];
    top.text += decodeEntities(xml.slice(last, m.index));
    last = tag.lastIndex;
    if (m[5] !== undefined) {
      top.text += m[5];
      continue;
    }
    if (m[2] === undefined) continue; // declaration, comment, doctype
    const name = m[2].includes(":") ? m[2].slice(m[2].indexOf(":") + 1) : m[2];
    if (m[1] === "/") {
      if (stack.length < 2 || top.name !== name) {
        throw new SyntaxError(`XML: unexpected </${name}>`);
      }
      stack.pop();
    } else {
      const el: XmlElement = { name, text: "", children: [] };
      top.children.push(el);
      if (m[4] !== "/") stack.push(el);
    }
  }
  if (stack.length !== 1) {
    throw new SyntaxError(`XML: <${stack[stack.length - 1].name}> not closed`);
  }
  const root = stack[0].children[0];
  if (!root) throw new SyntaxError("XML: no element");
  return root;
}

/** The first child element named `name`. */
export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

/** Every child element named `name`. */
export function children(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** The text of the first child named `name`, or `undefined`. */
export function childText(el: XmlElement, name: string): string | undefined {
  return child(el, name)?.text;
}
