// What the browser suites share: the system Chromium, `next start` on a free port, and the steps every suite
// repeats (signing in through the sign-in page, reading the navigation). Not a test file itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB_DIR = path.join(REPO_ROOT, 'apps/web');
const NEXT_BIN = path.join(REPO_ROOT, 'node_modules/next/dist/bin/next');
/** Screenshots to look at after a run; test-artifacts/ is gitignored. */
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? path.join(REPO_ROOT, 'test-artifacts', 'web');
export const SESSION_COOKIE = 'fundus_session';
export const DESKTOP = { width: 1280, height: 900 };
export const TABLET = { width: 768, height: 1024 };
// The page's own alerts; Next.js adds an empty role=alert route announcer outside <main>.
export const PAGE_ALERT = 'main [role="alert"]';

/** Chromium (playwright-core), or null after marking the test skipped where it is missing outside CI. */
export async function launchChromium(t) {
  if (!existsSync(CHROMIUM)) {
    // CI installs Chromium (scripts/ci-setup.sh), so there a missing browser is a failure, not a skip.
    if (process.env.CI === 'true') assert.fail(`chromium not installed at ${CHROMIUM}; scripts/ci-setup.sh should have installed it`);
    t.skip(`chromium not installed at ${CHROMIUM}: run scripts/ci-setup.sh (apt-get install chromium)`);
    return null;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  t.after(() => browser.close());
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return browser;
}

export async function newPage(browser, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  return { context, page };
}

export const screenshot = (page, name) => page.screenshot({ path: path.join(SCREENSHOT_DIR, name), fullPage: true });

async function findFreePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function runToCompletion(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited with ${code}`))));
  });
}

/** `next start` in its own process group, so stopping it also stops any worker it forked. */
export async function startWebServer(t, { apiUrl }) {
  const env = { ...process.env, API_URL: apiUrl, NEXT_TELEMETRY_DISABLED: '1' };
  if (!existsSync(path.join(WEB_DIR, '.next/BUILD_ID'))) {
    await runToCompletion(process.execPath, [NEXT_BIN, 'build'], { cwd: WEB_DIR, env });
  }
  const port = await findFreePort();
  const child = spawn(process.execPath, [NEXT_BIN, 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: WEB_DIR,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGTERM');
  };
  t.after(stop);

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${output}`);
    try {
      // The sign-in page answers without a session (every other page may redirect to it).
      const response = await fetch(`${baseUrl}/signin`);
      if (response.status < 500) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      stop();
      throw new Error(`next start did not answer on ${baseUrl} within 30 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { baseUrl, output: () => output };
}

/** The sign-in button of a demo user, as the sign-in page labels it. */
export const signInButton = (page, user) => page.getByRole('button', { name: `Sign in as ${user.name} (${user.role})`, exact: true });

/** Signs in through the real sign-in page (from `from`, default /signin) and waits for the page it lands on. */
export async function signInAs(page, baseUrl, user, { from = '/signin', landsOn } = {}) {
  await page.goto(`${baseUrl}${from}`);
  await page.waitForURL(/\/signin/);
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/signin')), signInButton(page, user).click()]);
  if (landsOn) assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, landsOn);
}

export async function readNavLinks(page) {
  return page.locator('header nav[aria-label="Main"] a').allInnerTexts();
}

export async function readSignedInUser(page) {
  const user = page.getByTestId('signed-in-user');
  return (await user.count()) === 0 ? null : (await user.innerText()).replace(/\s+/g, ' ').trim();
}

export async function findSessionCookie(context) {
  return (await context.cookies()).find((cookie) => cookie.name === SESSION_COOKIE) ?? null;
}

/** The page fits the viewport's width: nothing but scroll containers (the results table) is wider. */
export async function assertFitsWidth(page) {
  const { scrollWidth, innerWidth, overflowing } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    // The elements that stick out and are not inside a scroll container that fits, to say what to fix.
    overflowing: [...document.querySelectorAll('body *')]
      .filter((element) => element.getBoundingClientRect().right > window.innerWidth + 0.5)
      .filter((element) => {
        for (let ancestor = element.parentElement; ancestor; ancestor = ancestor.parentElement) {
          const clips = getComputedStyle(ancestor).overflowX !== 'visible';
          if (clips && ancestor.getBoundingClientRect().right <= window.innerWidth + 0.5) return false;
        }
        return true;
      })
      .slice(0, 5)
      .map((element) => `${element.tagName.toLowerCase()}${element.className ? `.${String(element.className).split(' ').join('.')}` : ''} (right edge ${Math.round(element.getBoundingClientRect().right)} px)`),
  }));
  assert.ok(scrollWidth <= innerWidth, `page is ${scrollWidth} px wide in a ${innerWidth} px viewport: ${overflowing.join(', ')}`);
}

/** The API's demo users (GET /auth/local/users), and a lookup by subject. */
export async function fetchDemoUsers(api) {
  const { users } = await (await fetch(`${api.baseUrl}/auth/local/users`)).json();
  return { users, userOf: (subject) => users.find((user) => user.subject === subject) };
}
