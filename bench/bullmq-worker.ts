// One BullMQ worker process for the peer benchmark: processes jobs of one queue with an
// async no-op, as Weir's workers run `noop` tasks. Started by bullmq.ts with
// REDIS_PORT, QUEUE and CONCURRENCY in its environment; reports 'ready' over IPC.
import { Worker } from 'bullmq';

const connection = { host: '127.0.0.1', port: Number(process.env.REDIS_PORT) };
const concurrency = Number(process.env.CONCURRENCY ?? 8);

const worker = new Worker(process.env.QUEUE ?? 'bench', async () => {}, { connection, concurrency });

worker.on('error', (err) => process.stderr.write(`bullmq worker error: ${err.message}\n`));
await worker.waitUntilReady();
process.send?.('ready');

// Told to stop (SIGTERM) or orphaned (IPC channel closed): leave promptly either way.
const stop = () => {
  void worker.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('disconnect', stop);
