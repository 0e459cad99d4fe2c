// The system's chromium (Debian's package), driven by puppeteer-core: the dashboard's browser
// spec and the README's screenshots use it. puppeteer's own browser download cannot be used
// here, and is not needed.
import { existsSync } from 'node:fs';
import puppeteer, { type Browser } from 'puppeteer-core';

export const CHROMIUM = process.env.WEIR_CHROMIUM ?? '/usr/bin/chromium';

export const hasChromium = (): boolean => existsSync(CHROMIUM);

/** `executable`: another way to start the same browser (the benchmark's `taskset` wrapper). */
export async function launchChromium(executable = CHROMIUM): Promise<Browser> {
  return puppeteer.launch({
    executablePath: executable,
    headless: true,
    args: [
      // Chromium refuses to run as root with its sandbox on (CI runs as root).
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      '--disable-dev-shm-usage',
      '--disable-gpu',
      '--no-first-run',
      '--no-default-browser-check',
    ],
  });
}
