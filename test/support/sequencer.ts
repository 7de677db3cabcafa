import { BaseSequencer, type TestSpecification } from 'vitest/node';

// The files that take many minutes each (they replay a history at every point, some on five
// majors), longest first. vitest orders a run by the durations it cached, which a fresh clone
// (CI) lacks: it then starts the largest files first, and these are small (their work is in
// test/support), so one worker ran them alone at the end (2026-12-06: the last 16 minutes of a
// 56-minute run). Started first, the two workers end together. Durations from that run.
const LONGEST = [
  'versions-16-18', // 1224 s
  'schema-changes-at-point', // 1193 s
  'versions-14-15', // 849 s
  'long-archive', // 295 s
  'replay-oracle-kms', // 196 s
  'interrupts', // 195 s
  'replay-oracle-encrypted', // 175 s
  'replay-oracle', // 154 s
];

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = LONGEST.findIndex((name) => f.moduleId.endsWith(`/${name}.test.ts`));
      return i < 0 ? LONGEST.length : i;
    };
    return [...(await super.sort(files))].sort((a, b) => rank(a) - rank(b));
  }
}
