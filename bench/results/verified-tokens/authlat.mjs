// node bench/results/verified-tokens/authlat.mjs DIR_A DIR_B (from the root of a checkout with
// dist/ built; each DIR another such checkout): one master of each build with JWT_SECRET on
// 127.0.0.231/232, and authenticated GET /api/jobs?limit=1 to each in turns of 50, the side
// going first alternating; the first 20 turns of each warm up. Prints each side's p50/p90/p99
// and A over B turn by turn (the quartiles of the ratios of turn medians).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { Pool } from 'undici';

const secret = 'k'.repeat(40);
const dirs = process.argv.slice(2).map((d) => resolve(d));
if (dirs.length !== 2) throw new Error('usage: authlat.mjs DIR_A DIR_B');
const { mintToken } = await import(`${dirs[0]}/dist/src/common/auth.js`);
const token = await mintToken(secret, 3_600_000, 'bench', { role: 'client' });
const sides = dirs.map((dir, i) => {
  const data = mkdtempSync('/tmp/authlat-');
  const host = `127.0.0.${231 + i}`;
  const port = 7400 + i;
  const child = spawn(
    process.execPath,
    [`${dir}/bin/weir.js`, 'master', '--host', host, '--port', String(port), '--data-dir', data],
    { env: { ...process.env, JWT_SECRET: secret }, stdio: 'ignore' },
  );
  return { dir, data, child, pool: new Pool(`http://${host}:${port}`, { connections: 4 }), times: [], turns: [] };
});
const get = async (s) => {
  const r = await s.pool.request({ method: 'GET', path: '/api/jobs?limit=1', headers: { authorization: `Bearer ${token}` } });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`${r.statusCode} ${text}`);
};
const q = (a, x) => {
  const v = [...a].sort((u, w) => u - w);
  return v[Math.floor(x * (v.length - 1))];
};
try {
  for (const s of sides)
    for (let i = 0; ; i++) {
      try {
        await get(s);
        break;
      } catch (err) {
        if (i > 300) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  const TURNS = Number(process.env.TURNS || 100);
  for (let i = 0; i < TURNS; i++) {
    for (const s of i % 2 ? [...sides].reverse() : sides) {
      const turn = [];
      for (let j = 0; j < 50; j++) {
        const t = performance.now();
        await get(s);
        turn.push(performance.now() - t);
      }
      if (i >= 20) {
        s.times.push(...turn);
        s.turns.push(q(turn, 0.5));
      }
    }
  }
  for (const s of sides) {
    const f = (x) => q(s.times, x).toFixed(3);
    console.log(`${s.dir}: p50 ${f(0.5)} p90 ${f(0.9)} p99 ${f(0.99)} ms (${s.times.length} requests)`);
  }
  const ratios = sides[0].turns.map((t, i) => t / sides[1].turns[i]);
  const r = (x) => q(ratios, x).toFixed(2);
  console.log(`${sides[0].dir} / ${sides[1].dir} turn by turn: ${r(0.5)}× (quartiles ${r(0.25)}–${r(0.75)})`);
} finally {
  for (const s of sides) {
    s.child.kill('SIGKILL');
    rmSync(s.data, { recursive: true, force: true });
  }
}
process.exit(0);
