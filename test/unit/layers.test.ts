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

/** Every import that breaks the layering, as `file -> imported (why)`, given each file's imports. */
function violations(files: Map<string, string[]>): string[] {
  const bad: string[] = [];
  for (const [file, imports] of files) {
    if (file.startsWith('replay/')) {
      for (const target of imports) {
        if (!target.startsWith('src/') && !target.startsWith('replay/'))
          bad.push(`${file} -> ${target} (replay/ imports only src/ and itself)`);
      }
      continue;
    }
    const from = layerOf(file);
    if (RANK[from] === undefined) bad.push(`${file}: src/${from}/ is not a known layer (add it to RANK and to docs/ARCHITECTURE.md)`);
    for (const target of imports) {
      if (!target.startsWith('src/')) {
        bad.push(`${file} -> ${target} (src/ imports nothing outside src/)`);
        continue;
      }
      const to = layerOf(target);
      if (to !== from && !(RANK[to]! < RANK[from]!)) bad.push(`${file} -> ${target} (${from} may not import ${to})`);
    }
  }
  return bad;
}

const tree = () => new Map([...sources('src'), ...sources('replay')].map((f) => [f, importsOf(f)]));

describe('layers (docs/ARCHITECTURE.md, Where code belongs)', () => {
  it('src/ folders import only themselves and lower layers; replay/ only src/ and itself', () => {
    const files = tree();
    expect(files.size).toBeGreaterThan(50);
    expect(violations(files)).toEqual([]);
  });

  it('reports an import of a higher layer, of replay/ from src/, of a sibling layer, and an unknown folder', () => {
    const files = new Map([
      ['src/core/lsn.ts', ['src/log/segments.js']],
      ['src/log/segments.ts', ['replay/plan.js', 'src/core/lsn.js']],
      ['src/archive/archiver.ts', ['src/audit/verify.js', 'src/base/take.js']],
      ['src/misc/thing.ts', []],
      ['replay/plan.ts', ['bench/replay.js', 'src/log/resolve.js']],
    ]);
    expect(violations(files)).toEqual([
      'src/core/lsn.ts -> src/log/segments.js (core may not import log)',
      'src/log/segments.ts -> replay/plan.js (src/ imports nothing outside src/)',
      'src/archive/archiver.ts -> src/audit/verify.js (archive may not import audit)',
      'src/misc/thing.ts: src/misc/ is not a known layer (add it to RANK and to docs/ARCHITECTURE.md)',
      'replay/plan.ts -> bench/replay.js (replay/ imports only src/ and itself)',
    ]);
  });
});
