import type { RelationDef } from '../src/segment/format.js';
import type { CapturedDdl } from '../src/source/ddl-capture.js';
import type { TableEffect } from './net-effect.js';
import type { EffectSink } from './planner.js';
import type { ReplayValue } from './values.js';

/**
 * The applier, before there is one: the planner folds the log while the database it will apply
 * to is still being made (`replay --pgdata` and `--csv` start a new cluster, which takes about
 * as long as folding a million changes). Each call waits for the applier, then goes straight to
 * it; calls keep their order (the planner waits for each one but `sequences`, which is queued).
 */
export class DeferredSink implements EffectSink {
  private sink: EffectSink | undefined;
  private readonly queued: Record<string, string>[] = [];

  constructor(private readonly ready: Promise<EffectSink>) {
    // Registered first: the queue reaches the applier before any call that waited for it.
    ready.then(
      (sink) => {
        this.sink = sink;
        for (const values of this.queued.splice(0)) sink.sequences(values);
      },
      () => {}, // surfaced by the calls that wait for it
    );
  }

  private async applier(): Promise<EffectSink> {
    return this.sink ?? this.ready;
  }

  async apply(effects: TableEffect[]): Promise<void> {
    return (await this.applier()).apply(effects);
  }

  async truncate(relations: RelationDef[]): Promise<void> {
    return (await this.applier()).truncate(relations);
  }

  async redefine(previous: RelationDef, next: RelationDef): Promise<void> {
    return (await this.applier()).redefine(previous, next);
  }

  async ddl(captured: CapturedDdl): Promise<void> {
    return (await this.applier()).ddl(captured);
  }

  sequences(values: Record<string, string>): void {
    if (this.sink) this.sink.sequences(values);
    else this.queued.push(values);
  }

  async updateKey(relation: RelationDef, oldKey: ReplayValue[], row: ReplayValue[]): Promise<void> {
    return (await this.applier()).updateKey(relation, oldKey, row);
  }
}
