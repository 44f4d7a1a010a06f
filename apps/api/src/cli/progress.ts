// A progress line for long CLI runs: a redrawn bar on a terminal, a line every few seconds otherwise (CI logs).
export function createProgressReporter(label: string, stream: NodeJS.WriteStream = process.stderr) {
  const started = Date.now();
  let lastLine = 0;
  return {
    update(done: number, total: number, extra = '') {
      const elapsed = (Date.now() - started) / 1000;
      const rate = elapsed > 0 ? done / elapsed : 0;
      const width = 30;
      const filled = total > 0 ? Math.round((done / total) * width) : width;
      const text = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${rate.toFixed(1)}/s ${extra}`;
      if (stream.isTTY) stream.write(`\r${text}`);
      else if (Date.now() - lastLine > 5000 || done === total) {
        stream.write(`${text}\n`);
        lastLine = Date.now();
      }
    },
    finish() {
      if (stream.isTTY) stream.write('\n');
    },
  };
}
