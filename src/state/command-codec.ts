import { newCodec } from '../protocol/msgpack.js';
import type { Codec } from '../consensus/ports.js';
import type { Command } from './commands.js';

const packr = newCodec();

/** Commands as they are written to the Raft log and sent to followers: msgpack records. */
export const commandCodec: Codec<Command> = {
  encode: (command) => packr.pack(command),
  decode: (bytes) => packr.unpack(bytes) as Command,
};
