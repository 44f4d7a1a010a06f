// Structured JSON logs with pino, one line per event on stderr. The API logs start-up, one line per request
// (request id, method, route, status, duration, outcome code, role; pino-http in server.ts), and unexpected
// errors. Credentials and patient identifiers are redacted by path wherever they could appear in a log object;
// messages are written never to contain them.
import pino, { type DestinationStream } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export type Logger = Record<Exclude<LogLevel, 'silent'>, (message: string, fields?: Record<string, unknown>) => void> & {
  /** The pino instance, for pino-http. */
  readonly pino: pino.Logger;
};

/** Paths censored in every log line (pino fast-redact; `*` is one level of any key). */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'authorization',
  'token',
  'uploadToken',
  'apiKey',
  'secret',
  'mrn',
  'identifier',
  'value',
  'birthYear',
  '*.authorization',
  '*.token',
  '*.uploadToken',
  '*.apiKey',
  '*.secret',
  '*.mrn',
  '*.identifier',
  '*.birthYear',
  'variables',
  '*.variables',
];

export function createLogger(level: LogLevel, write?: (line: string) => void): Logger {
  const destination: DestinationStream = write ? { write: (chunk: string) => write(chunk.replace(/\n$/, '')) } : pino.destination({ dest: 2, sync: false });
  const instance = pino(
    {
      level,
      base: undefined,
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination,
  );
  const at = (name: Exclude<LogLevel, 'silent'>) => (message: string, fields: Record<string, unknown> = {}) => instance[name](fields, message);
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), pino: instance };
}
