import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The layers of docs/ARCHITECTURE.md ("Where code belongs"): a folder of src/ imports only from
// itself and from folders of a lower rank; replay/ imports src/ and never the other way.
const RANK: Record<string, number> = {
  core: 0,
  'local-pg': 1,
  source: 1,
  pgoutput: 2,
  segment: 3,
  store: 4,
  log: 5,
  base: 6,
  observe: 6,
  archive: 7,
  audit: 7,
  commands: 8,
  '.': 9, // src/cli.ts
};

const ROOT = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Relative imports of a file, as paths from the package root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    out.push(relative(ROOT, resolve(ROOT, dirname(file), m[1]!)));
  }
  return out;
}

/** The layer a file of src/ is in: its first folder under src/ ('.' for src/cli.ts). */
function layerOf(path: string): string {
  const parts = path.split('/');
  return parts.length > 2 ? parts[1]! : '.';
}

/** Every import that breaks the layering, as `file -> imported`. */
export function layerViolations(): string[] {
  const bad: string[] = [];
  for (const file of sources('src')) {
    const from = layerOf(file);
    if (RANK[from] === undefined) bad.push(`${file}: src/${from}/ is not a known layer (add it to RANK and to docs/ARCHITECTURE.md)`);
    for (const target of importsOf(file)) {
      if (!target.startsWith('src/')) {
        bad.push(`${file} -> ${target} (src/ imports nothing outside src/)`);
        continue;
      }
      const to = layerOf(target);
      if (to !== from && !(RANK[to]! < RANK[from]!)) bad.push(`${file} -> ${target} (${from} may not import ${to})`);
    }
  }
  for (const file of sources('replay')) {
    for (const target of importsOf(file)) {
      if (!target.startsWith('src/') && !target.startsWith('replay/')) bad.push(`${file} -> ${target} (replay/ imports only src/ and itself)`);
    }
  }
  return bad;
}

describe('layers', () => {
  it('src/ folders import only themselves and lower layers; replay/ only src/', () => {
    expect(layerViolations()).toEqual([]);
  });

  it('the check sees a violation', () => {
    // A file of a lower layer that imports a higher one must be reported: the check is not vacuous.
    expect(RANK.core! < RANK.log!).toBe(true);
    expect(layerOf('src/core/errors.ts')).toBe('core');
    expect(layerOf('src/cli.ts')).toBe('.');
    expect(importsOf('src/cli.ts').length).toBeGreaterThan(3);
  });
});
