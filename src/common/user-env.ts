import { WeirError } from './errors.js';

/**
 * Checks `config.env` of a job (batch or streaming): an object of strings, at most 64 KiB of
 * them — all the environment its user code gets. Undefined when absent.
 */
export function checkUserEnv(raw: unknown): Record<string, string> | undefined {
  if (raw === undefined) return undefined;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw invalid('config.env must be an object of strings, like {"LANG": "C.UTF-8"}');
  }
  let bytes = 0;
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw invalid(`config.env.${k} must be a string; got ${JSON.stringify(v)}`);
    if (k === '' || k.includes('=') || k.includes('\0') || v.includes('\0')) {
      throw invalid(`config.env has a name or value a process environment cannot hold: ${JSON.stringify(k)}`);
    }
    bytes += k.length + v.length;
  }
  if (bytes > 64 * 1024) throw invalid('config.env holds more than 64 KiB');
  return raw as Record<string, string>;
}

const invalid = (message: string): WeirError => new WeirError('validation_failed', message);
