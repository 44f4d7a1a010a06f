// Input checks shared by services. Each failure is BAD_USER_INPUT with a message a person can act on.
import { badInput } from '../../errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (value: string): boolean => UUID.test(value);

export function requireUuid(value: string, field: string): string {
  if (!UUID.test(value)) throw badInput(`${field} must be a UUID, got "${value.slice(0, 64)}"`, { field });
  return value.toLowerCase();
}

export function requireIntegerInRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw badInput(`${field} must be an integer from ${min} to ${max}, got ${value}`, { field });
  }
  return value;
}

export function requireIcdrGrade(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 4) {
    throw badInput(`${field} must be an ICDR grade 0-4 (0 none, 1 mild, 2 moderate, 3 severe NPDR, 4 PDR), got ${value}`, { field });
  }
  return value;
}

/** A grader's name or user id as entered: letters, digits, spaces and . , ' @ : _ -, 1-100 characters; null when blank. */
export function requireGraderName(value: string | null | undefined, field: string): string | null {
  const grader = value?.trim() || null;
  if (grader !== null && !/^[\p{L}\p{N} .,'@:_-]{1,100}$/u.test(grader)) throw badInput(`${field} must be 1-100 letters, digits, spaces or . , ' @ : _ -`, { field });
  return grader;
}
