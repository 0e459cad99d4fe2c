// Every code of the error catalogue is documented in the README's Errors table, with the
// status the servers answer it with: users script against the codes, so a new one must be
// written down before it ships.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, WeirError } from '../../src/common/errors.js';

const README = new URL('../../README.md', import.meta.url);

interface Row {
  status: string;
  when: string;
  todo: string;
}

/** The rows of the table under `## Errors`, by code. */
function documented(): Map<string, Row> {
  const text = readFileSync(README, 'utf8');
  const section = text.split(/^## /m).find((s) => s.startsWith('Errors\n'));
  if (!section) throw new Error('README.md has no "## Errors" section');
  const rows = new Map<string, Row>();
  for (const line of section.split('\n')) {
    const cells = /^\|(.*)\|\s*$/
      .exec(line)?.[1]
      ?.split('|')
      .map((c) => c.trim());
    const code = cells && /^`([a-z_]+)`$/.exec(cells[0] ?? '')?.[1];
    if (!cells || !code) continue;
    rows.set(code, { status: cells[1] ?? '', when: cells[2] ?? '', todo: cells[3] ?? '' });
  }
  return rows;
}

describe("the README's Errors table", () => {
  const rows = documented();

  it.each([...ERROR_CODES])('documents %s with its status, when it happens and what to do', (code) => {
    const row = rows.get(code);
    expect(row, `README.md's Errors table has no row for \`${code}\``).toBeDefined();
    expect(row!.status, `the status of \`${code}\` in README.md`).toBe(String(new WeirError(code, '').status));
    expect(row!.when.length, `what \`${code}\` means`).toBeGreaterThan(10);
    expect(row!.todo.length, `what to do about \`${code}\``).toBeGreaterThan(10);
  });

  it('documents no code the catalogue lacks', () => {
    expect([...rows.keys()].filter((code) => !(ERROR_CODES as readonly string[]).includes(code))).toEqual([]);
  });
});
