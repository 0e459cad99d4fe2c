// The consensus folder still imports the codec from here; this goes once it names protocol/msgpack.ts.
export { newCodec } from '../protocol/msgpack.js';
